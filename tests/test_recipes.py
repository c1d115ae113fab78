"""Recipe loading and validation: every mistake is one line, before anything runs."""

import pytest

from speck_mtt.errors import SpeckMttError
from speck_mtt.training.recipe import builtin_recipes, load_recipe, parse_set


def test_builtin_recipes_load_with_paper_defaults():
    assert builtin_recipes() == ["cifar10dvs", "gesture", "nmnist"]
    nm = load_recipe("nmnist")
    assert (nm.train.t_max, nm.train.method, nm.data.augment) == (10, "mtt", False)
    g = load_recipe("gesture")
    assert (g.train.t_min, g.train.t_max, g.train.epochs, g.train.lr,
            g.train.weight_decay, g.train.optimizer, g.bias_removal.epochs) == (1, 40, 100, 5e-4, 0.02, "adamw", 20)
    c = load_recipe("cifar10dvs")
    assert (c.model.arch, c.train.t_max) == ("vggsnn", 10)


def test_quick_profile_and_overrides():
    q = load_recipe("nmnist", quick=True, overrides=parse_set(["train.lr=5e-4", "train.method=sdt"]))
    assert q.quick and q.data.limit_train > 0 and q.train.epochs <= 3
    assert q.train.lr == 5e-4 and q.train.method == "sdt"


def test_parse_set_values():
    assert parse_set(["a.b=3", "a.c=true", "d.e=[1, 2]", "d.f=word"]) == {"a": {"b": 3, "c": True}, "d": {"e": [1, 2], "f": "word"}}
    with pytest.raises(SpeckMttError):
        parse_set(["lr=3"])


@pytest.mark.parametrize("over,needle", [
    ({"train": {"learning_rate": 1.0}}, "unknown recipe key train.learning_rate"),
    ({"optim": {"lr": 1.0}}, "unknown recipe section [optim]"),
    ({"train": {"t_min": 5, "t_max": 3}}, "impossible T range [5, 3]"),
    ({"train": {"t_min": 0}}, "impossible T range"),
    ({"train": {"epochs": "ten"}}, "train.epochs must be int"),
    ({"train": {"method": "bptt"}}, "unknown training method"),
    ({"eval": {"ts": [1, 31]}}, "outside [1, the largest T_max of the phases=30]"),
    ({"train": {"method": "sdt", "tit_t": 2, "tit_epochs": 0}}, "TIT needs"),
    ({"train": {"tit_t": 2, "tit_epochs": 1}}, "use it with train.method"),
    ({"data": {"keep_min": 0.0}}, "data.keep_min in (0, 1]"),
    ({"data": {"roll_px": -2}}, "data.roll_px must be >= -1"),
])
def test_invalid_recipes_are_one_line_errors(over, needle):
    with pytest.raises(SpeckMttError) as e:
        load_recipe("nmnist", overrides=over)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_unknown_recipe_and_bad_file(tmp_path):
    with pytest.raises(SpeckMttError, match="unknown recipe 'mnist'"):
        load_recipe("mnist")
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nlr = 1e-3\nfoo = 1\n")
    with pytest.raises(SpeckMttError, match="unknown recipe key train.foo"):
        load_recipe(str(bad))
    bad.write_text("[train\n")
    with pytest.raises(SpeckMttError, match="invalid TOML"):
        load_recipe(str(bad))


def test_paper_pipeline_refuses_a_results_folder_made_from_other_data(tmp_path):
    """recipes/paper.sh must not skip steps whose models were trained on other data."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "recipes" / "paper.sh"
    env = {**os.environ, "SPECK": "false", "PY": sys.executable, "SPECK_MTT_DATA": str(tmp_path / "data")}
    results = tmp_path / "results"
    results.mkdir()
    (results / "data-fingerprint.txt").write_text("nmnist-sim 0000 0000\n")
    run = subprocess.run(["bash", str(script), "nmnist", "nmnist-sim", str(results)], env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "made from other data" in run.stderr and "remove" in run.stderr
    assert not (results / "mtt").exists()  # stopped before any step
    fresh = tmp_path / "fresh"
    subprocess.run(["bash", str(script), "nmnist", "nmnist-sim", str(fresh)], env=env, capture_output=True, timeout=120)
    name, train_key, test_key = (fresh / "data-fingerprint.txt").read_text().split()
    assert name == "nmnist-sim" and train_key == test_key != "0000"  # the generator's key, stamped first
