"""Measurements of face profiling (docs/results/profiling.md): run as

    edgepose synth profile-eval throughput --image PHOTO [--n 300]
    edgepose synth profile-eval fit-vs-labels --data ../shared/data
    edgepose synth profile-eval teacher-yaw --teacher whenet.pt SOURCES... [--faces 60]
    edgepose synth profile-eval fixtures --teacher whenet.pt --data ../shared/data
    edgepose synth profile-eval sheet --out sheet.jpg PHOTOS...

Label truth without labels: a face profiled by a KNOWN yaw change should read, to a teacher
trained on 300W-LP, as turned by that change: ``|dyaw_teacher - dyaw_applied|`` with
``dyaw_teacher = yaw_teacher(render) - yaw_teacher(photo)``, so the teacher's own bias on this
person cancels.  Beside it: the disagreement of two independent pose readers on the real photos
at that yaw (the teacher vs the dense fit, until a second teacher is imported).
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from ... import geometry

__all__ = ["throughput", "fit_vs_labels", "teacher_yaw", "fixtures", "contact_sheet"]

_DELTAS = (-90, -75, -60, -45, -30, -15, 15, 30, 45, 60, 75, 90)


def _fitter(detector_model=None):
    from .pipeline import FaceFitter

    return FaceFitter("yunet" if detector_model else "none", detector_model)


def _fit_box(fit) -> tuple:
    """The source photo's face box by the same rule as the renders' (face oval + nose tip)."""
    from .mesh import FACE_OVAL, NOSE_TIP

    p = fit.points[list(FACE_OVAL) + [NOSE_TIP], :2]
    return (*p.min(0), *p.max(0))


def throughput(image_path: str, n: int = 300, size: int = 128, detector_model=None) -> dict:
    """Renders per second after the fit (photometric looks on, one process), and the fit's time."""
    import cv2

    from .pipeline import ProfileConfig, profile_face
    from .render import get_profile_renderer

    img = cv2.imread(image_path)
    fitter = _fitter(detector_model)
    fitter(img)
    t0 = time.perf_counter()
    reps = 10
    for _ in range(reps):
        fit = fitter(img)
    t_fit = (time.perf_counter() - t0) / reps
    cfg = ProfileConfig(k=n, size=size)
    get_profile_renderer(size, cfg.ssaa)
    profile_face(img, fit, ProfileConfig(k=5, size=size), "warmup")
    t0 = time.perf_counter()
    profile_face(img, fit, cfg, image_path)
    dt = time.perf_counter() - t0
    return {"size": size, "ssaa": cfg.ssaa, "renders": n, "renders_per_s": round(n / dt, 1),
            "fit_ms_per_face": round(1000 * t_fit, 1), "image": Path(image_path).name,
            "image_px": list(img.shape[:2])}


def _aflw_items(data: Path) -> list[tuple[Path, np.ndarray]]:
    import scipy.io as sio

    items = [(data / "aflw2000-sample" / r["file"], np.array([float(r["pitch_deg"]), float(r["yaw_deg"]),
                                                             float(r["roll_deg"])]))
             for r in csv.DictReader(open(data / "aflw2000-sample" / "labels.csv"))]
    m = sio.loadmat(data / "300wlp-sample" / "IBUG_image_008_1_0.mat")
    items.append((data / "300wlp-sample" / "IBUG_image_008_1_0.jpg", np.degrees(m["Pose_Para"][0, :3])))
    return items


