"""The Django projects the benchmark runs: one package per system (settings, tasks, adapter)."""
