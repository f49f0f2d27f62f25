"""One table for the default model and every free peer, measured side by side in one run (docs/models.md).

    edgepose models evaluate --data-root ../shared/data \\
        --teacher 3ddfa-v2:teachers/3ddfa_v2/mb05_120x120.pth --teacher whenet --teacher fsanet:teachers/fsanet-onnx \\
        --real-val runs/default-model/real-val.npz --compare old=OLD_FP32.onnx --out docs/results/default-model.json

Rows: the three default files (or ``--models-dir``), any ``--compare NAME=FILE`` (an earlier student), each
``--teacher`` alone (plain crop, its own preprocessing), and with two or more teachers **the ensemble**:
the labels the default-model build trains on (each member flip-averaged, then the robust mean of
:func:`edgepose.distill.teacher.robust_rotation_mean`).

* **AFLW2000 fixtures** (``aflw2000-sample``, evaluation only): faces found by the deployment detector
  (YuNet, ``--detector-model``), each model cropping the same box with its own policy.
* **Real-val agreement** (``--real-val``: a build's ``real-val.npz``, held-out people the student never saw):
  geodesic distance from the ensemble's labels. Models are fed the stored crops; a teacher's figure is its own
  flip-averaged answer recorded while labelling (``member_R``), on full-resolution crops.
* **Synthetic test sets** (``edgepose.synth``, test-split identities, exact labels): ``wide`` poses (pitch +-60,
  yaw +-99, roll +-45) and ``full`` (uniform on SO(3)), face boxes from the renderer.
* **Stability** (``--clips``: talking-head videos, every frame, YuNet boxes): the median frame-to-frame change
  of each model's rotation (deg). Real head motion is in it for every row alike; a noisier model reads higher.
* **Sub-pixel shift** (``faces-aws`` photos, YuNet boxes): the mean geodesic change of each model's answer when
  the face box moves by 0.01 px (:func:`edgepose.evaluation.subpixel_change`; the [accuracy] issue's INT8 bound
  is 0.2 deg, and ``tests/test_default_model_stability.py`` checks the shipped files with this same function).
  With ``--real-val``, the same measurement on the held-out people's stored crops (student files only): the
  decision set for INT8 stability, since 12 photos are too few to decide on.
* **Cost**: ms per face (ONNX Runtime, CPU, one thread, batch 1; every row's ONNX timed in interleaved rounds,
  median; teachers are exported to ONNX for it), MACs per face (:func:`edgepose.export.cost.onnx_macs`),
  the share of the single-core GEMM peak that reaches, and bytes on disk (file + sidecar).

Metrics: Euler MAE (pitch, yaw, roll) and geodesic error (deg), from :mod:`edgepose.metrics`.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgepose.errors import UserError

REPO = Path(__file__).resolve().parents[2]
ENSEMBLE = "ensemble (build labels)"


def aflw_faces(root: Path, detector_model: Path | None) -> tuple[list, np.ndarray]:
    """(frames + detector boxes, ground-truth R) of the AFLW2000 fixtures
    (:func:`edgepose.evaluation.with_detector_boxes`: the faces YuNet finds, its best box each)."""
    from edgepose.data.registry import build_reader
    from edgepose.evaluation import with_detector_boxes

    reader = build_reader({"format": "aflw2000", "root": str(root / "aflw2000-sample")})
    found = with_detector_boxes(list(reader), detector_model)
    return [(s.image, s.box) for s in found], np.asarray([s.R for s in found], np.float64)


def synth_faces(n: int, pose_range: str, seed: int) -> tuple[list, np.ndarray]:
    from edgepose.synth import SynthHeadDataset

    ds = SynthHeadDataset(n, seed=seed, split="test", n_identities=200, pose_range=pose_range, size=160)
    items, Rs = [], []
    for i in range(n):
        s = ds[i]
        items.append((s.image, tuple(float(v) for v in s.box)))
        Rs.append(s.R)
    return items, np.asarray(Rs, np.float64)


PROFILED = "profiled held-out people"


def profiled_faces(npz: Path) -> tuple[list, np.ndarray]:
    """A build's ``profiled-val.npz``: held-out people re-rendered at large poses, labelled by their ensemble
    label composed with the applied rotation (:mod:`edgepose.assets.build_profiled`)."""
    data = np.load(npz, allow_pickle=False)
    missing = {"images", "boxes", "R"} - set(data.files)
    if missing:
        raise UserError(f"--profiled-val {npz}: no {', '.join(sorted(missing))} array; give a build's "
                        f"out_dir/profiled-val.npz (data.profiled_val_n > 0)")
    items = [(im, tuple(float(v) for v in b)) for im, b in zip(data["images"], data["boxes"])]
    return items, data["R"].astype(np.float64)


def _batched(items, spec, fn, batch: int = 32) -> np.ndarray:
    from edgepose.preprocess import preprocess

    return np.concatenate([fn(np.stack([preprocess(im, box, spec) for im, box in items[i:i + batch]]))
                           for i in range(0, len(items), batch)]).astype(np.float64)


class OnnxRow:
    """An ONNX file (a default file or an earlier student) as a table row."""

    def __init__(self, name: str, path: Path):
        from edgepose.runtime import load_backend

        self.name, self.path = name, Path(path)
        self.backend = load_backend(self.path, intra_op_threads=1)

    def predict(self, items) -> np.ndarray:
        return _batched(items, self.backend.spec, lambda x: self.backend.infer(x)["R"])


class TeacherRow:
    """One teacher member (a PoseModel in torch) as a table row; its ONNX export is made for the timing."""

    def __init__(self, spec: str, model, member_index: int):
        self.name, self.model, self.member_index = spec.split(":", 1)[0], model, member_index
        self.path: Path | None = None

    def predict(self, items) -> np.ndarray:
        import torch

        with torch.no_grad():
            return _batched(items, self.model.preprocess,
                            lambda x: self.model(torch.from_numpy(x))["R"].double().numpy())


def ensemble_predict(teacher, items, batch: int = 32) -> np.ndarray:
    """The build's labels for ``items``: each member flip-averaged on its own crop, then the robust mean."""
    import torch

    from edgepose.distill.teacher import flip_tta_labels
    from edgepose.preprocess import crop_image, normalize

    out = []
    for i in range(0, len(items), batch):
        chunk = items[i:i + batch]
        plain = [torch.from_numpy(np.stack([normalize(crop_image(im, box, s), s) for im, box in chunk]))
                 for s in teacher.specs]
        mirrored = [torch.from_numpy(np.stack([normalize(crop_image(im, box, s, flip=True), s) for im, box in chunk]))
                    for s in teacher.specs]
        out.append(flip_tta_labels(teacher, plain, mirrored)[0].numpy())
    return np.concatenate(out)


