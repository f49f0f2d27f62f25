"""The trained-teacher table on the default-model build's faces (``edgepose-bench methods --suite real``).

Each row = ``configs/teachers-real/<row>.yaml`` trained by the one engine (``Trainer``) on a build's cached
faces (``--build-dir``: real.npz + profiled.npz + synth.npz, dataset format ``faces_npz``), then scored on the
claim sets of :mod:`edgepose.benchmarks.teacher_claims`.  Rows are resumable at two levels: a finished row
(``RUNS/<row>/table.json``) is kept unless ``--force``; an interrupted one continues from ``RUNS/<row>/last.pt``
(the engine's resume: optimiser, schedule, RNG and method state), so a CPU table can be built over several
sessions.  The markdown table is rewritten after every row.
"""
from __future__ import annotations

import json
import logging
import os
import platform
import re
import time
from pathlib import Path

from .teacher_claims import claim_sets, evaluate_checkpoint, paired_difference

log = logging.getLogger("edgepose.benchmarks.teacher_table")

__all__ = ["ROWS", "TRUNK", "write_trunk", "trunk_override", "train_row", "run_table", "markdown", "comparisons",
           "merged_results", "seed_comparison"]

ROWS = ["baseline", "ldl", "clerf", "clerf-ldl", "hmtl", "hmtl-ldl", "pcl", "simclr",
        # the baseline on ImageNet trunks (model.pretrained: imagenet) instead of the 3DDFA_V2 face trunk
        "baseline-mnv2", "baseline-lite0",
        # the CLERF augmentation ablation: the baseline with CLERF's full-circle in-plane rotation, no contrast
        "baseline-rot360"]
TRUNK = "trunk-3ddfa-mb05.pth"
#: the pairs each paper's claim is read from: (row, against, claim sets and views)
CLAIMS = {
    "CLERF": [("clerf", "baseline"), ("clerf-ldl", "ldl")],
    # which part of CLERF does it: its rotations alone (rot360 - baseline), its objective beyond them (clerf - rot360)
    "CLERF ablation": [("baseline-rot360", "baseline"), ("clerf", "baseline-rot360")],
    "HMTL": [("hmtl", "baseline"), ("hmtl-ldl", "ldl")],
    "PCL": [("pcl", "simclr")],
    "LDL": [("ldl", "baseline"), ("clerf-ldl", "clerf"), ("hmtl-ldl", "hmtl")],
    # not a paper: an ImageNet trunk against the face-pretrained one under the same budget
    "ImageNet trunk": [("baseline-mnv2", "baseline"), ("baseline-lite0", "baseline")],
}


def write_trunk(data_root: Path, dest: Path) -> Path:
    """The face-pretrained trunk: 3DDFA_V2's MobileNetV1 x0.5 backbone (``teachers/3ddfa_v2/mb05_120x120.pth``
    of the shared data, imported by :mod:`edgepose.importers.tddfa`) as a state dict that ``model.pretrained``
    loads strictly into ``mobilenet_v1_050``.  Only the trunk: the 3DMM head is not copied."""
    import torch

    from edgepose.distill.teacher import load_teacher

    if dest.is_file():
        return dest
    src = Path(data_root) / "teachers" / "3ddfa_v2" / "mb05_120x120.pth"
    member = load_teacher(f"3ddfa-v2:{src}").members[0]
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".tmp")
    torch.save(member.backbone.state_dict(), tmp)
    os.replace(tmp, dest)
    log.info("face-pretrained trunk (3DDFA_V2 mb05 backbone) -> %s", dest)
    return dest


def trunk_override(config: Path, trunk: Path) -> list[str]:
    """``model.pretrained=<trunk>`` for a row whose config names the face trunk file (its path there is the
    default runs folder's); rows on other weights (``pretrained: imagenet``) keep their own."""
    import yaml

    model = (yaml.safe_load(Path(config).read_text()) or {}).get("model") or {}
    named = model.get("pretrained")
    return [f"model.pretrained={trunk}"] if named and Path(str(named)).name == TRUNK else []


def where() -> str:
    """The machine a row ran on, in words (the table's "where" column)."""
    import torch

    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} thread; {platform.machine()})"


