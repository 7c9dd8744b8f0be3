"""The runtime: the supervising parent, its children, their protocol, the executor, workflow and duties."""