def score(P: np.ndarray, G: np.ndarray) -> dict:
    from edgepose.metrics import euler_abs_errors, geodesic_errors

    ae, ge = euler_abs_errors(P, G), geodesic_errors(P, G)
    return {"n": int(len(G)), "mae": float(ae.mean()), "pitch": float(ae[:, 0].mean()), "yaw": float(ae[:, 1].mean()),
            "roll": float(ae[:, 2].mean()), "geodesic": float(ge.mean()), "geodesic_median": float(np.median(ge))}


def real_val_agreement(rows, teacher, npz: Path) -> dict:
    """Mean / median geodesic distance (deg) of each row from the ensemble's labels on held-out people."""
    from edgepose.metrics import geodesic_errors
    from edgepose.preprocess import preprocess

    data = dict(np.load(npz, allow_pickle=False))
    labels = data["R"].astype(np.float64)
    out: dict = {"n": int(len(labels)), "file": str(npz)}
    for row in rows:
        if isinstance(row, TeacherRow):
            if "member_R" not in data or teacher is None or len(teacher.names) != data["member_R"].shape[1]:
                continue
            P = data["member_R"][:, row.member_index].astype(np.float64)
        else:
            x_items = list(zip(data["images"], [tuple(b) for b in data["boxes"]]))
            P = np.concatenate([row.backend.infer(np.stack([preprocess(im, b, row.backend.spec)
                                                             for im, b in x_items[i:i + 64]]))["R"]
                                for i in range(0, len(x_items), 64)]).astype(np.float64)
        ge = geodesic_errors(P, labels)
        out[row.name] = {"mean": float(ge.mean()), "median": float(np.median(ge))}
    if "disagreement" in data:
        d = data["disagreement"][np.isfinite(data["disagreement"])]
        out["teacher_disagreement_median"] = float(np.median(d)) if len(d) else None
    return out


