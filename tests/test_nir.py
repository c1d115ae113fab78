"""NIR interoperability: `speck-mtt export --format nir` and `speck-mtt deploy FILE.nir`.

The round trip must be exact in the simulator; graphs from other writers (sinabs.to_nir always,
snnTorch when installed) deploy and simulate, or are refused with one line per reason.
"""

import subprocess
import sys
import warnings
from pathlib import Path

import nir
import numpy as np
import pytest
import sinabs
import sinabs.layers as sl
import torch
from sinabs.activation import SingleSpike
from torch import nn

from speck_mtt.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from speck_mtt.data.functional.mnist_idx import real_sample_path
from speck_mtt.data.functional.nmnist_bin import read_nmnist_bin
from speck_mtt.errors import FitError, SpeckMttError
from speck_mtt.eventsim import load_artifact, simulate
from speck_mtt.models import build_model
from speck_mtt.models.neurons import DEFAULT_FLOOR
from speck_mtt.chip.deploy import deploy
from speck_mtt.chip.devkit import sinabs_network
from speck_mtt.chip.layout import layout_model
from speck_mtt.chip.nir_io import (META, checkpoint_from_nir, export_checkpoint, nir_bytes, to_nir_graph,
                                     write_nir)

CLI = Path(sys.executable).with_name("speck-mtt")
FLOOR = -3.0  # not the default (-8): the floor must come from the model's neurons


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(CLI), *args], capture_output=True, text=True, timeout=180)


def fixed_model(arch: str, **kwargs) -> nn.Module:
    """Seeded init shifted by +0.05 (every layer of 3C1FC spikes on the real N-MNIST recording),
    neurons clamped at FLOOR."""
    torch.manual_seed(0)
    model = build_model(arch, floor=FLOOR, **kwargs)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                module.weight.add_(0.05)
    return model


def save(model, path: Path, **kwargs) -> Path:
    save_checkpoint(make_checkpoint(model, {"floor": FLOOR, **kwargs}, recipe=f"{model.name}-mtt",
                                    dataset="nmnist-sim", t_max=10), path)
    return path


def random_events(seed: int, n: int = 3000) -> np.ndarray:
    rng = np.random.default_rng(seed)
    ev = np.zeros(n, dtype=[("x", "<i2"), ("y", "<i2"), ("p", "i1"), ("t", "<i8")])
    ev["x"], ev["y"], ev["p"] = rng.integers(0, 34, n), rng.integers(0, 34, n), rng.integers(0, 2, n)
    ev["t"] = np.sort(rng.integers(0, 300_000, n))
    return ev


def test_round_trip_is_exact_in_the_simulator(tmp_path):
    ckpt = save(fixed_model("nmnist_3c1fc"), tmp_path / "model.pt")
    graph_file = tmp_path / "model.nir"
    exported = run_cli("export", str(ckpt), "--format", "nir", "--out", str(graph_file))
    assert exported.returncode == 0, exported.stderr
    graph = nir.read(graph_file)
    assert graph.metadata[META]["head"] == "if" and graph.metadata[META]["arch"] == "nmnist_3c1fc"
    neurons = [n for n in graph.nodes.values() if isinstance(n, nir.IF)]
    assert [float(n.metadata[META]["min_v_mem"]) for n in neurons] == [FLOOR] * 4
    assert all(bool(n.metadata[META]["multi_spike"]) for n in neurons)
    assert sum(isinstance(n, nir.AvgPool2d) for n in graph.nodes.values()) == 2

    deployed = run_cli("deploy", str(graph_file), "--target", "speck2e", "--out", str(tmp_path / "nir"),
                       "--samples", "0")
    assert deployed.returncode == 0, deployed.stderr
    assert "fits speck2e" in deployed.stdout and "NIR default" not in deployed.stdout
    deploy(ckpt, "speck2e", tmp_path / "ckpt", samples=0)
    mine, theirs = load_artifact(tmp_path / "nir"), load_artifact(tmp_path / "ckpt")
    assert mine["floor"] == theirs["floor"] == FLOOR
    for a, b in zip(mine["layers"], theirs["layers"], strict=True):
        assert torch.equal(a["weight"], b["weight"])
        assert {k: v for k, v in a.items() if k != "weight"} == {k: v for k, v in b.items() if k != "weight"}

    total = 0
    for events in (read_nmnist_bin(real_sample_path()), random_events(1), random_events(2)):
        a, b = simulate(mine, events), simulate(theirs, events)
        assert np.array_equal(a.counts, b.counts) and np.array_equal(a.layer_spikes, b.layer_spikes)
        assert all(np.array_equal(x, y) for x, y in zip(a.states, b.states))
        total += int(a.counts.sum())
    assert total > 0  # the comparison covers output spikes, not only silence

    original = model_from_checkpoint(load_checkpoint(ckpt)).eval()
    imported = model_from_checkpoint(load_checkpoint(tmp_path / "nir" / "model.pt")).eval()
    frames = torch.rand(2, 5, 2, 34, 34) * 3
    with torch.no_grad():
        assert torch.equal(original(frames), imported(frames))  # same multi-spike torch model too


