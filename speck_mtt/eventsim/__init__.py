"""The fully event-driven Speck simulator (the spike difference is speck_mtt.contracts.sd)."""

from .network import SimNet, compile_artifact, load_artifact
from .simulator import (BatchResult, SimResult, UnsortedEventsWarning, prepare_events, simulate, simulate_many,
                        simulate_sharded)

__all__ = ["BatchResult", "SimNet", "SimResult", "UnsortedEventsWarning", "compile_artifact", "load_artifact",
           "prepare_events", "simulate", "simulate_many", "simulate_sharded"]
