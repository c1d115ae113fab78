"""The paper's Table 5 for one results folder: torch vs simulator vs Speck, per training method.

Results folder convention (the default file names of `speck-mtt train`, `deploy` and `measure`;
every file optional except that a method needs at least one of them):

    RESULTS_DIR/
      run.json                    optional: {"dataset": "nmnist-sim", ...}
      <method>/                   one folder per method (mtt, sdt, nmt, slt, ...); the name is the label
        eval.json                 `speck-mtt train --out RESULTS_DIR/<method>` of the deployed (bias-free)
                                  model: {"t": [1, ...], "accuracy": [0.97, ...], "n_samples": N}
        base/eval.json            optional: the BN base model it was made from (recipes/paper.sh), for
                                  the cost of the Speck-ready step (base -> bias-free -> simulator)
        deploy/                   `speck-mtt deploy ... --out RESULTS_DIR/<method>/deploy` (model.pt gives
                                  the parameter count) holding the measurements (here or in <method>/):
          measure-sim.json        `speck-mtt measure DEPLOY --backend sim --t T [--record measure-sim.npz]`:
                                  "accuracy", "n_samples", "dataset", "spikes_per_sample", "synops_per_sample",
                                  "torch": [{"t", "accuracy", "sd", ...}] (SD of the simulator's spike counts
                                  against torch at T, same samples), "record": its recording
          measure-speck2e*.json   one per chip run (`--backend speck2e --record measure-speck2e[-N].npz`),
                                  optional "compare": [{"reference_backend", "sd"}] from `--compare`
          <stem>.npz              spike-count recordings (speck_mtt.contracts.recording) beside their JSON,
                                  or named by the JSON's "record"; a chip run may be a recording alone
                                  (accuracy from its predictions)

Columns: Torch = eval.json at the chosen T (default: T_max of eval.json, else the largest T
measure compared with). drop torch->sim uses measure's torch accuracy at T on the simulator's own
samples when present (same samples), else eval.json's. SD torch-vs-sim: reference torch at T.
SD sim-vs-chip: recordings of the simulator and the first chip run, reference the chip (else a
`--compare` result). SD chip-vs-chip: the second chip run against the first. Several chip runs:
Speck accuracy is their mean.

Accuracies are fractions in [0, 1]; the report shows percent. Output: report.md, report.json,
accuracy_vs_t.png (matplotlib Figure API, Agg canvas). The paper's own numbers (docs/design.md#paper-numbers) sit in a separate,
labelled table; a "-sim" dataset is an offline stand-in and is labelled so next to them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from .errors import SpeckMttError
from .contracts.recording import Recording, compare_recordings, load_recording
from .data.registry import REAL800, REAL800_LABEL
from .files import remove_stale_temps, save_json, save_text

# Paper Table 5 (accuracy %, Torch / simulator / Speck; None = not measured) and weights (docs/design.md#paper-numbers).
PAPER_TABLE5: dict[str, dict[str, Any]] = {
    "nmnist": {"network": "3C1FC(W16)", "n_weights": 6160,
               "methods": {"mtt": (99.16, 98.56, 98.57), "sdt": (98.09, 93.07, 92.77)},
               "sd": {"sim_vs_chip": 3.92, "chip_vs_chip": 2.81, "timestepped_vs_chip": 28.77}},
    "gesture": {"network": "4C2FC(W32)", "n_weights": 48592,
                "methods": {"mtt": (88.28, 81.82, None), "sdt": (88.67, 80.68, None)}},
    "cifar10dvs": {"network": "VGGSNN", "n_weights": None,
                   "methods": {"mtt": (75.2, 58.5, None), "sdt": (74.7, 48.4, None)}},
}
METHOD_ORDER = ("mtt", "sdt", "nmt", "slt")
SIM_FILE = "measure-sim.json"
REAL_FILE = f"measure-sim-{REAL800}.json"  # `speck-mtt measure DEPLOY --dataset nmnist-real800`
CHIP_GLOB = "measure-speck2e*"


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SpeckMttError(f"{path}: cannot be read as JSON ({exc}); rerun the step that writes it") from exc
    if not isinstance(data, dict):
        raise SpeckMttError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _fraction(value: Any, path: Path) -> float | None:
    if value is None:
        return None
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise SpeckMttError(f"{path}: accuracy {value} is not a fraction in [0, 1]; was it written by speck-mtt?")
    return v


def torch_curve(data: dict[str, Any], path: Path) -> dict[int, float]:
    """T -> torch accuracy (fraction) from an eval.json ({"t": [...], "accuracy": [...]})."""
    ts, acc = data.get("t"), data.get("accuracy")
    if not isinstance(ts, list) or not isinstance(acc, list) or len(ts) != len(acc):
        raise SpeckMttError(f'{path}: not an evaluation result; expected {{"t": [...], "accuracy": [...]}} '
                            "of equal length, as `speck-mtt train` writes")
    return dict(sorted((int(t), _fraction(a, path)) for t, a in zip(ts, acc)))


def _sd_value(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("sd")
    return None if value is None or value != value else float(value)


def _recording(json_path: Path, data: dict[str, Any]) -> Recording | None:
    """The recording of a measurement: its "record" path (absolute, or relative to the JSON's folder
    or the working directory), else <stem>.npz beside the JSON."""
    cands = [json_path.with_suffix(".npz")]
    if data.get("record"):
        rec = Path(data["record"])
        cands = [rec] if rec.is_absolute() else [json_path.parent / rec.name, json_path.parent / rec, rec] + cands
    path = next((p for p in cands if p.is_file()), None)
    return load_recording(path) if path is not None else None


def _sd(rec: Recording | None, ref: Recording | None, what: str) -> float | None:
    if rec is None or ref is None:
        return None
    try:
        return _sd_value(compare_recordings(rec, ref)[0].as_dict())
    except SpeckMttError as exc:
        raise SpeckMttError(f"{what}: {exc}") from None


def _compare_sd(data: dict[str, Any], backend: str) -> float | None:
    """SD from a measure `--compare` entry against a recording of `backend`."""
    return next((_sd_value(c) for c in data.get("compare") or [] if c.get("reference_backend") == backend), None)


def _accuracy_from(data: dict[str, Any], rec: Recording | None, path: Path) -> float | None:
    if data.get("accuracy") is not None:
        return _fraction(data["accuracy"], path)
    if rec is not None and rec.predictions is not None and len(rec.labels) and (rec.labels >= 0).all():
        return float((rec.predictions == rec.labels).mean())
    return None


def _n_weights(folder: Path) -> int | None:
    for ckpt_path in (folder / "deploy" / "model.pt", folder / "model.pt"):
        if ckpt_path.is_file():
            from .checkpoint import load_checkpoint, model_from_checkpoint

            return model_from_checkpoint(load_checkpoint(ckpt_path), ckpt_path).n_weights()
    return None


def _measure_dir(folder: Path) -> Path:
    deploy = folder / "deploy"
    if (deploy / SIM_FILE).is_file() or any(deploy.glob(CHIP_GLOB)):
        return deploy
    return folder


def _chip_runs(mdir: Path) -> list[tuple[Path, dict[str, Any], Recording | None]]:
    """Chip runs by stem: a JSON with its recording, or a recording alone."""
    runs = []
    for stem in sorted({p.stem for p in mdir.glob(CHIP_GLOB) if p.suffix in (".json", ".npz")}):
        path = mdir / f"{stem}.json"
        data = _read_json(path) if path.is_file() else {}
        runs.append((path, data, _recording(path, data)))
    return runs


def real_row(mdir: Path, t: int | None) -> dict[str, Any] | None:
    """The same model measured on the real recordings (REAL_FILE): torch at T, simulator, drop and SD."""
    path = mdir / REAL_FILE
    if not path.is_file():
        return None
    data = _read_json(path)
    torch_at = {int(e["t"]): e for e in data.get("torch") or []}
    at = torch_at.get(t) if t in torch_at else (torch_at[max(torch_at)] if torch_at and t is None else None)
    sim_acc = _fraction(data.get("accuracy"), path)
    torch_acc = _fraction(at.get("accuracy"), path) if at else None
    return {"dataset": data.get("dataset"), "n_samples": data.get("n_samples"), "t": int(at["t"]) if at else t,
            "torch_accuracy": torch_acc, "sim_accuracy": sim_acc,
            "drop_torch_to_sim_pp": 100 * (torch_acc - sim_acc) if torch_acc is not None and sim_acc is not None
            else None, "drop_se_pp": _drop_se(at), "sd_torch_vs_sim": _sd_value(at) if at else None}


def bias_removal_row(folder: Path, curve: dict[int, float]) -> dict[str, Any] | None:
    """BN base vs bias-free model at the base's T_max (same test split): what the Speck-ready step cost."""
    path = folder / "base" / "eval.json"
    if not path.is_file():
        return None
    base = torch_curve(_read_json(path), path)
    if not base:
        return None
    t = max(base)
    free = curve.get(t)
    return {"t": t, "base_accuracy": base[t], "bias_free_accuracy": free,
            "cost_pp": 100 * (base[t] - free) if free is not None else None}