def test_floor_comes_from_the_neurons_and_survives_the_checkpoint(tmp_path):
    model = fixed_model("nmnist_3c1fc")
    (tmp_path / "m.nir").write_bytes(nir_bytes(to_nir_graph(model)))
    save_checkpoint(checkpoint_from_nir(tmp_path / "m.nir"), tmp_path / "model.pt")  # what deploy writes
    imported = model_from_checkpoint(load_checkpoint(tmp_path / "model.pt"))
    assert [float(m.min_v_mem) for m in imported.modules() if isinstance(m, sl.IAFSqueeze)] == [FLOOR] * 4
    mine, theirs = layout_model(imported, "sim").artifact, layout_model(model, "sim").artifact
    assert [a["threshold_low"] for a in mine["layers"]] == [b["threshold_low"] for b in theirs["layers"]]


def test_membrane_head_and_input_pool_round_trip(tmp_path):
    export_checkpoint(save(fixed_model("gesture_4c2fc", bn=False), tmp_path / "g.pt", bn=False), tmp_path / "g.nir")
    model = model_from_checkpoint(load_checkpoint(tmp_path / "g.pt"))
    ckpt = checkpoint_from_nir(tmp_path / "g.nir")
    imported = model_from_checkpoint(ckpt)
    assert imported.head == "membrane" and imported.n_classes == 11 and ckpt["t_max"] == 10
    mine, theirs = layout_model(imported, "speck2e").artifact, layout_model(model, "speck2e").artifact
    assert mine["head"] == "membrane" and mine["input_pool"] == theirs["input_pool"] == 2
    for a, b in zip(mine["layers"], theirs["layers"], strict=True):
        assert torch.equal(a["weight"], b["weight"]) and a["threshold_low"] == b["threshold_low"]


def test_export_refuses_bn_like_deploy(tmp_path):
    ckpt = save(build_model("gesture_4c2fc", bn=True), tmp_path / "bn.pt", bn=True)
    with pytest.raises(FitError, match="un-absorbed BatchNorm") as info:
        export_checkpoint(ckpt, tmp_path / "bn.nir")
    assert "--phase bias-removal" in str(info.value) and not (tmp_path / "bn.nir").exists()


