"""Devkit entry points without samna: one-line errors, version/device checks, and the hardware
tests' wired nets checked in the simulator. The devkit path itself runs through sinabs on a fake
samna in test_devkit_sinabs.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speck_mtt.errors import DeviceError
from speck_mtt.eventsim import simulate
from speck_mtt.files import save_torch
from speck_mtt.models import build_model
from speck_mtt.chip import devkit
from speck_mtt.chip.layout import layout_model
from speck_mtt.chip.samna_guard import _Placeholder, real_samna_installed

EV = np.dtype([("x", "<i2"), ("y", "<i2"), ("p", "<i1"), ("t", "<i8")])


def _samna_untouched():
    module = sys.modules.get("samna")
    return module is None or isinstance(module, _Placeholder)


@pytest.fixture(scope="module")
def nmnist_dir(tmp_path_factory):
    """A real speck2e deploy artifact of 3C1FC (what the CLI error test needs)."""
    path = tmp_path_factory.mktemp("deploy")
    save_torch(layout_model(build_model("nmnist_3c1fc"), "speck2e").artifact, path / "artifact.pt")
    return path


def _samples(n, seed=0, size=34):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        k = 300
        ev = np.zeros(k, EV)
        ev["x"], ev["y"], ev["p"] = rng.integers(0, size, k), rng.integers(0, size, k), rng.integers(0, 2, k)
        ev["t"] = np.sort(rng.integers(5_000, 60_000, k))
        out.append((ev, i % 10))
    return out


@pytest.mark.skipif(real_samna_installed(), reason="the real samna is installed here")
@pytest.mark.parametrize("call", ["measure", "deploy"])
def test_without_samna_one_line_error_saying_what_to_install_and_connect(nmnist_dir, call):
    with pytest.raises(DeviceError) as info:
        if call == "measure":
            devkit.measure_on_devkit(nmnist_dir, _samples(1))
        else:
            devkit.deploy_to_devkit(nmnist_dir)
    message = str(info.value)
    assert "\n" not in message and "install the real samna" in message and "connect a Speck2e devkit" in message
    assert _samna_untouched()  # the PyPI stub was never imported


@pytest.mark.skipif(real_samna_installed(), reason="the real samna is installed here")
def test_cli_measure_speck2e_without_devkit_exits_2_with_one_line(nmnist_dir, monkeypatch, capsys):
    from speck_mtt.cli import main

    monkeypatch.setattr(sys, "argv", ["speck-mtt", "measure", str(nmnist_dir), "--backend", "speck2e",
                                      "--dataset", "nmnist-sim", "--data-dir", str(nmnist_dir / "data"), "--limit", "1"])
    with pytest.raises(SystemExit) as info:
        main()
    err = capsys.readouterr().err.strip().splitlines()
    assert info.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and "samna" in err[0]
    assert _samna_untouched()


def test_samna_version_problems():
    assert devkit.samna_version_problem("0.48.6", "0.48.6") is None
    assert devkit.samna_version_problem("0.39.11.0", None) is None
    assert "too old" in devkit.samna_version_problem("0.21.8", "0.21.8")
    assert "pip lists samna 0.40.0" in devkit.samna_version_problem("0.48.6", "0.40.0")
    assert "no __version__" in devkit.samna_version_problem(None, "0.48.6")


def test_device_index():
    assert devkit.device_index(None) == 0 and devkit.device_index("speck2edevkit") == 0
    assert devkit.device_index("speck2edevkit:2") == 2 and devkit.device_index("1") == 1
    with pytest.raises(DeviceError, match="speck2edevkit:N"):
        devkit.device_index("speck2fdevkit:0")
    with pytest.raises(DeviceError, match="speck2edevkit:N"):
        devkit.device_index("speck2edevkit:x")


HARDWARE_TESTS = Path(__file__).resolve().parents[1] / "hardware_tests"


@pytest.fixture(scope="module")
def hw():
    """hardware_tests' wired nets and samples, and the artifacts sinabs lays them out to."""
    sys.path.insert(0, str(HARDWARE_TESTS))
    try:
        import test_devkit_hw
        import wired
    finally:
        sys.path.remove(str(HARDWARE_TESTS))
    lay = {name: layout_model(net()[0], "speck2e").artifact for name, net in
           [("wired", wired.wired_nmnist), ("half", lambda: wired.wired_nmnist(0.5)), ("gesture", wired.wired_gesture)]}
    return wired, test_devkit_hw, lay


def test_hardware_routes_tell_x_from_y_and_on_from_off(hw):
    """What test_x_y_and_polarity_reach_their_own_class expects holds in the simulator, and a chip
    that swapped x/y or flipped the polarity would answer with another class."""
    wired, t, lay = hw
    for ev, cls in t.ROUTED:
        assert simulate(lay["wired"], ev).counts.tolist() == t._one_hot(cls)
    classes = [cls for _, cls in t.ROUTED[:4]]
    assert len(set(classes)) == 4  # (x, y) vs (y, x), ON vs OFF: four different answers


