"""Spike difference (paper Eq. 16): the ONE function every comparison calls."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SpikeDifference:
    pooled: float  # sum_i |N_i(S) - N_i(ref)| / sum_i N_i(ref), counts summed over samples
    per_sample_mean: float  # mean over samples of the same ratio, samples with empty ref skipped
    n_samples: int
    n_undefined: int  # samples whose reference has no output spike (ratio undefined)

    def as_dict(self) -> dict:
        return {"sd": self.pooled, "sd_per_sample_mean": self.per_sample_mean,
                "n_samples": self.n_samples, "n_undefined": self.n_undefined}


def spike_difference(counts: np.ndarray, ref_counts: np.ndarray) -> SpikeDifference:
    """SD of output spike counts `counts` against `ref_counts`, both (n_samples, n_outputs).

    N_i is the spike count of output neuron i summed over the evaluated samples. The pooled
    value is nan when the reference has no spike at all; so is the per-sample mean when every
    sample's reference is empty.
    """
    s = np.asarray(counts, dtype=np.float64)
    r = np.asarray(ref_counts, dtype=np.float64)
    if s.ndim == 1:
        s, r = s[None], r[None]
    if s.shape != r.shape:
        raise ValueError(f"spike counts of shape {s.shape} cannot be compared with reference {r.shape}")
    ref_total = r.sum()
    pooled = float(np.abs(s.sum(0) - r.sum(0)).sum() / ref_total) if ref_total > 0 else float("nan")
    ref_per = r.sum(1)
    ok = ref_per > 0
    per = np.abs(s[ok] - r[ok]).sum(1) / ref_per[ok]
    return SpikeDifference(pooled, float(per.mean()) if ok.any() else float("nan"), len(s), int((~ok).sum()))
