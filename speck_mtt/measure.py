"""`speck-mtt measure`: accuracy, spike difference, spikes, SynOps and speed of a deployed network.

Backends: "sim" (the bundled event-driven simulator, speck_mtt.eventsim) or "speck2e" (a devkit
through speck_mtt.chip.devkit.measure_on_devkit, imported only when asked for).

Every spike difference is speck_mtt.contracts.sd.spike_difference, SD(this run, reference):
- against the time-stepped torch model (DEPLOY_DIR/model.pt) at each --t: torch spikes of the
  last spiking layer summed over time. That is the output layer for IF voting; for membrane
  voting, whose readout never spikes, it is the layer feeding the readout (compared on both
  sides).
- against recordings (--compare): matched by sample id, same layer convention.
Under torchrun (WORLD_SIZE > 1) the simulator shards the samples across ranks (gloo) and rank 0
gathers, compares and writes.
"""

from __future__ import annotations

import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .checkpoint import DEFAULT_DATASET
from .errors import DataError, SpeckMttError
from .contracts.drop import paired_drop
from .contracts.sd import spike_difference
from .eventsim import BatchResult, SimNet, compile_artifact, load_artifact, simulate_sharded
from .contracts.recording import Recording, compare_recordings, load_recording, save_recording
from .files import finite_json, save_json


def _init_distributed() -> bool:
    """Join the torchrun process group (gloo) when launched with WORLD_SIZE > 1."""
    import torch.distributed as dist

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return False
    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return True


def _is_main() -> bool:
    import torch.distributed as dist

    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


def check_sensor(net: SimNet, dataset: str) -> None:
    """A dataset whose sensor differs from the deployed network's input is a one-line error."""
    from .data import DATASETS

    w, h, _ = DATASETS[dataset].sensor_size
    _, nh, nw = net.input_shape
    if (w, h) != (nw, nh):
        raise DataError(f"dataset {dataset} has a {w}x{h} sensor but the deployed network takes {nw}x{nh} input; "
                        f"pass the --dataset it was trained on")


def recording_of(result: BatchResult, meta: dict[str, Any]) -> Recording:
    return Recording(result.spiking_counts, result.labels, result.sample_ids, result.predictions, meta)


def torch_counts(deploy_dir: Path, dataset: str, n_frames: int, data_dir: Path | None, limit: int | None,
                 batch_size: int = 64) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """Time-stepped torch run of DEPLOY_DIR/model.pt at T = n_frames: for every spiking layer, its
    spikes per channel summed over time and space (N, C) (the last one is what SD compares),
    predictions and labels."""
    from .checkpoint import load_checkpoint, model_from_checkpoint
    from .data import frame_dataset
    from .models.neurons import spiking_neurons

    model = model_from_checkpoint(load_checkpoint(deploy_dir / "model.pt"), deploy_dir / "model.pt").eval()
    neurons = spiking_neurons(model)
    captured: dict[int, torch.Tensor] = {}
    handles = [n.register_forward_hook(lambda mod, args, out, i=i: captured.__setitem__(i, out.detach()))
               for i, n in enumerate(neurons)]
    data = frame_dataset(dataset, "test", n_frames, data_dir=data_dir, limit=limit)
    counts: list[list[torch.Tensor]] = [[] for _ in neurons]
    preds, labels = [], []
    try:
        with torch.no_grad():
            for start in range(0, len(data), batch_size):
                items = [data[i] for i in range(start, min(start + batch_size, len(data)))]
                x = torch.stack([f for f, _ in items])
                captured.clear()
                out = model(x)
                for i, spikes in captured.items():
                    spikes = spikes.reshape(len(items), -1, *spikes.shape[1:])  # (B, T, C, ...)
                    counts[i].append(spikes.sum(1).flatten(2).sum(2) if spikes.dim() > 3 else spikes.sum(1))
                preds.append(out.mean(1).argmax(1))
                labels.extend(label for _, label in items)
    finally:
        for handle in handles:
            handle.remove()
    return ([torch.cat(c).round().long().numpy() for c in counts], torch.cat(preds).numpy(),
            np.asarray(labels, np.int64))


def model_t_max(deploy_dir: Path) -> int:
    """T_max the deployed model was trained at (DEPLOY_DIR/model.pt)."""
    from .checkpoint import load_checkpoint, t_max_of

    t_max = t_max_of(load_checkpoint(deploy_dir / "model.pt"))
    if t_max is None:
        raise SpeckMttError(f"{deploy_dir / 'model.pt'} records no t_max; pass --t")
    return t_max


