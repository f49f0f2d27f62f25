"""INT8 variant sweep: calibration methods / sizes, per-layer-group sensitivity, sensitive groups in float.

    edgepose-bench quantize-sweep runs/f3-distill/student.onnx --calib ../shared/data/videos \\
        --calib ../shared/data/faces-aws --calib ../shared/data/in-cabin \\
        --detector-model ../shared/data/detectors/yunet/yunet_s_dynamic.onnx \\
        --eval aflw2000:../shared/data/aflw2000-sample --synth-test 300 --out runs/f3-sweep

Every variant is quantized with :func:`edgepose.quantize.ptq.quantize_onnx` (``tensorrt`` variants
pass the Q/DQ lint or fail) and scored against the FP32 model on each evaluation set: mean Euler
MAE, its change vs FP32 (dMAE; the acceptance bound is |dMAE| <= 0.5 deg) and the mean geodesic
angle between INT8 and FP32 predictions (drift; label-free, so it is not hidden by label noise).

Stages (``--stages``):

* ``methods``: minmax / entropy / percentile (99.99, 99.999) with all calibration crops, and minmax
  with a quarter of them;
* ``sensitivity``: quantize ONE layer group at a time (stem conv, each residual block...; the rest
  stays float) and measure its drift;
* ``exclude``: full quantization with the 1, 2, 3 most sensitive groups kept in float;
* ``equalize``: full quantization with activation equalization across ReLU (:mod:`.equalize`) at strengths 0, 0.5
  and 1 before dense convs, with ``--method``.

``--shift-faces DIR`` (photos, e.g. ``../shared/data/faces-aws``) adds the [accuracy] issue's INT8 stability
measure to every row: the mean change of the answer when each face box moves by 0.01 px
(:func:`edgepose.evaluation.subpixel_change`, as ``edgepose models evaluate`` and the stability test compute it);
``--rank-by shift`` then ranks the layer groups by that instead of by drift, so ``exclude`` keeps in float the
groups that make the INT8 answer jump.

Writes ``sweep.json`` and ``sweep.md`` (atomic) into ``--out``.  Minutes on 2 cores; not a test.
"""
from __future__ import annotations

import json
import logging
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np

from edgepose.errors import UserError

__all__ = ["layer_groups", "synthetic_test_set", "shift_change", "score", "run_sweep"]

log = logging.getLogger(__name__)
STAGES = ("methods", "sensitivity", "exclude", "equalize")


def layer_groups(graph, depth: int = 4) -> "OrderedDict[str, list[str]]":
    """Backbone nodes (before the pooled features) grouped by their conv weight's module path.

    A Conv's group is its weight initializer name cut to ``depth`` dotted parts
    (``model.backbone.layer2.0.downsample.0.weight`` -> ``model.backbone.layer2.0``; the stem
    ``model.backbone.conv1.weight`` -> ``model.backbone.conv1``); every other node joins the group
    of the last Conv before it in graph order (its BN / ReLU / residual Add).
    """
    from .graph import head_nodes

    head = {n.name for n in head_nodes(graph)}  # the pools themselves included
    groups: OrderedDict[str, list[str]] = OrderedDict()
    current = None
    for n in graph.node:
        if n.name in head:
            continue
        if n.op_type == "Conv" and len(n.input) > 1:
            parts = n.input[1].split(".")
            parts = parts[:-1] if parts[-1] in ("weight", "bias") else parts
            current = ".".join(parts[:depth])
        if current is not None and n.name:
            groups.setdefault(current, []).append(n.name)
    return groups


def synthetic_test_set(n: int, spec, pose_range: str = "wide", seed: int = 2024, size: int = 160,
                       cache: Path | None = None) -> tuple[np.ndarray, np.ndarray, dict]:
    """``n`` synthetic heads of the ``test`` identity split (disjoint from train/val identities)."""
    from edgepose.synth import SynthHeadDataset

    from .report import eval_batch

    desc = {"split": "test", "n": n, "pose_range": pose_range, "seed": seed, "size": size}
    if cache is not None and cache.is_file():
        z = np.load(cache, allow_pickle=False)
        if json.loads(str(z["desc"])) == desc and z["x"].shape[1:] == (spec.channels, spec.input_size, spec.input_size):
            return z["x"], z["R"], desc
    ds = SynthHeadDataset(n, seed=seed, split="test", pose_range=pose_range, size=size)
    x, R = eval_batch(ds, spec)
    if cache is not None:
        import io

        from edgepose.metadata import atomic_write_bytes

        buf = io.BytesIO()
        np.savez(buf, x=x, R=R, desc=json.dumps(desc))
        atomic_write_bytes(cache, buf.getvalue())
    return x, R, desc


