"""The runtime: the supervising parent, its children, their protocol, the start/execute/record steps, duties."""