def method_row(folder: Path, t: int | None = None) -> dict[str, Any]:
    """One Table-5 row from a method folder (see the module docstring)."""
    ev_path = folder / "eval.json"
    ev = _read_json(ev_path) if ev_path.is_file() else {}
    mdir = _measure_dir(folder)
    sim_path = mdir / SIM_FILE
    sim = _read_json(sim_path) if sim_path.is_file() else {}
    chips = _chip_runs(mdir)
    if not ev and not sim and not chips:
        raise SpeckMttError(f"{folder}: no eval.json, {SIM_FILE} or {CHIP_GLOB} file; "
                            "run training and `speck-mtt measure` into this folder first")
    curve = torch_curve(ev, ev_path) if ev else {}
    torch_at = {int(e["t"]): e for e in sim.get("torch") or []}
    t_chosen = t or (max(curve) if curve else (max(torch_at) if torch_at else None))
    at = torch_at.get(t_chosen) if t_chosen is not None else None
    sim_rec = _recording(sim_path, sim) if sim else None
    runs = [{"run": p.stem, "accuracy": _accuracy_from(d, r, p)} for p, d, r in chips]
    chip_accs = [r["accuracy"] for r in runs if r["accuracy"] is not None]
    first_chip = chips[0] if chips else None
    sd_sim_chip = _sd(sim_rec, first_chip[2], f"{folder} sim vs chip") if first_chip else None
    if sd_sim_chip is None and first_chip:
        sd_sim_chip = _compare_sd(first_chip[1], "sim") or _compare_sd(sim, "speck2e")
    sd_chip_chip = None
    if len(chips) > 1:
        sd_chip_chip = _sd(chips[1][2], chips[0][2], f"{folder} chip vs chip") or _compare_sd(chips[1][1], "speck2e")
    torch_acc = curve.get(t_chosen) if t_chosen is not None else None
    sim_acc = _accuracy_from(sim, sim_rec, sim_path)
    row: dict[str, Any] = {
        "method": folder.name,
        "dataset": sim.get("dataset") or ev.get("dataset") or next((d["dataset"] for _, d, _ in chips
                                                                    if d.get("dataset")), None),
        "t": t_chosen,
        "torch_accuracy": torch_acc,
        "torch_samples": ev.get("n_samples"),
        "torch_curve": {str(k): v for k, v in curve.items()},
        "torch_accuracy_sim_samples": at["accuracy"] if at else None,
        "sim_accuracy": sim_acc,
        "sim_samples": sim.get("n_samples"),
        "speck_accuracy": float(np.mean(chip_accs)) if chip_accs else None,
        "speck_runs": runs,
        "n_weights": _n_weights(folder),
        "sd_torch_vs_sim": _sd_value(at) if at else None,
        "sd_sim_vs_chip": sd_sim_chip,
        "sd_chip_vs_chip": sd_chip_chip,
        "spikes_per_sample": sim.get("spikes_per_sample"),
        "synops_per_sample": sim.get("synops_per_sample"),
        "drop_torch_to_sim_pp": None,
        "real": real_row(mdir, t_chosen),
        "bias_removal": bias_removal_row(folder, curve),
    }
    basis = at["accuracy"] if at else torch_acc
    if basis is not None and sim_acc is not None:
        row["drop_torch_to_sim_pp"] = 100 * (basis - sim_acc)
        row["drop_basis"] = "torch on the simulator's samples" if at else "eval.json (may be other samples)"
        row["drop_se_pp"] = _drop_se(at)
    if sim and t_chosen is not None and at is None:
        row["note"] = (f"measure compared with torch at T={sorted(torch_at)} only, not at T={t_chosen}: "
                       "no SD torch-vs-sim" if torch_at else "measure was run without --t: no SD torch-vs-sim")
    return row