def real_val_shift(rows, npz: Path) -> dict:
    """The 0.01 px shift measurement (:func:`edgepose.evaluation.subpixel_change`) on the held-out people's stored
    crops, for the ONNX rows (the student files, whose INT8 bound it checks): thousands of shifted crops of people no
    build trained on, where the ``faces-aws`` column has 12 photos."""
    from edgepose.evaluation import subpixel_change

    data = np.load(npz, allow_pickle=False)
    items = list(zip(data["images"], [tuple(float(v) for v in b) for b in data["boxes"]]))
    out: dict = {"faces": len(items), "shift_px": 0.01, "file": str(npz)}
    for row in rows:
        if isinstance(row, OnnxRow):
            moved = subpixel_change(row.predict, items)
            out[row.name] = {"mean": float(moved.mean()), "max": float(moved.max())}
    return out


def clip_faces(paths: list[Path], detector_model: Path | None, max_frames: int = 150) -> list[list]:
    """Per clip, the consecutive frames in which YuNet finds a face, as (frame, best box)."""
    from edgepose.data.video import iter_video_frames
    from edgepose.runtime import create_detector
    from edgepose.runtime.detection import best_box

    det = create_detector("yunet", model_path=detector_model)
    out = []
    try:
        for path in paths:
            items = []
            for _, frame in iter_video_frames(path, step=1, max_frames=max_frames):
                box = best_box(det.detect(frame))
                items.append((frame, box) if box is not None else None)
            out.append(items)
    finally:
        det.close()
    return out


def jitter(rows, clips: list[list], teacher=None) -> dict:
    """Median frame-to-frame geodesic change (deg) per row over pairs of consecutive frames with a face."""
    from edgepose.metrics import geodesic_errors

    res: dict = {}
    for row in rows:
        steps = []
        for items in clips:
            faces = [it for it in items if it is not None]
            if len(faces) < 2:
                continue
            P = row.predict(faces)
            present = [it is not None for it in items]
            idx = np.flatnonzero(present)
            consecutive = np.diff(idx) == 1  # only pairs of neighbouring frames count
            steps.append(geodesic_errors(P[1:], P[:-1])[consecutive])
        if steps:
            allsteps = np.concatenate(steps)
            res[row.name] = {"median": float(np.median(allsteps)), "p90": float(np.percentile(allsteps, 90)),
                             "pairs": int(len(allsteps))}
    return res


def time_rows(paths: dict[str, Path], rounds: int = 7, iters: int = 60) -> dict[str, float]:
    """Median ms per face (ORT CPU, 1 thread, batch 1) of each ONNX file, measured in interleaved rounds so that
    load on the machine hits every row alike."""
    import onnxruntime as ort

    sessions = {}
    for name, p in paths.items():
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        s = ort.InferenceSession(str(p), so, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0]
        shape = [1 if not isinstance(d, int) else d for d in inp.shape]
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        sessions[name] = (s, {inp.name: x})
        for _ in range(10):
            s.run(None, sessions[name][1])
    per: dict[str, list[float]] = {n: [] for n in sessions}
    for _ in range(rounds):
        for name, (s, feed) in sessions.items():
            t = time.perf_counter()
            for _ in range(iters):
                s.run(None, feed)
            per[name].append((time.perf_counter() - t) / iters * 1e3)
    return {n: float(np.median(v)) for n, v in per.items()}


def cost_table(rows, tmp: Path, peak: float | None) -> dict:
    """ms/face, MACs, share of the GEMM peak and bytes for every row (teachers exported to ONNX first)."""
    from edgepose.export.cost import onnx_macs
    from edgepose.export import export_onnx

    paths, macs_from = {}, {}
    for row in rows:
        if isinstance(row, TeacherRow):
            row.path = tmp / f"{row.name}.onnx"
            export_onnx(row.model, row.path, simplify=False)
        paths[row.name] = row.path
        # an INT8 file does the FP32 graph's arithmetic; count it on the FP32 file beside it when there is one
        fp32 = Path(str(row.path).replace("int8-cpu", "fp32").replace("int8-tensorrt", "fp32"))
        macs_from[row.name] = fp32 if fp32.is_file() else row.path
    ms = time_rows(paths)
    out = {}
    for row in rows:
        macs = onnx_macs(macs_from[row.name])
        size = row.path.stat().st_size + (Path(str(row.path) + ".json").stat().st_size
                                           if Path(str(row.path) + ".json").is_file() else 0)
        out[row.name] = {"ms_per_face": ms[row.name], "macs": int(macs), "bytes": int(size),
                         "gemm_peak_share": (2 * macs / (ms[row.name] * 1e-3) / (peak * 1e9)) if peak else None,
                         "shipped_file": not isinstance(row, TeacherRow)}
    return out


