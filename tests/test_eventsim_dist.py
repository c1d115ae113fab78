"""Sharding samples across two torch.distributed CPU ranks (gloo) gives the single-process result."""

import socket

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from speck_mtt.eventsim import build, compile_artifact, simulate_many, simulate_sharded


def _artifact():
    rng = np.random.default_rng(0)
    w0 = torch.tensor(rng.integers(-4, 10, (3, 2, 3, 3)), dtype=torch.float32)
    w1 = torch.tensor(rng.integers(-4, 10, (4, 3, 2, 2)), dtype=torch.float32)
    return build.artifact(build.chain([build.layer(w0, [2, 4, 4], 8, -8, padding=(1, 1), pool=(2, 2)),
                                       build.layer(w1, [3, 2, 2], 8, -8)]), [2, 4, 4])


def _samples(n=9):
    rng = np.random.default_rng(1)
    out = []
    for i in range(n):
        k = int(rng.integers(0, 40))
        ev = np.zeros(k, dtype=[("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])
        ev["x"], ev["y"], ev["p"], ev["t"] = rng.integers(0, 4, k), rng.integers(0, 4, k), rng.integers(0, 2, k), np.arange(k)
        out.append((ev, i % 4))
    return out


def _rank(rank, port, queue):
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        res = simulate_sharded(_artifact(), _samples(), workers=1)
        queue.put((rank, res.counts, res.synops, res.sample_ids, res.labels))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters importing torch: several seconds on 2 shared cores
def test_two_ranks_gather_the_single_process_result():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_rank, args=(r, port, queue)) for r in range(2)]
    for p in procs:
        p.start()
    got = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    single = simulate_many(compile_artifact(_artifact()), _samples(), workers=1)
    for _, counts, synops, ids, labels in got:  # every rank holds the gathered, id-ordered whole
        assert ids.tolist() == list(range(9)) and labels.tolist() == single.labels.tolist()
        np.testing.assert_array_equal(counts, single.counts)
        np.testing.assert_array_equal(synops, single.synops)
    assert single.counts.sum() > 0