def _summary_numbers(result: BatchResult, net: SimNet | None) -> dict[str, Any]:
    n = max(len(result), 1)
    out = {"n_samples": len(result), "n_empty": int((result.n_events == 0).sum()),
           "accuracy": float((result.predictions == result.labels).mean()) if len(result) else float("nan"),
           "input_events_per_sample": float(result.n_events.sum()) / n,
           "spikes_per_sample": float(result.layer_spikes.sum()) / n,
           "synops_per_sample": float(result.synops.sum()) / n,
           "layers": [{"layer": i, "spikes_per_sample": float(result.layer_spikes[:, i].sum()) / n,
                       "synops_per_sample": float(result.synops[:, i].sum()) / n,
                       **{f"{k}_per_sample": float(v[:, i].sum()) / n for k, v in result.events.items()}}
                      for i in range(result.layer_spikes.shape[1])]}
    if net is not None:
        out["compared_layer"] = net.spiking_layer
    return out


def spiking_layers(net: SimNet) -> list[int]:
    """Artifact layers with a firing neuron, in order: the torch model's IAF layers, one to one."""
    return [i for i in range(net.n_layers) if not (i == net.out_layer and net.readout == "membrane")]


def layer_diagnosis(result: BatchResult, net: SimNet, torch_layers: list[np.ndarray]) -> list[dict[str, Any]]:
    """Per spiking layer: spikes per sample in torch and in the simulator, and the SD between them,
    so one sees at which depth the event-driven run departs from the time-stepped one."""
    layers = spiking_layers(net)
    if len(layers) != len(torch_layers):
        raise SpeckMttError(f"the artifact has {len(layers)} spiking layers but its model.pt {len(torch_layers)}; "
                            "re-deploy the checkpoint")
    n = max(len(result), 1)
    rows = []
    for layer, ref in zip(layers, torch_layers):
        sim = result.channel_counts[:, net.channel_slice(layer)]
        ref = ref[result.sample_ids]
        rows.append({"layer": layer, "torch_spikes_per_sample": float(ref.sum()) / n,
                     "sim_spikes_per_sample": float(sim.sum()) / n, "sd": spike_difference(sim, ref).pooled})
    return rows


def floor_sweep(artifact: dict[str, Any], floors: list[float], data, workers: int | None,
                float_mode: bool) -> list[tuple[float, BatchResult]]:
    """Simulator runs with every spiking layer clamped at each floor (thresholds): a sweep of the
    chip's lower-threshold setting without re-deploying. Runs on every rank (sharded)."""
    from .chip.layout import with_floor

    return [(float(floor), simulate_sharded(compile_artifact(with_floor(artifact, floor), float_mode=float_mode),
                                            data, workers=workers)) for floor in floors]


def floor_rows(sweep: list[tuple[float, BatchResult]],
               torch_runs: dict[int, tuple[list[np.ndarray], np.ndarray, np.ndarray]]) -> list[dict[str, Any]]:
    """Accuracy, floor hits and SD against torch at each T for every floor of the sweep."""
    rows = []
    for floor, result in sweep:
        n = max(len(result), 1)
        rows.append({"floor": floor, "accuracy": float((result.predictions == result.labels).mean()),
                     "floor_hits_per_sample": float(result.events["floor_hits"].sum()) / n,
                     "torch": [{"t": t, "sd": spike_difference(result.spiking_counts, layers[-1][result.sample_ids]).pooled}
                               for t, (layers, _, _) in torch_runs.items()]})
    return rows


def _simulate_with_progress(net: SimNet, data, workers: int | None, flag: bool | None) -> BatchResult:
    """simulate_sharded, with a bar and remaining time on rank 0 (over its own shard)."""
    import torch.distributed as dist

    from .eventsim.progress import CHUNK_PER_WORKER, sample_progress, wanted
    from .eventsim.simulator import set_workers

    rank, world = (dist.get_rank(), dist.get_world_size()) if dist.is_initialized() else (0, 1)
    show = _is_main() and wanted(flag)
    chunk = CHUNK_PER_WORKER * set_workers(workers) if show else 64
    with sample_progress(len(range(rank, len(data), world)), show) as tick:
        return simulate_sharded(net, data, workers=workers, progress=tick, chunk_size=chunk)