def shift_change(path, faces: list, spec, threads: int) -> np.ndarray:
    """The [accuracy] issue's INT8 stability measure for one ONNX file: the geodesic change (deg) of its answer
    per face of ``faces`` ((image, box) pairs) and sub-pixel box shift
    (:func:`edgepose.evaluation.subpixel_change`, the function `models evaluate` and the stability test use)."""
    from edgepose.evaluation import subpixel_change
    from edgepose.preprocess import preprocess

    from .report import predict_onnx

    return subpixel_change(lambda items: predict_onnx(path, np.stack([preprocess(im, b, spec) for im, b in items]),
                                                      threads), faces)


def score(path, sets: dict, ref: dict | None, threads: int, shift: tuple[list, object] | None = None) -> dict:
    """Accuracy per set; with ``ref`` (the FP32 row) also dMAE and the geodesic drift to FP32; with ``shift``
    = (faces, preprocess spec) also ``scores["shift"]``, the mean / max change under a sub-pixel box shift."""
    from edgepose.geometry import geodesic_distance

    from .report import evaluate_onnx

    out = {}
    if shift is not None:
        moved = shift_change(path, *shift, threads)
        out["shift"] = {"shift": float(moved.mean()), "shift_max": float(moved.max())}
    for name, (x, R) in sets.items():
        acc, P = evaluate_onnx(path, x, R, threads=threads)
        row = {"mae": acc["mae"], "ge": acc["ge"], "R": P}
        if ref is not None:
            row["dmae"] = acc["mae"] - ref[name]["mae"]
            row["drift"] = float(geodesic_distance(P, ref[name]["R"]).mean())
            row["drift_p95"] = float(np.percentile(geodesic_distance(P, ref[name]["R"]), 95))
        out[name] = row
    return out


