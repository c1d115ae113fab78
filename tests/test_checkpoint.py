import pytest
import torch

from speck_mtt.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from speck_mtt.errors import SpeckMttError
from speck_mtt.models import build_model


def test_round_trip(tmp_path):
    m = build_model("gesture_4c2fc")
    m(torch.rand(2, 2, 2, 128, 128))  # creates neuron state, which must not be saved
    path = tmp_path / "c.pt"
    save_checkpoint(make_checkpoint(m, {"bn": True}, method="mtt"), path)
    ckpt = load_checkpoint(path)
    assert ckpt["method"] == "mtt" and not any(k.endswith("v_mem") for k in ckpt["model"])
    m2 = model_from_checkpoint(ckpt)
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values()):
        if not k.endswith("v_mem"):
            torch.testing.assert_close(a, b)


def test_foreign_architecture(tmp_path):
    ckpt = make_checkpoint(build_model("nmnist_3c1fc"), {})
    ckpt["arch"] = "gesture_4c2fc"
    with pytest.raises(SpeckMttError, match="do not match"):
        model_from_checkpoint(ckpt)


def test_not_a_checkpoint(tmp_path):
    p = tmp_path / "x.pt"
    torch.save({"a": 1}, p)
    with pytest.raises(SpeckMttError, match="not a speck-mtt checkpoint"):
        load_checkpoint(p)
    p.write_bytes(b"garbage")
    with pytest.raises(SpeckMttError, match="cannot be read"):
        load_checkpoint(p)