def train_row(row: str, config_dir: Path, runs: Path, overrides: list[str]) -> dict:
    """Train one row (continuing ``runs/<row>/last.pt`` when an earlier session was interrupted)."""
    from edgepose.train import Trainer, load_train_config

    cfg = load_train_config(config_dir / f"{row}.yaml", [f"output={runs / row}"] + overrides)
    last = runs / row / "last.pt"
    resume = last if last.is_file() else None
    if resume is not None:
        log.info("row %s: resuming %s", row, last)
    t0 = time.perf_counter()
    Trainer(cfg, resume=resume).fit()
    return {"train_s": time.perf_counter() - t0, "resumed": resume is not None, "where": where(),
            "budget": {"epochs": cfg.epochs, "iters_per_epoch": cfg.max_iters_per_epoch, "batch": cfg.batch_size,
                       "model": cfg.model.name, "input": cfg.model.input_size}}


def run_table(rows: list[str], config_dir: Path, runs: Path, build_dir: Path, data_root: Path | None,
              overrides: list[str], table: Path, force: bool = False, eval_only: bool = False,
              detector_model: str | None = None) -> dict[str, dict]:
    from edgepose.metadata import atomic_write_text

    trunk = write_trunk(data_root, runs / TRUNK) if data_root is not None else runs / TRUNK
    base = [f"data.train.root={build_dir}", f"data.val.root={build_dir}"]
    results = load_results(runs)
    sets = None
    for row in rows:
        if row in results and not (force or eval_only):
            log.info("row %s: finished earlier (%s), kept", row, runs / row / "table.json")
            continue
        info = {k: results.get(row, {}).get(k) for k in ("train_s", "resumed", "where", "budget")} if eval_only \
            else train_row(row, config_dir, runs, base + trunk_override(config_dir / f"{row}.yaml", trunk) + overrides)
        if sets is None:
            sets = claim_sets(build_dir, data_root, detector_model, cache_dir=runs)
        res = {**info, "claims": evaluate_checkpoint(runs / row / "last.pt", sets)}
        atomic_write_text(runs / row / "table.json", json.dumps(res))
        results[row] = res
        atomic_write_text(table, markdown(results))
        log.info("row %s done", row)
    return results


def score_imported(specs: list[str], runs: Path, build_dir: Path, data_root: Path | None,
                   detector_model: str | None = None) -> dict[str, dict]:
    """Imported teacher members (``3ddfa-v2:PATH``, ``fsanet:PATH``, ``whenet``) or any other teacher spec (an
    edgepose checkpoint such as a default-model build's ``last.pt``) on the same claim sets, each with its own
    preprocessing, into ``RUNS/imported-<name>/table.json`` (the rows the trained teachers must beat).
    ``LABEL=SPEC`` names the row ``imported-LABEL`` (a checkpoint path makes a poor row name)."""
    from edgepose.distill.teacher import load_teacher
    from edgepose.metadata import atomic_write_text

    from .teacher_claims import ModelPredictor

    labelled = [_row_label(spec) for spec in specs]  # a bad label is one line before any work
    sets = claim_sets(build_dir, data_root, detector_model, cache_dir=runs)
    out = {}
    for label, spec in labelled:
        name = "imported-" + label
        member = load_teacher(spec).members[0]
        res = {"where": where(), "spec": spec, "claims": evaluate_checkpoint(ModelPredictor(member), sets)}
        (runs / name).mkdir(parents=True, exist_ok=True)
        atomic_write_text(runs / name / "table.json", json.dumps(res))
        out[name] = res
    return out


def _row_label(spec: str) -> tuple[str, str]:
    """``LABEL=SPEC`` -> (LABEL, SPEC); a bare spec is labelled by its importer name (``3ddfa-v2:PATH`` -> 3ddfa-v2)."""
    from edgepose.errors import UserError

    label, eq, rest = spec.partition("=")
    if eq and ":" not in label and "/" not in label:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", label) or not rest:
            raise UserError(f"--imported {spec!r}: write LABEL=SPEC with a label of letters, digits, '.', '_' or '-' "
                            f"(e.g. student-v10=runs/default-model-v10/last.pt)")
        return label, rest
    return spec.split(":", 1)[0], spec


def load_results(runs: Path) -> dict[str, dict]:
    out = {}
    for row in ROWS + [p.parent.name for p in sorted(runs.glob("imported-*/table.json"))]:
        p = runs / row / "table.json"
        if p.is_file():
            out[row] = json.loads(p.read_text())
    return out


def _ci(b: dict | None) -> str:
    return "n/a" if not b else f"{b['mean']:.1f} [{b['lo']:.1f}, {b['hi']:.1f}]"