def test_hardware_reset_sample_needs_the_reset(hw):
    wired, _, lay = hw
    once = wired.events((17, 2, wired.OFF, 0))
    assert simulate(lay["half"], once).counts.sum() == 0
    assert simulate(lay["half"], wired.events((17, 2, wired.OFF, 0), (17, 2, wired.OFF, 10))).counts[5] == 1
    carried = wired.events((17, 2, wired.OFF, 0), (17, 2, wired.OFF, 2_000_000))  # the second sample, unreset
    assert simulate(lay["half"], carried).counts[5] == 1


def test_hardware_timestamp_sample_reaches_the_output(hw):
    wired, _, lay = hw
    result = simulate(lay["wired"], wired.events((4, 4, wired.ON, 0), (17, 2, wired.ON, 1_000_000)))
    assert result.counts.tolist() == [0, 1] + [0] * 8 and result.layer_spikes[0] == 2  # the first event only primes


def test_hardware_membrane_and_pooled_samples_are_distinguishable(hw):
    wired, t, lay = hw
    gesture = lay["gesture"]
    assert gesture["head"] == "membrane" and gesture["input_pool"] == 2 and gesture["input_layer"] == "dvs"
    vectors = [tuple(simulate(gesture, ev).membranes.tolist()) for ev in t.MEMBRANE_SAMPLES]
    assert len(set(vectors)) == 3 and all(any(v) for v in vectors)
    pooled = [simulate(gesture, ev).membranes.tolist() for ev in t.POOLED_SAMPLES]
    assert pooled[0] == pooled[1] != [0.0] * 11 and pooled[2] == [0.0] * 11 and any(pooled[3])
    unpooled = simulate(gesture, wired.events((4, 0, wired.ON, 0))).membranes  # what (2, 0) unpooled would reach
    assert any(unpooled)


def _devices(tmp_path, samna_source: str | None, *args: str, **env) -> subprocess.CompletedProcess:
    """`speck-mtt devices` through the installed console script, with samna_source as the only samna."""
    path = tmp_path / "site"
    if samna_source is not None:
        (path / "samna").mkdir(parents=True)
        (path / "samna" / "__init__.py").write_text(samna_source)
    script = Path(sys.executable).parent / "speck-mtt"
    environment = {**os.environ, "PYTHONPATH": str(path), "TESTS_DIR": str(Path(__file__).parent), **env}
    return subprocess.run([str(script), "devices", *args], capture_output=True, text=True, env=environment, timeout=120)


STUB = """# PYPI_SAMNA: stands for the PyPI stub, which pip-installs samna when imported
import os
open(os.environ["STUB_MARKER"], "w").write("imported")
"""

FAKE = """import os, sys
sys.path.insert(0, os.environ["TESTS_DIR"])
import fake_samna
board = fake_samna.Board(int(os.environ["FAKE_DEVKITS"]))
board.plugged.append(fake_samna.DeviceInfo(device_type_name="Davis 346", usb_device_address=3, usb_bus_number=2,
                                           serial_number="D1"))
sys.modules.update(board.modules())
"""


@pytest.mark.skipif(real_samna_installed(), reason="the real samna is installed here")
def test_devices_without_real_samna_is_one_line_and_never_imports_the_stub(tmp_path):
    marker = tmp_path / "stub-ran"
    done = _devices(tmp_path, STUB, STUB_MARKER=str(marker))
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and done.stdout == "" and len(err) == 1
    assert err[0].startswith("error: the real samna is not installed") and "connect a Speck2e devkit" in err[0]
    assert not marker.exists()


def test_devices_lists_what_samna_enumerates(tmp_path):
    done = _devices(tmp_path, FAKE, FAKE_DEVKITS="2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["speck2edevkit:0\tserial SN0\tusb bus 1 address 10",
                                        "speck2edevkit:1\tserial SN1\tusb bus 1 address 11"]


def test_devices_json_lists_the_same_devkits(tmp_path):
    done = _devices(tmp_path, FAKE, "--json", FAKE_DEVKITS="2")
    assert done.returncode == 0, done.stderr
    assert [(k["id"], k["serial"], k["bus"], k["address"]) for k in json.loads(done.stdout)] == [
        ("speck2edevkit:0", "SN0", 1, 10), ("speck2edevkit:1", "SN1", 1, 11)]


def test_devices_says_in_one_line_that_nothing_is_connected(tmp_path):
    done = _devices(tmp_path, FAKE, FAKE_DEVKITS="0")
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1
    assert err[0].startswith("error: no Speck2e devkit is connected (SynSense devices on USB: Davis 346)")
