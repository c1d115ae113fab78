"""The fully event-driven Speck simulator and the spike-difference metric."""

from .sd import SpikeDifference, spike_difference

__all__ = ["SpikeDifference", "spike_difference"]
