"""The accuracy drop between two runs of one model on the same samples, with its paired error.

Torch and the simulator (or the chip) classify the same recordings, so most samples agree and
only the discordant ones carry information: a drop of 0.5 pp on 800 recordings means little when
30 recordings changed sides. The standard error is McNemar's, from the two discordant counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PairedDrop:
    drop_pp: float  # accuracy of the reference minus that of the other run, in percentage points
    se_pp: float  # its standard error: sqrt(b + c - (b - c)^2 / n) / n, in percentage points
    reference_only: int  # b: samples only the reference classifies right
    other_only: int  # c: samples only the other run classifies right
    n_samples: int

    def as_dict(self) -> dict:
        return {"drop_pp": self.drop_pp, "drop_se_pp": self.se_pp, "reference_only": self.reference_only,
                "other_only": self.other_only, "n_paired": self.n_samples}


def paired_drop(reference_correct: np.ndarray, other_correct: np.ndarray) -> PairedDrop:
    """Drop from the reference to the other run, both boolean per sample in the same order."""
    ref = np.asarray(reference_correct, dtype=bool)
    other = np.asarray(other_correct, dtype=bool)
    if ref.shape != other.shape or ref.ndim != 1:
        raise ValueError(f"per-sample results of shape {ref.shape} and {other.shape} cannot be paired")
    n = len(ref)
    if n == 0:
        return PairedDrop(float("nan"), float("nan"), 0, 0, 0)
    b, c = int((ref & ~other).sum()), int((~ref & other).sum())
    se = np.sqrt(max(b + c - (b - c) ** 2 / n, 0.0)) / n
    return PairedDrop(100.0 * (b - c) / n, 100.0 * float(se), b, c, n)
