"""Probing a trained SpikingNet on frames: spikes and SynOps per layer and step, early exit over
time steps, the temporal-configuration search."""
