"""What one more ensemble member would do to a build's labels, measured on the build's own cached faces.

The [teachers] issue asks to put the best trained teacher into the default-model build's ensemble where it beats
the imported ones. A student trained on the new labels can differ from the shipped one only as far as the labels
do, so the first measurement is the labels themselves: every cached face of ``real.npz`` (trained on) and
``real-val.npz`` (the held-out reference) keeps each member's own flip-averaged rotation (``member_R``); the
candidate is run on the same faces the same way (its crop from the stored margin crop, mirrored view mapped back
with ``geometry.flip_label``), and :func:`edgepose.distill.teacher.robust_rotation_mean` -- the build's own
ensemble rule, validity and outlier trimming included -- is applied with and without it.

Reported per part: how far the labels move (geodesic, deg), how often the candidate is trimmed as the outlier or
counts, its own distance from the current labels, and the agreement weights (the build's per-face loss weights).
The profiled faces' labels are their source faces' labels turned by the applied rotation, so they move exactly as
their sources do.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgepose.errors import UserError

__all__ = ["ensemble_change", "member_effect", "write_relabelled", "markdown"]


def ensemble_change(member_R: np.ndarray, labels: np.ndarray, candidate_R: np.ndarray,
                    valid_yaw: list[float | None]) -> tuple[dict, dict]:
    """``member_R`` (N, M, 3, 3) the current members' rotations, ``labels`` (N, 3, 3) the stored ensemble labels,
    ``candidate_R`` (N, 3, 3), ``valid_yaw`` M + 1 entries (the candidate's last). The build's rule with M members
    must give back ``labels`` (``reproduced_deg`` says how closely: the check that the rule and the cache agree).
    Returns (the new cache arrays ``R``, ``disagreement``, ``member_R``; the figures)."""
    import torch

    from edgepose.distill.teacher import agreement_weight, robust_rotation_mean
    from edgepose.metrics import geodesic_errors

    cur = torch.from_numpy(np.ascontiguousarray(np.transpose(member_R, (1, 0, 2, 3)), np.float64))
    R_old, spread_old, _ = robust_rotation_mean(cur, valid_yaw[:-1])
    allm = torch.cat([cur, torch.from_numpy(np.asarray(candidate_R, np.float64))[None]])
    R_new, spread_new, w = robust_rotation_mean(allm, valid_yaw)
    move = geodesic_errors(R_new.numpy(), np.asarray(labels, np.float64))
    own = geodesic_errors(np.asarray(candidate_R, np.float64), np.asarray(labels, np.float64))
    w_c = w[-1].numpy()
    arrays = {"R": R_new.numpy().astype(np.float32), "disagreement": spread_new.numpy().astype(np.float32),
              "member_R": np.transpose(allm.numpy(), (1, 0, 2, 3)).astype(np.float32)}
    return arrays, {
        "faces": int(len(labels)),
        "reproduced_deg": float(np.max(geodesic_errors(R_old.numpy(), np.asarray(labels, np.float64)))),
        "label_move_mean": float(move.mean()), "label_move_median": float(np.median(move)),
        "label_move_p90": float(np.percentile(move, 90)), "label_move_over_2deg": float((move > 2.0).mean()),
        "candidate_vs_labels_mean": float(own.mean()), "candidate_vs_labels_median": float(np.median(own)),
        "candidate_trimmed": float((w_c == 0).mean()), "candidate_counts_fully": float((w_c >= 1).mean()),
        "agreement_weight_old": float(agreement_weight(spread_old.numpy()).mean()),
        "agreement_weight_new": float(agreement_weight(spread_new.numpy()).mean()),
    }


def _flip_tta(teacher, samples: list, batch: int = 64) -> np.ndarray:
    """A one-member teacher's flip-averaged rotations on the samples, as the build labels faces."""
    import torch

    from edgepose.distill.teacher import member_flip_tta_rotations
    from edgepose.evaluation import Variant, variant_batch

    spec, out = teacher.specs[0], []
    plain, mirrored = Variant("original", 0.0, False), Variant("flip", 0.0, True)
    for i in range(0, len(samples), batch):
        x, _ = variant_batch(samples[i:i + batch], spec, plain)
        xf, _ = variant_batch(samples[i:i + batch], spec, mirrored)
        out.append(member_flip_tta_rotations(teacher, [torch.from_numpy(x)], [torch.from_numpy(xf)])[0].numpy())
    return np.concatenate(out)


def member_effect(build_dir: str | Path, spec: str, parts: tuple[str, ...] = ("real", "real-val"),
                  write: str | Path | None = None) -> dict:
    """``{part: ensemble_change(...)}`` for the candidate teacher ``spec`` (a checkpoint or importer spec, as in
    the build's ``teacher:`` list) added to the build's ensemble. ``write``: a new folder that receives the build's
    caches relabelled by the larger ensemble (:func:`write_relabelled`), ready for ``edgepose models build
    out_dir=FOLDER`` with the teacher list the output names."""
    if write is not None:
        write = Path(write)
        if write.resolve() == Path(build_dir).resolve():
            raise UserError(f"--write {write}: that is the build folder itself; give a new folder (no input is overwritten)")
        if write.exists() and any(write.glob("*.npz")):
            raise UserError(f"--write {write}: it already holds .npz caches; give a new folder")
    from edgepose.data.npz import NpzFacesReader
    from edgepose.distill.teacher import load_teacher, member_valid_yaw

    build_dir = Path(build_dir)
    cand = load_teacher(spec)
    cand_valid = cand.valid_yaw[0]
    out = {"candidate": spec, "candidate_valid_yaw": cand_valid, "build": str(build_dir), "parts": {}}
    new: dict[str, dict] = {}
    for part in parts:
        path = build_dir / f"{part}.npz"
        if not path.is_file():
            raise UserError(f"--as-member: {path} is missing; give a default-model build's out_dir (--build-dir)")
        with np.load(path, allow_pickle=False) as z:
            if "member_R" not in z.files:
                raise UserError(f"{path} has no member_R (one teacher, or a build older than the ensemble): "
                                f"rebuild its labels with an ensemble teacher list")
            member_R, labels = z["member_R"], z["R"]
            names = [str(t) for t in z["teachers"]]
        reader = NpzFacesReader(str(build_dir), [part])
        samples = [reader[i] for i in range(len(reader))]
        valid = [member_valid_yaw(n) for n in names] + [cand_valid]
        arrays, res = ensemble_change(member_R, labels, _flip_tta(cand, samples), valid)
        out["parts"][part] = {**res, "members": names}
        new[part] = arrays
    if write is not None:
        out["written"] = write_relabelled(build_dir, Path(write), new, names + [spec])
    return out


def write_relabelled(build_dir: Path, out: Path, new: dict[str, dict], teachers: list[str]) -> list[str]:
    """The build's caches with the new labels: ``real`` / ``real-val`` get R, disagreement, member_R and the teacher
    list; ``profiled`` / ``profiled-val`` keep their renders and get ``R_new[face] @ Q.T`` (the profiler's labelling
    rule on the new source labels), the source's spread, and the new source digest, so the build accepts them; the
    synthetic sets (exact labels, no teacher) are copied. Written to a temporary name, then renamed."""
    import json
    import os
    import shutil

    from edgepose.assets.build_profiled import source_digest

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def save(name: str, data: dict) -> None:
        tmp = out / f"{name}.tmp.npz"
        np.savez(tmp, **data)
        os.replace(tmp, out / f"{name}.npz")
        written.append(f"{name}.npz")

    for src, prof in (("real", "profiled"), ("real-val", "profiled-val")):
        with np.load(build_dir / f"{src}.npz", allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
        data.update(new[src], teachers=np.asarray(teachers))
        save(src, data)
        if (build_dir / f"{prof}.npz").is_file():
            with np.load(build_dir / f"{prof}.npz", allow_pickle=False) as z:
                p = {k: z[k] for k in z.files}
            face = p["face"].astype(np.int64)
            p["R"] = (new[src]["R"][face].astype(np.float64) @ np.transpose(p["Q"].astype(np.float64), (0, 2, 1))
                      ).astype(np.float32)
            p["disagreement"] = new[src]["disagreement"][face]
            settings = json.loads(str(p["settings"]))
            settings["source"] = source_digest(data)
            p["settings"] = np.asarray(json.dumps(settings, sort_keys=True))
            save(prof, p)
    for name in ("synth", "synth-val"):
        if (build_dir / f"{name}.npz").is_file():
            shutil.copyfile(build_dir / f"{name}.npz", out / f"{name}.npz")
            written.append(f"{name}.npz")
    return written


def markdown(res: dict) -> str:
    lines = [f"Candidate member `{res['candidate']}` (valid yaw: {res['candidate_valid_yaw'] or 'everywhere'}) added "
             f"to the ensemble of `{res['build']}`:", "",
             "| part | faces | labels move, mean / median / p90 (deg) | moved > 2 deg | candidate vs labels, mean / median "
             "| candidate trimmed | candidate counts fully | agreement weight, now -> with it | cache reproduced to |",
             "|---|---:|---|---:|---|---:|---:|---|---:|"]
    for part, r in res["parts"].items():
        lines.append(f"| {part} | {r['faces']:,} | {r['label_move_mean']:.2f} / {r['label_move_median']:.2f} / "
                     f"{r['label_move_p90']:.2f} | {100 * r['label_move_over_2deg']:.1f} % | "
                     f"{r['candidate_vs_labels_mean']:.2f} / {r['candidate_vs_labels_median']:.2f} | "
                     f"{100 * r['candidate_trimmed']:.1f} % | {100 * r['candidate_counts_fully']:.1f} % | "
                     f"{r['agreement_weight_old']:.3f} -> {r['agreement_weight_new']:.3f} | {r['reproduced_deg']:.3f} deg |")
    if res.get("written"):
        lines += ["", f"Relabelled caches written: {', '.join(res['written'])}; build a student on them with the teacher "
                  f"list `{list(res['parts'].values())[0]['members'] + [res['candidate']]}`."]
    return "\n".join(lines) + "\n"