def _has_results(folder: Path) -> bool:
    return (folder / "eval.json").is_file() or any(
        (d / SIM_FILE).is_file() or any(p.suffix in (".json", ".npz") for p in d.glob(CHIP_GLOB))
        for d in (folder, folder / "deploy"))


def _paper_key(dataset: str | None) -> str | None:
    if not dataset:
        return None
    base = dataset.lower().removesuffix("-sim").replace("_", "").replace("-", "")
    return {"nmnist": "nmnist", "gesture": "gesture", "dvsgesture": "gesture", "cifar10dvs": "cifar10dvs"}.get(base)


def _method_key(name: str) -> tuple[int, str]:
    key = name.lower()
    return (METHOD_ORDER.index(key) if key in METHOD_ORDER else len(METHOD_ORDER), key)


def build_report(results_dir: Path, t: int | None = None, dataset: str | None = None) -> dict[str, Any]:
    """Rows for every method folder of results_dir, plus the paper's reference numbers."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise SpeckMttError(f"{results_dir}: no such results folder; pass the --out folder of a recipe run")
    folders = [p for p in results_dir.iterdir() if p.is_dir() and _has_results(p)]
    if not folders:
        raise SpeckMttError(f"{results_dir}: no method folder with eval.json/measure_*.json inside; "
                            "expected RESULTS_DIR/<method>/eval.json (see speck-mtt report --help)")
    rows = [method_row(p, t) for p in sorted(folders, key=lambda p: _method_key(p.name))]
    run = _read_json(results_dir / "run.json") if (results_dir / "run.json").is_file() else {}
    name = dataset or run.get("dataset") or next((r["dataset"] for r in rows if r["dataset"]), None)
    key = _paper_key(name)
    paper = None
    if key:
        ref = PAPER_TABLE5[key]
        paper = {"dataset": key, "network": ref["network"], "n_weights": ref["n_weights"], "sd": ref.get("sd"),
                 "rows": [{"method": m, "torch": v[0], "sim": v[1], "speck": v[2],
                           "drop_torch_to_sim_pp": round(v[0] - v[1], 2)} for m, v in ref["methods"].items()]}
    return {"results_dir": str(results_dir), "dataset": name,
            "stand_in": bool(name and name.lower().endswith("-sim")), "rows": rows,
            "real_label": REAL800_LABEL if any(r["real"] for r in rows) else None, "paper": paper}


def _pct(v: float | None, digits: int = 2) -> str:
    return "-" if v is None else f"{100 * v:.{digits}f}"


def _plain(v: float | None, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def _drop_se(at: dict[str, Any] | None) -> float | None:
    """The paired standard error measure stored beside torch's accuracy (contracts.drop)."""
    se = (at or {}).get("drop_se_pp")
    return float(se) if isinstance(se, (int, float)) and np.isfinite(se) else None