def test_graph_from_sinabs_deploys_with_documented_defaults(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1, bias=False), sl.IAFSqueeze(batch_size=1),
                        sl.SumPool2d(2), nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                        sl.IAFSqueeze(batch_size=1), sl.SumPool2d(2), nn.Flatten(),
                        nn.Linear(256, 10, bias=False), sl.IAFSqueeze(batch_size=1, spike_threshold=2.0))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # nirtorch's deprecation of extract_nir_graph
        graph = sinabs.to_nir(net, torch.zeros(1, 2, 34, 34))
    write_nir(graph, tmp_path / "sinabs.nir")  # fills the shapes nir 1.0.4 cannot store unset
    summary = deploy(tmp_path / "sinabs.nir", "speck2e", tmp_path / "dep", samples=0)
    assert summary["fits_chip"] and len(summary["layers"]) == 3
    assert len(summary["import_notes"]) == 3 and "one spike per step" in summary["import_notes"][0]
    model = model_from_checkpoint(load_checkpoint(tmp_path / "dep" / "model.pt"))
    neurons = [m for m in model.modules() if isinstance(m, sl.IAFSqueeze)]
    assert [m.spike_fn for m in neurons] == [SingleSpike] * 3
    assert [float(m.spike_threshold) for m in neurons] == [1.0, 1.0, 2.0]
    assert [float(m.min_v_mem) for m in neurons] == [DEFAULT_FLOOR * t for t in (1.0, 1.0, 2.0)]
    artifact = load_artifact(tmp_path / "dep")
    result = simulate(artifact, read_nmnist_bin(real_sample_path()))
    assert result.counts.shape == (10,) and result.layer_spikes[0] > 0
    assert len(sinabs_network(artifact)[1]) == 3  # the devkit path configures the artifact itself


def _graph(*nodes, metadata=None, input_shape=(2, 8, 8)) -> nir.NIRGraph:
    named = {"input": nir.Input(input_type={"input": np.array(input_shape)})}
    named.update({f"n{i}": node for i, node in enumerate(nodes)})
    named["output"] = nir.Output(output_type={"output": np.array([4])})
    keys = list(named)
    return nir.NIRGraph(nodes=named, edges=list(zip(keys[:-1], keys[1:])), metadata=metadata or {})


def _conv(bias=0.0, c_in=2):
    return nir.Conv2d(input_shape=(8, 8), weight=np.ones((4, c_in, 3, 3), np.float32), stride=1, padding=1,
                      dilation=1, groups=1, bias=np.full(4, bias, np.float32))


def _if():
    return nir.IF(r=np.ones((4, 8, 8), np.float32), v_threshold=np.ones((4, 8, 8), np.float32))


def _lif(tau):
    return nir.LIF(tau=np.full(4, tau), r=np.full(4, tau), v_leak=np.zeros(4), v_threshold=np.ones(4))


def _head():
    return [nir.Flatten(input_type={"input": np.array([4, 8, 8])}, start_dim=0), nir.Linear(weight=np.ones((4, 256), np.float32))]


def _refusal(tmp_path, graph) -> str:
    (tmp_path / "g.nir").write_bytes(nir_bytes(graph))
    with pytest.raises(FitError) as info:
        checkpoint_from_nir(tmp_path / "g.nir")
    return str(info.value)


def test_leak_bias_and_unsupported_nodes_are_refused_one_line_each(tmp_path):
    cuba = nir.CubaLIF(tau_syn=np.ones(4), tau_mem=np.ones(4), r=np.ones(4), v_leak=np.zeros(4),
                       v_threshold=np.ones(4))
    message = _refusal(tmp_path, _graph(_conv(bias=0.5), _if(), *_head(), _lif(0.01), nir.Delay(delay=np.ones(4)),
                                        cuba))
    lines = message.splitlines()
    assert "(4 problems)" in lines[0] and len(lines) == 5
    assert "node 'n0' (Conv2d): the bias is 4 nonzero values" in message
    assert "node 'n4' (LIF): the leak is tau 0.01" in message
    assert "node 'n5' (Delay): the delay is Delay" in message
    assert "node 'n6' (CubaLIF): the synaptic-current neuron" in message


def test_non_leaking_lif_and_integrator_readout_are_accepted(tmp_path):
    inf = np.full(4, np.inf)
    lif = nir.LIF(tau=np.full((4, 8, 8), np.inf), r=np.full((4, 8, 8), np.inf), v_leak=np.zeros((4, 8, 8)),
                  v_threshold=np.full((4, 8, 8), 0.5))
    readout = nir.LI(tau=inf, r=inf, v_leak=np.zeros(4))
    (tmp_path / "g.nir").write_bytes(nir_bytes(_graph(_conv(), lif, *_head(), readout)))
    model = model_from_checkpoint(checkpoint_from_nir(tmp_path / "g.nir"))
    neuron = next(m for m in model.modules() if isinstance(m, sl.IAFSqueeze))
    assert model.head == "membrane" and float(neuron.spike_threshold) == 0.5
    assert float(neuron.min_v_mem) == DEFAULT_FLOOR * 0.5
    assert [type(m) for m in model.blocks[-1]] == [nn.Flatten, nn.Linear]


