"""The Django projects the benchmark runs: one package per system, each a settings module, a tasks module and an adapter."""
