"""A simulator that runs the real DHT cores over an event-driven in-memory network."""

from anonsip.dht.sim._simulation import LookupStats, SimConfig, Simulation, summarize

__all__ = ["LookupStats", "SimConfig", "Simulation", "summarize"]