def _markdown(rows: list[dict], sets: list[str], shift: bool = False) -> str:
    head = "| variant | profile | method | crops | float groups | Q/DQ | " + " | ".join(
        f"{s} MAE | {s} dMAE | {s} drift (p95)" for s in sets) + (" | 0.01 px shift (mean / max) |" if shift else " |")
    lines = [head, "|" + "---|" * (6 + 3 * len(sets) + shift)]
    for r in rows:
        cells = [r["variant"], r.get("profile", "-"), r.get("method", "-"), str(r.get("crops", "-")),
                 ", ".join(g.replace("model.backbone.", "") for g in r.get("float_groups", [])) or "-",
                 str(r.get("num_qdq", "-"))]
        for s in sets:
            sc = r["scores"][s]
            cells += [f"{sc['mae']:.2f}", f"{sc['dmae']:+.2f}" if "dmae" in sc else "-",
                      f"{sc['drift']:.2f} ({sc['drift_p95']:.2f})" if "drift" in sc else "-"]
        if shift:
            sh = r["scores"]["shift"]
            cells.append(f"{sh['shift']:.3f} / {sh['shift_max']:.2f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_sweep(model: str | Path, calib_sources: list[str], settings, eval_set: str | None = None, synth_test: int = 300,
              synth_range: str = "wide", profile: str = "tensorrt", stages: str = "methods,sensitivity,exclude",
              method: str = "minmax", depth: int = 4, threads: int = 1, list_groups: bool = False,
              max_crops: int = 512, out: str | Path = "runs/quantize-sweep", command: str = "",
              shift_faces: str | Path | None = None, rank_by: str = "drift") -> int:
    """Run the stages (see the module doc) and write ``sweep.json`` / ``sweep.md`` into ``out``.

    ``settings``: the calibration face detector (``DetectorSettings`` of ``data.faces``, built by the
    caller: quantize does not import distill); ``command`` is recorded in the report and every variant."""
    import onnx

    from edgepose.metadata import atomic_write_text, load_metadata

    from .calibration import build_calibration_set
    from .ptq import pre_process, quantize_onnx

    model, out = Path(model), Path(out)
    unknown = [t for t in (x.strip() for x in stages.split(",")) if t and t not in STAGES]
    if unknown:
        raise UserError(f"--stages: unknown stage(s) {', '.join(unknown)}; choose from {', '.join(STAGES)}")
    out.mkdir(parents=True, exist_ok=True)
    pre = out / "pre.onnx"
    pre_process(model, pre)
    groups = layer_groups(onnx.load(str(pre)).graph, depth)
    if list_groups:
        for g, names in groups.items():
            print(f"{g}: {len(names)} nodes ({', '.join(names[:4])}{', ...' if len(names) > 4 else ''})")
        return 0
    meta = load_metadata(model)
    spec = meta.preprocess
    sets: dict[str, tuple] = {}
    if eval_set:
        from edgepose.data.options import build_eval_reader, parse_data_arg

        from .report import eval_batch

        sets["aflw"] = eval_batch(build_eval_reader(parse_data_arg(eval_set), where="--eval"), spec)
    if synth_test:
        x, R, desc = synthetic_test_set(synth_test, spec, synth_range, cache=out / "synth-test.npz")
        sets["synth"] = (x, R)
    if shift_faces:
        from edgepose.evaluation import photo_faces

        faces = photo_faces(shift_faces, settings.model_path)
        if not faces:
            raise UserError(f"--shift-faces {shift_faces}: no face found in its *.JPG photos; give a folder of photos")
    shift = (faces, spec) if shift_faces else None
    if rank_by == "shift" and shift is None:
        raise UserError("--rank-by shift needs --shift-faces DIR (photos whose faces are moved by 0.01 px)")
    # what the sensitivity stage ranks layer groups by: checked before the calibration and the quantizing
    key = "shift" if rank_by == "shift" else ("synth" if "synth" in sets else next(iter(sets), None))
    if key is None and ("sensitivity" in stages or "exclude" in stages):
        raise UserError("the sensitivity / exclude stages rank layer groups by drift on an evaluation set: "
                        "give --eval or --synth-test N (or --shift-faces DIR --rank-by shift)")
    calib = build_calibration_set(calib_sources, spec, settings, max_crops=max_crops)
    log.info("calibration: %d crops; eval sets: %s", len(calib.crops), {k: len(v[0]) for k, v in sets.items()})

    fp32 = score(model, sets, None, threads, shift)
    rows: list[dict] = [{"variant": "fp32", "profile": "-", "method": "-", "crops": "-", "scores": fp32}]
    stages = [s.strip() for s in stages.split(",") if s.strip()]

    def run(variant: str, method: str = method, crops: np.ndarray = calib.crops, float_groups=(), only=None,
            percentile: float = 99.999, equalize: float | None = None) -> dict:
        t0 = time.perf_counter()
        path = out / f"{variant}.onnx"
        exclude = [n for g in float_groups for n in groups[g]]
        # ORT's calibrators stack per-batch outputs: every batch must have the same size
        bs = max(d for d in range(1, 17) if len(crops) % d == 0)
        res = quantize_onnx(model, path, crops, profile, method=method, percentile=percentile, exclude=exclude,
                            only=only, batch_size=bs, command=command, equalize=equalize)
        row = {"variant": variant, "profile": profile, "method": method if method != "percentile" else
               f"percentile {percentile}", "crops": int(len(crops)), "float_groups": list(float_groups),
               "num_qdq": res.num_q + res.num_dq, "equalize": equalize,
               "scores": score(path, sets, fp32, threads, shift),
               "seconds": time.perf_counter() - t0}
        rows.append(row)
        path.unlink(missing_ok=True)
        path.with_name(path.name + ".json").unlink(missing_ok=True)
        log.info("%s: %s", variant, {k: {m: round(x, 3) for m, x in v.items() if m in ("mae", "dmae", "drift", "shift")}
                                     for k, v in row["scores"].items()})
        _save()
        return row

    def _save():
        clean = [{**r, "scores": {k: {m: v for m, v in s.items() if m != "R"} for k, s in r["scores"].items()}}
                 for r in rows]
        atomic_write_text(out / "sweep.json", json.dumps({"model": str(model), "groups": list(groups), "rows": clean,
                                                          "sets": {**{k: len(v[0]) for k, v in sets.items()},
                                                                   **({"shift": len(shift[0])} if shift else {})},
                                                          "command": command}, indent=2) + "\n")
        atomic_write_text(out / "sweep.md", _markdown(rows, list(sets), shift is not None))

    metric = "shift" if rank_by == "shift" else "drift"
    if "methods" in stages:
        run("minmax", "minmax")
        run("entropy", "entropy")
        run("percentile-99.99", "percentile", percentile=99.99)
        run("percentile-99.999", "percentile", percentile=99.999)
        quarter = calib.crops[np.random.default_rng(0).choice(len(calib.crops), len(calib.crops) // 4, replace=False)]
        run("minmax-quarter-crops", "minmax", crops=quarter)
    sens: dict[str, float] = {}
    if "sensitivity" in stages or "exclude" in stages:
        for g, names in groups.items():
            conv_names = names  # the group's own nodes; ORT adds the Q/DQ of their inputs
            r = run(f"only-{g.replace('model.backbone.', '')}", only=conv_names)
            sens[g] = r["scores"][key][metric]
    if "exclude" in stages:
        worst = sorted(sens, key=sens.get, reverse=True)
        for k in (1, 2, 3):
            run(f"float-top{k}", float_groups=worst[:k])
    if "equalize" in stages:
        for alpha in (0.0, 0.5, 1.0):
            run(f"equalize-{alpha:g}", equalize=alpha)
    _save()
    print(_markdown(rows, list(sets), shift is not None))
    return 0