def measure(deploy_dir: Path, backend: str = "sim", dataset: str | None = None, data_dir: Path | None = None,
            limit: int | None = None, t: list[int] | None = None, workers: int | None = None,
            float_mode: bool = False, record: Path | None = None, compare: list[Path] | None = None,
            out: Path | None = None, floors: list[float] | None = None,
            progress: bool | None = None) -> dict[str, Any] | None:
    """Run the measurement; returns the result dict on rank 0 (None on other ranks) and writes it
    to `out` (default DEPLOY_DIR/measure-<backend>[-float].json; an evaluation set such as
    nmnist-real800 gets measure-<backend>[-float]-<dataset>.json and torch at T_max by default).
    floors: also simulate with the lower threshold at each of these (thresholds), a sweep of the
    chip's floor setting. progress: show the simulator's progress bar (None: when stderr is a
    terminal)."""
    from .data import resolve_dataset
    from .data.registry import data_root, get_info

    deploy_dir = Path(deploy_dir)
    references = read_references(compare)
    artifact = load_artifact(deploy_dir)
    net = compile_artifact(artifact, float_mode=float_mode)
    name = dataset or DEFAULT_DATASET.get(net.arch)
    if name is None:
        raise SpeckMttError(f"no default dataset for architecture {net.arch!r}; pass --dataset")
    requested, name = name, resolve_dataset(name, data_dir)
    check_sensor(net, name)
    eval_set = get_info(name).eval_only
    if eval_set and not t:
        t = [model_t_max(deploy_dir)]  # an evaluation set is measured against torch at the model's T_max
    meta = {"backend": backend, "dataset": name, "split": "test", "layer": net.spiking_layer,
            "float": float_mode, "deploy_dir": str(deploy_dir)}

    start = time.perf_counter()
    if backend == "sim":
        from .data import event_dataset

        distributed = _init_distributed()
        data = event_dataset(name, "test", data_dir=data_dir, limit=limit)
        result = _simulate_with_progress(net, data, workers, progress)
        sweep = floor_sweep(artifact, floors or [], data, workers, float_mode)
        summary = _summary_numbers(result, net)
        rec = recording_of(result, meta)
        speed = {"wall_s": time.perf_counter() - start, "sim_s": result.sim_seconds,
                 "samples_per_s": len(result) / max(result.seconds, 1e-9),
                 "input_events_per_s": float(result.n_events.sum()) / max(result.seconds, 1e-9),
                 "workers": workers, "ranks": int(os.environ.get("WORLD_SIZE", "1")) if distributed else 1}
    else:
        from .chip.devkit import measure_on_devkit  # raises DeviceError without a devkit

        got = measure_on_devkit(deploy_dir, name, data_dir=data_dir, limit=limit, record=record)
        rec = got if isinstance(got, Recording) else load_recording(got)
        summary = {"n_samples": len(rec.counts), "accuracy": float((rec.predicted() == rec.labels).mean()),
                   "compared_layer": rec.meta.get("layer")}
        speed = {"wall_s": time.perf_counter() - start,
                 "samples_per_s": len(rec.counts) / max(time.perf_counter() - start, 1e-9)}
    if not _is_main():
        return None

    report: dict[str, Any] = {"deploy_dir": str(deploy_dir), "arch": net.arch, "head": net.head, **meta,
                              "dataset_requested": requested, "data_dir": str(data_root(data_dir).resolve()),
                              "floor": artifact.get("floor"), **summary, **speed, "torch": [], "compare": []}
    torch_runs = {}
    for n_frames in t or []:
        layers, preds, labels = torch_counts(deploy_dir, name, int(n_frames), data_dir, limit)
        counts = layers[-1]
        if counts.shape[1] != rec.counts.shape[1] or (len(rec.sample_ids) and rec.sample_ids.max() >= len(counts)):
            raise SpeckMttError(f"torch at T={n_frames} gives {counts.shape} spike counts, {backend} "
                                f"{rec.counts.shape} (ids up to {rec.sample_ids.max(initial=-1)}); the model.pt in "
                                f"{deploy_dir} does not match its artifact")
        torch_runs[int(n_frames)] = (layers, preds, labels)
        torch_right = preds[rec.sample_ids] == labels[rec.sample_ids]
        row = {"t": int(n_frames), "accuracy": float((preds == labels).mean()),
               **spike_difference(rec.counts, counts[rec.sample_ids]).as_dict(),
               **paired_drop(torch_right, rec.predicted() == rec.labels).as_dict()}
        if backend == "sim":
            row["layers"] = layer_diagnosis(result, net, layers)
        report["torch"].append(row)
    if floors and backend == "sim":
        report["floors"] = floor_rows(sweep, torch_runs)
    for path, other in references:
        sd, n_common = compare_recordings(rec, other)
        report["compare"].append({"reference": str(path), "reference_backend": other.meta.get("backend"),
                                  "n_common": n_common, **sd.as_dict()})
    if record is not None and backend == "sim":
        report["record"] = str(save_recording(rec, record))
    report["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    report = finite_json(report)
    # an evaluation set gets its own file: it never overwrites the measurement on the model's own test split
    target = out or deploy_dir / f"measure-{backend}{'-float' if float_mode else ''}{'-' + name if eval_set else ''}.json"
    save_json(report, target)
    report["written"] = str(target)
    return report


def read_references(paths: list[Path] | None) -> list[tuple[Path, Recording]]:
    """The --compare recordings, read before anything runs, so a wrong path fails at once."""
    try:
        return [(Path(p), load_recording(p)) for p in paths or []]
    except SpeckMttError as exc:
        raise SpeckMttError(f"--compare {exc}") from None


def search_deployed(deploy_dir: Path, dataset: str, data_dir: Path | None, limit: int | None) -> dict[str, Any]:
    """The temporal-configuration search with `speck-mtt search`'s defaults, written beside the measurement."""
    from .analysis.config_search import search_configuration, write_search
    from .analysis.probe import checkpoint_and_test_frames

    model, data, t_max, _ = checkpoint_and_test_frames(deploy_dir / "model.pt", dataset, data_dir, None, limit)
    result = search_configuration(model, data, 1, t_max)
    write_search(result, deploy_dir)
    return result
