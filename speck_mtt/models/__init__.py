"""Bias-free multistep-IF networks (docs/design.md#networks)."""

from .networks import ARCHITECTURES, SpikingNet, build_model, gesture_4c2fc, nmnist_3c1fc, vggsnn

__all__ = ["ARCHITECTURES", "SpikingNet", "build_model", "gesture_4c2fc", "nmnist_3c1fc", "vggsnn"]