def _drop(value: float | None, se: float | None) -> str:
    return _plain(value, ".2f") + (f" ± {se:.2f}" if value is not None and se is not None else "")


def render_report(report: dict[str, Any]) -> str:
    """Markdown: our Table 5, torch accuracy per T, and the paper's numbers in their own table."""
    name = report["dataset"] or "unknown dataset"
    lines = [f"# Table 5: {name}" + (" (offline simulated stand-in)" if report["stand_in"] else ""), "",
             "| method | T | Torch % | Simulator % | Speck % | drop torch->sim (pp ± paired SE) | params | "
             "SD torch-vs-sim % | SD sim-vs-chip % | SD chip-vs-chip % |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["rows"]:
        drop = r.get("drop_torch_to_sim_pp")
        lines.append(f"| {r['method'].upper()} | {r['t'] if r['t'] is not None else '-'} | {_pct(r['torch_accuracy'])} | "
                     f"{_pct(r['sim_accuracy'])} | {_pct(r['speck_accuracy'])} | "
                     f"{_drop(drop, r.get('drop_se_pp'))} | "
                     f"{_plain(r['n_weights'], ',')} | "
                     f"{_pct(r['sd_torch_vs_sim'])} | {_pct(r['sd_sim_vs_chip'])} | {_pct(r['sd_chip_vs_chip'])} |")
    real = [r for r in report["rows"] if r.get("real")]
    if real:
        lines += ["", f"Real recordings, {report['real_label']}: the same deployed models"
                  + (f", trained on {name} only" if report["stand_in"] else "") + ":", "",
                  "| method | T | Torch % | Simulator % | drop torch->sim (pp ± paired SE) | SD torch-vs-sim % | samples |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in real:
            x = r["real"]
            lines.append(f"| {r['method'].upper()} (real N-MNIST) | {x['t'] if x['t'] is not None else '-'} | "
                         f"{_pct(x['torch_accuracy'])} | {_pct(x['sim_accuracy'])} | "
                         f"{_drop(x['drop_torch_to_sim_pp'], x.get('drop_se_pp'))} | {_pct(x['sd_torch_vs_sim'])} | "
                         f"{_plain(x['n_samples'], ',')} |")
    steps = [r for r in report["rows"] if r.get("bias_removal")]
    if steps:
        lines += ["", "The Speck-ready step (BN absorbed, bias dropped, fine-tuned bias-free), torch on the test split:",
                  "", "| method | T | base with BN % | bias-free % | cost (pp) | bias-free at T_max % | simulator % |",
                  "|---|---:|---:|---:|---:|---:|---:|"]
        for r in steps:
            b = r["bias_removal"]
            lines.append(f"| {r['method'].upper()} | {b['t']} | {_pct(b['base_accuracy'])} | "
                         f"{_pct(b['bias_free_accuracy'])} | {_plain(b['cost_pp'], '.2f')} | "
                         f"{_pct(r['torch_accuracy'])} (T={r['t']}) | {_pct(r['sim_accuracy'])} |")
    notes = [f"- {r['method'].upper()}: {r['note']}" for r in report["rows"] if r.get("note")]
    notes += [f"- {r['method'].upper()}: Speck accuracy is the mean of {len(r['speck_runs'])} chip runs"
              for r in report["rows"] if len(r["speck_runs"]) > 1]
    notes += [f"- {r['method'].upper()}: drop uses eval.json ({r['torch_samples']} samples) against the simulator's "
              f"{r['sim_samples']} samples; run measure with --t {r['t']} for a same-sample comparison"
              for r in report["rows"] if r.get("drop_basis", "").startswith("eval.json")]
    if notes:
        lines += [""] + notes
    ts = sorted({int(t) for r in report["rows"] for t in r["torch_curve"]})
    if ts:
        lines += ["", "Torch accuracy % per T:", "", "| method | " + " | ".join(map(str, ts)) + " |",
                  "|---|" + "---:|" * len(ts)]
        for r in report["rows"]:
            lines.append(f"| {r['method'].upper()} | " + " | ".join(_pct(r["torch_curve"].get(str(t)), 1) for t in ts)
                         + " |")
    paper = report["paper"]
    if paper:
        lines += ["", f"Paper reference (MTT paper Table 5, {paper['dataset']}, {paper['network']}"
                  + (f", {paper['n_weights']:,} weights" if paper["n_weights"] else "") + "; real data and chip"
                  + ("; NOT comparable sample for sample with the stand-in above" if report["stand_in"] else "") + "):",
                  "", "| method | Torch % | Simulator % | Speck % | drop torch->sim (pp) |", "|---|---:|---:|---:|---:|"]
        for r in paper["rows"]:
            lines.append(f"| {r['method'].upper()} | {r['torch']:.2f} | {r['sim']:.2f} | "
                         f"{_plain(r['speck'], '.2f')} | "
                         f"{r['drop_torch_to_sim_pp']:.2f} |")
        if paper.get("sd"):
            sd = paper["sd"]
            lines += ["", f"Paper spike differences (N-MNIST): simulator vs chip {sd['sim_vs_chip']}%, chip vs chip "
                      f"{sd['chip_vs_chip']}%, time-stepped vs chip {sd['timestepped_vs_chip']}%."]
    return "\n".join(lines) + "\n"


def plot_accuracy(report: dict[str, Any], path: Path) -> None:
    """Torch accuracy vs T per method, simulator accuracy as a dashed horizontal line, chip as a star."""
    from matplotlib import rcParams  # matplotlib only where a figure is drawn

    from .plots import new_figure, save_png

    fig = new_figure((6, 4))
    ax = fig.subplots()
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    for i, r in enumerate(report["rows"]):
        c = colors[i % len(colors)]
        label = r["method"].upper()
        if r["torch_curve"]:
            ts = [int(t) for t in r["torch_curve"]]
            ax.plot(ts, [100 * v for v in r["torch_curve"].values()], "o-", color=c, label=f"{label} torch")
        if r["sim_accuracy"] is not None:
            ax.axhline(100 * r["sim_accuracy"], color=c, ls="--", label=f"{label} simulator")
        if r["speck_accuracy"] is not None and r["t"] is not None:
            ax.plot([r["t"]], [100 * r["speck_accuracy"]], "*", color=c, ms=12, label=f"{label} Speck")
    ax.set_xlabel("time steps T")
    ax.set_ylabel("accuracy %")
    title = report["dataset"] or ""
    ax.set_title(f"{title}{' (stand-in)' if report['stand_in'] else ''}: torch accuracy vs T")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def write_report(results_dir: Path, out: Path | None = None, t: int | None = None,
                 dataset: str | None = None, plot: bool = True) -> dict[str, Any]:
    """build_report, then write report.md, report.json and accuracy_vs_t.png into out (default results_dir)."""
    report = build_report(results_dir, t, dataset)
    out = Path(out or results_dir)
    remove_stale_temps(out)  # an unlocked folder: what killed writers left, nobody else removes
    save_json(report, out / "report.json")
    save_text(render_report(report), out / "report.md")
    if plot:
        plot_accuracy(report, out / "accuracy_vs_t.png")
    return report
