"""The fully event-driven Speck simulator and the spike-difference metric."""

from .network import SimNet, compile_artifact, load_artifact
from .sd import SpikeDifference, spike_difference
from .simulator import (BatchResult, SimResult, UnsortedEventsWarning, prepare_events, simulate, simulate_many,
                        simulate_sharded)

__all__ = ["BatchResult", "SimNet", "SimResult", "SpikeDifference", "UnsortedEventsWarning", "compile_artifact",
           "load_artifact", "prepare_events", "simulate", "simulate_many", "simulate_sharded", "spike_difference"]
