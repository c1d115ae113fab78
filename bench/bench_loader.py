"""Loader throughput: frames from the on-disk frame cache vs re-framing events with ToFrame each time.

Both paths read the same recordings of the built-in datasets (generated on first use under the
default data dir) and produce the same float32 (T, 2, H, W) tensors; measured in one run.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from speck_mtt.data import default_data_dir, event_dataset, frame_dataset
from speck_mtt.data.functional.frames import to_frame_transform
from speck_mtt.timegroups import resample_time

CASES = (  # dataset, recordings, T served, T cached
    ("nmnist-sim", 1000, 10, 10),
    ("gesture-sim", 44, 10, 40),
)


def _rate(get, n: int, min_s: float = 1.5) -> float:
    """Samples per second of get(i) cycling over n samples for at least min_s seconds."""
    done, start = 0, time.perf_counter()
    while True:
        get(done % n)
        done += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_s and done >= n:
            return done / elapsed


def main() -> None:
    data_dir = default_data_dir()
    print(f"data dir: {data_dir} (set SPECK_MTT_DATA to change)")
    for name, limit, t, t_cache in CASES:
        start = time.perf_counter()
        frames = frame_dataset(name, "train", t, data_dir, limit=limit, cache_frames=t_cache)
        setup = time.perf_counter() - start
        events = event_dataset(name, "train", data_dir, limit=limit)
        to_frame = to_frame_transform(events.info.sensor_size, t_cache)

        def reframe(i: int) -> torch.Tensor:
            ev, _ = events[i]
            return resample_time(torch.from_numpy(to_frame(ev).astype(np.float32)), t, dim=0)

        assert torch.equal(reframe(0), frames[0][0])  # both paths give the same tensor
        cached = _rate(lambda i: frames[i], len(frames))
        fresh = _rate(reframe, len(events))
        print(f"{name}: {len(frames)} recordings, T={t} (cached at T={t_cache}); cache ready in {setup:.1f} s")
        print(f"  frame cache      {cached:10.0f} samples/s")
        print(f"  re-frame ToFrame {fresh:10.0f} samples/s")
        print(f"  ratio cache / re-frame: {cached / fresh:.1f}x")


if __name__ == "__main__":
    main()
