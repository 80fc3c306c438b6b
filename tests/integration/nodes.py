"""The integration tests' nodes are ``anonsip.nodeproc``'s (one implementation for
the demo, the tests and the benchmarks)."""

from anonsip.nodeproc import NodeFailed, NodeFleet, NodeProcess, children

__all__ = ["NodeFailed", "NodeFleet", "NodeProcess", "children"]
