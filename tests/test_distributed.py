"""Two CPU processes with gloo: all-reduced gradients equal the single-process full-batch
gradient, and a whole run writes its outputs from rank 0 only."""

import os
import socket
import sys

import pytest
import torch
import torch.multiprocessing as mp

from speck_mtt.distributed import DistInfo, allreduce_gradients, allreduce_sum, init_distributed, shard
from speck_mtt.models import build_model
from speck_mtt.mtt.losses import mean_output_ce

torch.set_num_threads(1)  # tiny tensors; forked children inherit it


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _batch():
    g = torch.Generator().manual_seed(0)
    return torch.poisson(torch.full((4, 2, 2, 34, 34), 0.5), generator=g), torch.tensor([1, 2, 3, 4])


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    sys.path.insert(0, os.path.dirname(__file__))
    info, _ = init_distributed(torch.device("cpu"))
    assert info == DistInfo(rank, world, rank)
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc", bn=False)
    x, y = _batch()
    part = shard(len(y), info)
    mean_output_ce(model(x[part], [2, 1, 2, 2]), y[part]).backward()
    allreduce_gradients(model, info)
    total = allreduce_sum(torch.tensor([float(len(part))]), info)
    if rank == 0:
        torch.save({"grads": [p.grad for p in model.parameters() if p.grad is not None], "n": total}, out + "/grads.pt")
    from test_train import tiny_frames, tiny_recipe

    from speck_mtt.training.loop import run

    run(tiny_recipe(epochs=1), out + "/run", datasets=(tiny_frames(8), tiny_frames(5, seed=1)), progress=False)


@pytest.mark.timeout(120)
def test_two_gloo_processes(tmp_path):
    # fork: the children reuse the imported modules (spawn would re-import torch and sinabs)
    mp.start_processes(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True, start_method="fork")
    got = torch.load(tmp_path / "grads.pt")
    assert got["n"].item() == 4
    torch.manual_seed(0)
    model = build_model("nmnist_3c1fc", bn=False)
    x, y = _batch()
    mean_output_ce(model(x, [2, 1, 2, 2]), y).backward()
    ref = [p.grad for p in model.parameters() if p.grad is not None]
    assert len(ref) == len(got["grads"]) == 4
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(got["grads"], ref))
    assert (tmp_path / "run" / "model.pt").is_file() and (tmp_path / "run" / "metrics.json").is_file()
    import json

    assert json.loads((tmp_path / "run" / "eval.json").read_text())["n_samples"] == 5  # every test sample once