def markdown(results: dict[str, dict]) -> str:
    """Geodesic error (deg) per claim set, mean [bootstrap 95 % interval over faces]; fixtures also MAE."""
    cols = [("fixtures MAE", "fixtures", "original", "mae"), ("fixtures GE", "fixtures", "original", "ge"),
            ("fixtures rotated GE", "fixtures", "rotated", "ge"), ("fixtures mirrored GE", "fixtures", "flip", "ge"),
            ("real-val GE", "real-val", "original", "ge"), ("real-val rotated GE", "real-val", "rotated", "ge"),
            ("real-val rot180 GE", "real-val", "rot+180", "ge"), ("real-val mirrored GE", "real-val", "flip", "ge"),
            ("synth full-SO(3) GE", "synth-full", "original", "ge"),
            ("profiled \\|yaw\\|>75 GE", "profiled-yaw75", "original", "ge")]
    lines = ["| row | where | " + " | ".join(c[0] for c in cols) + " | train min |", "|" + "---|" * (len(cols) + 3)]
    for row in ROWS + sorted(r for r in results if r.startswith("imported-")):
        if row not in results:
            continue
        r = results[row]
        c = r["claims"]
        cells = [_ci(c.get(s, {}).get(v, {}).get(m)) for _, s, v, m in cols]
        t = r.get("train_s")
        lines.append(f"| {row} | {r.get('where', '?')} | " + " | ".join(cells) +
                     f" | {'-' if t is None else f'{t / 60:.1f}'}{' (resumed)' if r.get('resumed') else ''} |")
    return "\n".join(lines) + "\n"


def comparisons(results: dict[str, dict]) -> str:
    """Each paper's pairs: row minus its counterpart on the same faces (deg; negative = the row is better),
    paired bootstrap 95 % interval over faces."""
    views = [("fixtures", "original"), ("real-val", "original"), ("real-val", "rotated"), ("real-val", "flip"),
             ("synth-full", "original"), ("profiled-yaw75", "original")]
    lines = ["| claim | row - against | " + " | ".join(f"{s} {v}" for s, v in views) + " |",
             "|" + "---|" * (len(views) + 2)]
    for paper, pairs in CLAIMS.items():
        for a, b in pairs:
            if a not in results or b not in results:
                continue
            cells = [_paired_cell(results[a], results[b], s, v) for s, v in views]
            lines.append(f"| {paper} | {a} - {b} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _paired_cell(row: dict, against: dict, claim_set: str, view: str) -> str:
    """``row - against`` on one claim set's view, paired over the same faces; n/a where either lacks it."""
    ea = row["claims"].get(claim_set, {}).get(view, {}).get("errors")
    eb = against["claims"].get(claim_set, {}).get(view, {}).get("errors")
    return "n/a" if ea is None or eb is None else _ci(paired_difference(ea, eb))


def merged_results(run_dirs: list[Path]) -> dict[str, dict]:
    """The finished rows of several run folders (rows trained beside each other each get their own folder, since two
    processes never share one); a row found twice is an error, so a table never mixes two runs of one row silently."""
    from edgepose.errors import UserError

    out: dict[str, dict] = {}
    found_in: dict[str, Path] = {}
    for d in run_dirs:
        if not Path(d).is_dir():
            raise UserError(f"--report {d}: no such run folder")
        for row, res in load_results(Path(d)).items():
            if row in out:
                raise UserError(f"--report: row {row} is in both {found_in[row]} and {d}; give each row's folder once")
            out[row], found_in[row] = res, Path(d)
    return out


def seed_comparison(seed_dirs: list[Path], row: str = "ldl", against: str = "baseline") -> str:
    """``row - against`` on the same faces for each seed's run folder (paired bootstrap over faces): the certainty
    over training runs that one folder's intervals over faces cannot give."""
    views = [("real-val", "original"), ("fixtures", "original"), ("real-val", "rotated"), ("synth-full", "original"),
             ("profiled-yaw75", "original")]
    lines = [f"| run folder | {row} - {against}: " + " | ".join(f"{s} {v} (geodesic)" for s, v in views) + " |",
             "|" + "---|" * (len(views) + 1)]
    for d in seed_dirs:
        res = load_results(Path(d))
        if row not in res or against not in res:
            continue
        cells = [_paired_cell(res[row], res[against], s, v) for s, v in views]
        lines.append(f"| {Path(d).name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