@pytest.mark.parametrize("graph,expected", [
    (lambda: _graph(_conv(), nir.IF(r=np.ones((4, 8, 8)), v_threshold=np.linspace(1, 2, 256).reshape(4, 8, 8)),
                    *_head()), "one positive value per layer"),
    (lambda: _graph(_conv(), _if(), *_head(), input_shape=(1, 2, 8, 8)), "ignore_dims=[0]"),
    (lambda: _graph(_conv(), _if(), *_head(), metadata={META: {"head": "if"}}), "the head is if, limit what the structure says (membrane)"),
    (lambda: _graph(_conv(c_in=3), _if(), *_head()), "3 channels (its weight)"),
    (lambda: _graph(_conv(), _if(), nir.Linear(weight=np.ones((4, 256), np.float32))), "put a Flatten before"),
])
def test_graphs_speck_cannot_run_are_refused_with_the_reason(tmp_path, graph, expected):
    assert expected in _refusal(tmp_path, graph())


def test_branching_graph_and_bad_files(tmp_path):
    graph = _graph(_conv(), _if(), *_head())
    graph.edges.append(("n0", "n2"))
    assert "the connections is 1 in, 2 out" in _refusal(tmp_path, graph)
    (tmp_path / "x.nir").write_text("not hdf5")
    with pytest.raises(SpeckMttError, match="not a NIR file"):
        checkpoint_from_nir(tmp_path / "x.nir")
    with pytest.raises(SpeckMttError, match="missing.nir: no such NIR file; pass a .nir written by"):
        deploy(tmp_path / "missing.nir", "sim", tmp_path / "d")


def test_snntorch_graph_deploys_or_is_refused(tmp_path):
    snn = pytest.importorskip("snntorch")
    from snntorch.export_nir import export_to_nir

    torch.manual_seed(0)

    def export(net, name):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # beta = 1 divides by zero (tau = inf); nirtorch deprecation
            graph = export_to_nir(net, torch.zeros(1, 2, 34, 34), ignore_dims=[0])
        write_nir(graph, tmp_path / name)
        return tmp_path / name

    no_leak = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1, bias=False), snn.Leaky(beta=1.0, init_hidden=True),
                            nn.AvgPool2d(2), nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False),
                            snn.Leaky(beta=1.0, init_hidden=True), nn.AvgPool2d(2), nn.Flatten(),
                            nn.Linear(256, 10, bias=False), snn.Leaky(beta=1.0, init_hidden=True, output=True))
    summary = deploy(export(no_leak, "ok.nir"), "speck2e", tmp_path / "d", samples=0)
    assert summary["fits_chip"] and len(summary["import_notes"]) == 3
    sim = simulate(load_artifact(tmp_path / "d"), read_nmnist_bin(real_sample_path()))
    assert sim.counts.shape == (10,) and sim.layer_spikes[0] > 0

    leaky = nn.Sequential(nn.Conv2d(2, 8, 3, padding=1), snn.Leaky(beta=0.9, init_hidden=True), nn.Flatten(),
                          nn.Linear(8 * 34 * 34, 10), snn.Leaky(beta=0.9, init_hidden=True, output=True))
    result = run_cli("deploy", str(export(leaky, "leaky.nir")), "--out", str(tmp_path / "d2"))
    message = result.stderr.strip()
    assert result.returncode == 2 and len(message.splitlines()) == 1 and "(4 problems)" in message  # one line
    assert message.count("the leak is tau 0.001") == 2 and message.count("the bias is") == 2
    assert not (tmp_path / "d2").exists()