def parse_compare(items: list[str]) -> dict[str, Path]:
    out = {}
    for it in items:
        name, sep, path = it.partition("=")
        if not sep or not name or not path:
            raise UserError(f"--compare {it!r}: use NAME=FILE.onnx (e.g. old=/tmp/old-fp32.onnx)")
        if not Path(path).is_file():
            raise UserError(f"--compare {name}: file not found: {path}")
        out[name] = Path(path)
    return out


def evaluate_models(data_root: str | Path | None = None,
                    detector_model: str = "detectors/yunet/yunet_s_640_640.onnx", models_dir: str | None = None,
                    compare: list[str] = (), teachers: list[str] | None = None, real_val: str | None = None,
                    profiled_val: str | None = None,
                    clips: list[str] = ("videos/single_face.mp4", "videos/WolfgangLanger_Pexels.mp4"),
                    synth_n: int = 300, no_timing: bool = False, seed: int = 7, out: str | None = None,
                    command: str = "edgepose models evaluate") -> dict:
    """The report (see the module doc; ``markdown(report)`` is its table), written to ``out`` when given.

    ``teachers``: None = whenet; an empty spec is skipped (``--teacher ''`` for none)."""
    from edgepose.defaults import PROFILES, default_pose_model
    import torch

    from edgepose.metadata import atomic_write_text

    torch.set_num_threads(1)
    root = Path(data_root or os.environ.get("EDGEPOSE_TEST_DATA") or REPO.parent / "shared" / "data")
    if models_dir:
        models = {k: Path(models_dir) / v for k, v in PROFILES.items()}
    else:
        models = {k: default_pose_model(k) for k in PROFILES}
    models.update(parse_compare(compare))
    rows: list = [OnnxRow(k, p) for k, p in models.items()]
    specs = [t for t in (["whenet"] if teachers is None else teachers) if t]
    teacher = None
    if specs:
        from edgepose.assets.build import teacher_specs
        from edgepose.distill.teacher import load_teacher

        teacher = load_teacher(teacher_specs(specs, root))
        rows += [TeacherRow(s, m, i) for i, (s, m) in enumerate(zip(specs, teacher.members))]
    det = Path(detector_model)
    det = det if det.is_absolute() else root / det
    sets = {}
    if (root / "aflw2000-sample").is_dir():
        sets["aflw2000-sample (YuNet boxes)"] = aflw_faces(root, det if det.is_file() else None)
    else:
        print(f"note: {root / 'aflw2000-sample'} not found; AFLW2000 rows skipped", file=sys.stderr)
    if profiled_val:
        if not Path(profiled_val).is_file():
            raise UserError(f"--profiled-val {profiled_val}: not found; give a build's out_dir/profiled-val.npz")
        sets[PROFILED] = profiled_faces(Path(profiled_val))
    for pr in ("wide", "full"):
        sets[f"synthetic test {pr}"] = synth_faces(synth_n, pr, seed)
    clip_paths = [c if Path(c).is_absolute() else root / c for c in clips]
    clip_paths = [Path(c) for c in clip_paths if Path(c).is_file()]
    clip_items = clip_faces(clip_paths, det if det.is_file() else None) if clip_paths else []
    from edgepose.evaluation import photo_faces, subpixel_change

    photos = photo_faces(root / "faces-aws", det if det.is_file() else None) if (root / "faces-aws").is_dir() else []
    if real_val and not Path(real_val).is_file():
        raise UserError(f"--real-val {real_val}: not found; give a build's out_dir/real-val.npz")
    t0 = time.perf_counter()
    report: dict = {"command": command, "sets": {}}
    for sname, (items, G) in sets.items():
        res = {r.name: score(r.predict(items), G) for r in rows}
        if teacher is not None and len(teacher.members) > 1:
            res[ENSEMBLE] = score(ensemble_predict(teacher, items), G)
        report["sets"][sname] = res
    if real_val:
        report["real_val"] = real_val_agreement(rows, teacher, Path(real_val))
        report["subpixel_shift_real_val"] = real_val_shift(rows, Path(real_val))
    if clip_items:
        report["stability"] = {"clips": [str(c) for c in clip_paths], **jitter(rows, clip_items)}
    if photos:
        moved = {r.name: subpixel_change(r.predict, photos) for r in rows}
        report["subpixel_shift"] = {"faces": len(photos), "shift_px": 0.01, **{
            n: {"mean": float(v.mean()), "max": float(v.max())} for n, v in moved.items()}}
    if not no_timing:
        from edgepose.export.cost import gemm_peak_gflops

        peak = gemm_peak_gflops()
        with tempfile.TemporaryDirectory() as tmp:
            report["cost"] = cost_table(rows, Path(tmp), peak)
        report["gemm_peak_gflops_1thread"] = peak
    report["seconds"] = time.perf_counter() - t0
    if out:
        atomic_write_text(Path(out), json.dumps(report, indent=2) + "\n")
    return report