def fit_vs_labels(data: str, detector_model: str) -> dict:
    """The dense fit's pose against the AFLW2000-3D / 300W-LP fixtures' labels."""
    import cv2

    fitter = _fitter(detector_model)
    rows = []
    for path, lab in _aflw_items(Path(data)):
        fit = fitter(cv2.imread(str(path)))
        if fit is None:
            rows.append({"file": path.name, "fitted": False})
            continue
        e = fit.euler
        rows.append({"file": path.name, "label_pyr": np.round(lab, 1).tolist(), "fit_pyr": np.round(e, 1).tolist(),
                     "geodesic_deg": round(float(geometry.geodesic_distance(fit.R, geometry.euler_to_matrix(lab))), 1)})
    ok = [r for r in rows if "fit_pyr" in r]
    res = np.array([np.subtract(r["fit_pyr"], r["label_pyr"]) for r in ok])
    return {"rows": rows, "median_abs_pyr": np.round(np.median(np.abs(res), 0), 1).tolist(),
            "median_pyr_residual": np.round(np.median(res, 0), 1).tolist(),
            "median_geodesic": round(float(np.median([r["geodesic_deg"] for r in ok])), 1)}


def _read_yaw(teacher, image, box) -> float:
    return float(teacher.predict(image, [box])["euler"][0, 1])


