"""The imported teachers side by side on the AFLW2000 fixtures (docs/importers.md).

    edgepose-bench teachers --data-root ../shared/data --out /tmp/teachers.json

For every teacher spec (default: ``whenet``, ``3ddfa-v2`` and ``fsanet``, each from the edgepose
cache or else from ``--data-root``'s ``teachers/`` folder): import it, export it to ONNX (opset 17),
and on the six ``aflw2000-sample`` faces found by the deployment detector (YuNet), each model
cropping the box with its own preprocessing, report Euler MAE per axis and the geodesic error;
then ONNX Runtime CPU latency at batch 1 with one intra-op thread (``--iters`` runs of each, interleaved;
median and minimum).
``--scales`` also scores the 3DDFA_V2 / FSA-Net crops at other detector-box scales (how their
``CropPolicy`` was chosen).  Six faces only: a sign and sanity check, not a benchmark of accuracy.
"""
from __future__ import annotations

import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
# spec -> the shared data folder's copy, used when the edgepose cache has none
DATA_WEIGHTS = {"3ddfa-v2": "teachers/3ddfa_v2/mb05_120x120.pth", "fsanet": "teachers/fsanet-onnx"}


def _member_spec(name: str, root: Path) -> str:
    from edgepose.importers import get_importer

    cached = get_importer(name).cache_path()
    if cached is not None and cached.exists() or name not in DATA_WEIGHTS:
        return name
    return f"{name}:{root / DATA_WEIGHTS[name]}"


def _score(R: np.ndarray, G: np.ndarray) -> dict:
    from edgepose.metrics import euler_abs_errors, geodesic_errors

    ae, ge = euler_abs_errors(R, G), geodesic_errors(R, G)
    return {"mae": float(ae.mean()), "pitch": float(ae[:, 0].mean()), "yaw": float(ae[:, 1].mean()),
            "roll": float(ae[:, 2].mean()), "geodesic": float(ge.mean()), "geodesic_max": float(ge.max())}


def _latency_ms(backends: dict, inputs: dict, iters: int, warmup: int = 10) -> dict[str, dict]:
    """Batch-1 latency of every backend, interleaved (one run of each in turn) so that a busy machine's
    load falls on all of them alike; median and minimum (the least disturbed run) in ms."""
    times: dict[str, list[float]] = {k: [] for k in backends}
    for i in range(warmup + iters):
        for name, backend in backends.items():
            t0 = time.perf_counter()
            backend.infer(inputs[name])
            if i >= warmup:
                times[name].append((time.perf_counter() - t0) * 1e3)
    return {k: {"median": statistics.median(v), "min": min(v)} for k, v in times.items()}


def teacher_report(data_root: str | None = None, teachers: tuple[str, ...] = ("whenet", "3ddfa-v2", "fsanet"),
                   detector_model: str = "detectors/yunet/yunet_s_640_640.onnx",
                   scales: tuple[float, ...] = (1.0, 1.2, 1.4, 1.6), iters: int = 200, command: str = "") -> dict:
    """Score and time every teacher spec on the AFLW2000 fixtures (see the module doc); a teacher
    that cannot be loaded is reported as skipped."""
    import torch

    from edgepose.assets.evaluate import aflw_faces
    from edgepose.distill.teacher import load_teacher
    from edgepose.errors import UserError
    from edgepose.export import export_onnx
    from edgepose.preprocess import PreprocessSpec, preprocess
    from edgepose.runtime import load_backend

    torch.set_num_threads(1)
    root = Path(data_root or os.environ.get("EDGEPOSE_TEST_DATA") or REPO.parent / "shared" / "data")
    items, G = aflw_faces(root, root / detector_model)
    report = {"command": command, "faces": len(items), "teachers": {}, "crop_scales": {}}
    backends, one_face = {}, {}
    with tempfile.TemporaryDirectory(prefix="edgepose-teachers-") as tmp, contextlib.ExitStack() as stack:
        for name in teachers:
            try:
                model = load_teacher(_member_spec(name, root)).members[0]
            except UserError as exc:
                report["teachers"][name] = {"skipped": str(exc)}
                continue
            spec = model.preprocess
            x = np.stack([preprocess(im, box, spec) for im, box in items])
            onnx_path = export_onnx(model, Path(tmp) / f"{name.split(':')[0]}.onnx", opset=17, max_batch=8).path
            backends[name] = stack.enter_context(load_backend(onnx_path, intra_op_threads=1))
            one_face[name] = x[:1]
            R = backends[name].infer(x)["R"].astype(np.float64)
            report["teachers"][name] = {**_score(R, G), "model": model.name,
                                        "input": f"{spec.input_size} px {spec.color_order}", "crop_scale": spec.crop.scale}
            if name.split(":")[0] in DATA_WEIGHTS and scales:
                rows = {}
                for scale in scales:
                    s2 = PreprocessSpec.from_dict({**spec.to_dict(), "crop": {**spec.crop.to_dict(), "scale": scale}})
                    xs = torch.from_numpy(np.stack([preprocess(im, box, s2) for im, box in items]))
                    with torch.no_grad():
                        rows[str(scale)] = _score(model(xs)["R"].double().numpy(), G)
                report["crop_scales"][name] = rows
        for name, ms in _latency_ms(backends, one_face, iters).items():
            report["teachers"][name]["ms_per_face"] = ms
    return report


def markdown(report: dict) -> str:
    lines = [f"`{report['command']}` ({report['faces']} faces, YuNet boxes)", "",
             "| teacher | input | crop scale | MAE | pitch | yaw | roll | geodesic (max) | ms/face ORT CPU 1 thread, median (min) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in report["teachers"].items():
        if "skipped" in r:
            lines.append(f"| {name} | skipped: {r['skipped']} |||||||")
            continue
        lines.append(f"| {name} | {r['input']} | {r['crop_scale']} | {r['mae']:.2f} | {r['pitch']:.2f} | {r['yaw']:.2f} | "
                     f"{r['roll']:.2f} | {r['geodesic']:.2f} ({r['geodesic_max']:.1f}) | {r['ms_per_face']['median']:.1f} "
                     f"({r['ms_per_face']['min']:.1f}) |")
    for name, rows in report["crop_scales"].items():
        lines += ["", f"{name}, detector-box crop scale: " + "; ".join(
            f"{s}: MAE {r['mae']:.2f}, geodesic {r['geodesic']:.2f} (max {r['geodesic_max']:.1f})" for s, r in rows.items())]
    return "\n".join(lines)