def _f(v, fmt="{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(report: dict) -> str:
    """The summary table (one row per model), then one detail table per test set."""
    sets = report["sets"]
    names = list(next(iter(sets.values())).keys()) if sets else []
    aflw = next((k for k in sets if k.startswith("aflw")), None)
    rv, cost, st = report.get("real_val", {}), report.get("cost", {}), report.get("stability", {})
    sub, sub_rv = report.get("subpixel_shift", {}), report.get("subpixel_shift_real_val", {})
    lines = [f"Command: `{report['command']}`\n",
             "| model | AFLW fixtures MAE / geodesic | real-val vs ensemble (mean / median) | profiled held-out geodesic | "
             "synthetic wide geodesic | synthetic full geodesic | frame-to-frame change (median) | "
             "0.01 px shift, faces-aws / held-out people (mean) | "
             "ms / face | MMACs | GEMM-peak share | size (kB) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for m in names:
        a = sets[aflw][m] if aflw else None
        r, c = rv.get(m), cost.get(m, {})
        w, f = sets.get("synthetic test wide", {}).get(m), sets.get("synthetic test full", {}).get(m)
        pv = sets.get(PROFILED, {}).get(m)
        lines.append(
            f"| {m} | {_f(a and a['mae'])} / {_f(a and a['geodesic'])} | "
            f"{_f(r and r['mean'])} / {_f(r and r['median'])} | {_f(pv and pv['geodesic'])} | "
            f"{_f(w and w['geodesic'])} | {_f(f and f['geodesic'])} | "
            f"{_f(st.get(m, {}).get('median'), '{:.3f}')} | {_f(sub.get(m, {}).get('mean'), '{:.3f}')} / "
            f"{_f(sub_rv.get(m, {}).get('mean'), '{:.3f}')} | "
            f"{_f(c.get('ms_per_face'), '{:.3f}')} | {_f(c.get('macs') and c['macs'] / 1e6, '{:.1f}')} | "
            f"{_f(c.get('gemm_peak_share') and 100 * c['gemm_peak_share'], '{:.1f} %')} | "
            f"{_f(c.get('bytes') and c['bytes'] / 1e3, '{:.0f}')} |")
    if rv:
        lines.append(f"\nReal-val: {rv['n']} held-out faces; median teacher disagreement "
                     f"{_f(rv.get('teacher_disagreement_median'))} deg.")
    if "gemm_peak_gflops_1thread" in report:
        lines.append(f"Single-core GEMM peak (ORT MatMul 1024^3, float32): {report['gemm_peak_gflops_1thread']:.1f} GFLOP/s.")
    for sname, rows in sets.items():
        n = next(iter(rows.values()))["n"]
        lines += [f"\n**{sname}** (n = {n})\n", "| model | MAE | pitch | yaw | roll | geodesic (mean / median) |",
                  "|---|---:|---:|---:|---:|---:|"]
        for m, r in rows.items():
            lines.append(f"| {m} | {r['mae']:.2f} | {r['pitch']:.2f} | {r['yaw']:.2f} | {r['roll']:.2f} | "
                         f"{r['geodesic']:.2f} / {r['geodesic_median']:.2f} |")
    return "\n".join(lines)