def _sources(inputs, limit: int, seed: int, video_step: int) -> list[str]:
    from .pipeline import list_sources

    rng = np.random.default_rng(seed)
    out = []
    per = max(limit // max(len(inputs), 1), 1)
    for item in inputs:  # an even share of every input, drawn at random within it
        s = list_sources([item], video_step)
        out += [s[i] for i in sorted(rng.choice(len(s), size=min(per, len(s)), replace=False))]
    return out


def teacher_yaw(teacher_path: str, inputs: list[str], faces: int = 60, detector_model=None, seed: int = 0,
                video_step: int = 30, size: int = 128, out: str | None = None) -> dict:
    """Median |dyaw_teacher - dyaw_applied| per applied yaw change, and on the real photos the
    teacher-vs-fit yaw disagreement per 15 deg bin of |yaw|.  ``out``: a JSON file rewritten
    after every face (a partial run still reports)."""
    from ...runtime import load_backend
    from .pipeline import load_source
    from .render import get_profile_renderer

    teacher = load_backend(teacher_path)
    fitter = _fitter(detector_model)
    renderer = get_profile_renderer(size, 2)
    errs: dict[int, list] = {d: [] for d in _DELTAS}
    by_target: dict[int, list] = {}
    real: dict[int, list] = {}
    n_faces = 0
    summary = {}
    for src in _sources(inputs, faces, seed, video_step):
        if out and n_faces:
            summary = _yaw_summary(n_faces, errs, by_target, real)
            Path(out).write_text(json.dumps(summary, indent=1))
        img = load_source(src)
        fit = fitter(img) if img is not None else None
        if fit is None:
            continue
        n_faces += 1
        y_real = _read_yaw(teacher, img, _fit_box(fit))
        p, y, r = fit.euler
        real.setdefault(int(min(abs(y_real), 89.9) // 15), []).append(abs(y_real - y))
        for d in _DELTAS:
            if abs(y + d) > 90:
                continue
            res = renderer.render(img, fit, geometry.euler_to_matrix([p, y + d, r]), key=src)
            e = abs((_read_yaw(teacher, res.image, res.box) - y_real) - d)
            errs[d].append(e)
            by_target.setdefault(int(min(abs(y + d), 89.9) // 15), []).append((e, res.visibility))
    summary = _yaw_summary(n_faces, errs, by_target, real)
    if out:
        Path(out).write_text(json.dumps(summary, indent=1))
    return summary


def _yaw_summary(n_faces: int, errs: dict, by_target: dict, real: dict) -> dict:
    med = lambda v: round(float(np.median(v)), 1) if len(v) else None  # noqa: E731
    return {"faces": n_faces,
            "by_applied_delta": {d: {"n": len(v), "median_abs_err": med(v)} for d, v in errs.items()},
            "by_target_abs_yaw_bin": {f"{15 * b}-{15 * b + 15}": {"n": len(v), "median_abs_err": med([e for e, _ in v]),
                                                                    "median_visibility": med([q for _, q in v])}
                                      for b, v in sorted(by_target.items())},
            "real_teacher_vs_fit_by_abs_yaw_bin": {f"{15 * b}-{15 * b + 15}": {"n": len(v), "median_abs_diff": med(v)}
                                                   for b, v in sorted(real.items())}}


def fixtures(teacher_path: str, data: str, detector_model: str, size: int = 128) -> dict:
    """The 6 AFLW2000 fixtures (+ the 300W-LP sample) profiled to other poses, true label =
    fixture label composed with the applied rotation; the teacher's error on them beside its
    error on the real fixtures."""
    import cv2

    from ...runtime import load_backend
    from .render import applied_rotation, compose_label, get_profile_renderer

    teacher = load_backend(teacher_path)
    fitter = _fitter(detector_model)
    renderer = get_profile_renderer(size, 2)
    real_rows, prof_rows = [], []
    for path, lab in _aflw_items(Path(data)):
        img = cv2.imread(str(path))
        fit = fitter(img)
        if fit is None:
            continue
        R_lab = geometry.euler_to_matrix(lab)
        pred = teacher.predict(img, [_fit_box(fit)])
        real_rows.append({"file": path.name, "yaw": round(float(lab[1]), 1),
                          "err_deg": round(float(geometry.geodesic_distance(pred["R"][0], R_lab)), 1),
                          "yaw_err": round(float(abs(pred["euler"][0, 1] - lab[1])), 1)})
        p, y, r = fit.euler
        for d in (-60, -30, 30, 60):
            if abs(y + d) > 90:
                continue
            res = renderer.render(img, fit, geometry.euler_to_matrix([p, y + d, r]), key=str(path))
            Q = applied_rotation(fit.R, res.R)
            truth = compose_label(R_lab, Q)  # the fixture's own label turned by the applied rotation
            pr = teacher.predict(res.image, [res.box])
            prof_rows.append({"file": path.name, "delta": d, "true_yaw": round(float(geometry.matrix_to_euler(truth)[1]), 1),
                              "err_deg": round(float(geometry.geodesic_distance(pr["R"][0], truth)), 1),
                              "yaw_err": round(float(abs(pr["euler"][0, 1] - geometry.matrix_to_euler(truth)[1])), 1),
                              "visibility": round(res.visibility, 2)})
    return {"real": real_rows, "profiled": prof_rows}


def contact_sheet(out: str, inputs: list[str], detector_model=None, size: int = 128, seed: int = 0) -> str:
    """Source photo then 8 poses per row (yaw -75..75, pitch +-30, a roll), the label's axes drawn."""
    import cv2

    from ...overlay import draw_axes
    from .pipeline import list_sources, load_source
    from .render import get_profile_renderer

    renderer = get_profile_renderer(size, 2)
    fitter = _fitter(detector_model)
    poses = [(0, -75, 0), (0, -45, 0), (0, 45, 0), (0, 75, 0), (30, 0, 0), (-30, 0, 0), (15, 30, 25), (-20, -60, -15)]
    rows = []
    for src in list_sources(inputs):
        img = load_source(src)
        fit = fitter(img)
        if fit is None:
            continue
        x1, y1, x2, y2 = _fit_box(fit)
        c, h = ((x1 + x2) / 2, (y1 + y2) / 2), max(x2 - x1, y2 - y1) / 0.55 / 2
        M = np.float32([[size / (2 * h), 0, size / 2 - c[0] * size / (2 * h)],
                        [0, size / (2 * h), size / 2 - c[1] * size / (2 * h)]])
        tiles = [cv2.warpAffine(img, M, (size, size), borderMode=cv2.BORDER_REFLECT_101)]
        for pyr in poses:
            res = renderer.render(img, fit, geometry.euler_to_matrix(pyr), key=src)
            t = res.image.copy()
            draw_axes(t, res.R, ((res.box[0] + res.box[2]) / 2, (res.box[1] + res.box[3]) / 2), size / 4)
            tiles.append(t)
        rows.append(np.hstack(tiles))
    sheet = np.vstack(rows)
    cv2.imwrite(out, sheet, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return out
