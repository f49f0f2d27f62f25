"""The trained-teacher table on a build's cached faces: the faces_npz format, CLERF's nearest-pose positives,
the SimCLR probe, the claim sets' label transforms and bootstrap, and the resumable runner (docs/teachers.md)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from edgepose import geometry
from edgepose.data.npz import NpzFacesReader, person_of
from edgepose.data.registry import build_reader
from edgepose.errors import DataError


def write_build(root: Path, n: int = 24, size: int = 40, seed: int = 0) -> Path:
    """A miniature build folder: real / profiled / synth sets with the arrays the build writes."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    for k, part in enumerate(("real", "profiled", "synth", "real-val", "profiled-val")):
        R = geometry.random_rotations(n, rng).astype(np.float32)
        d = {"images": rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
             "boxes": np.tile(np.float32([8, 8, size - 8, size - 8]), (n, 1)), "R": R}
        if part != "synth":
            d["sources"] = np.asarray([f"/x/owner{i % 4}__repo__clip{i}.mp4" for i in range(n)])
        else:
            d["settings"] = np.asarray(json.dumps({"n": n, "full_fraction": 0.25}))
        np.savez(root / f"{part}.npz", **d)
    return root


def test_person_of_groups_a_repository_and_ignores_folders():
    assert person_of("/a/b/owner__repo__clip3.mp4") == "owner__repo"
    assert person_of("/elsewhere/owner__repo__clip9.mp4") == "owner__repo"
    assert person_of("/a/utk_26_1_2.jpg") == "utk_26_1_2.jpg"


def test_faces_npz_reads_parts_as_one_reader(tmp_path):
    root = write_build(tmp_path / "b")
    r = build_reader({"format": "faces_npz", "root": str(root), "parts": ["real", "profiled", "synth"]})
    assert len(r) == 72
    s = r[30]  # the profiled part's 7th face
    ref = np.load(root / "profiled.npz")
    assert s.source == "profiled:6" and np.allclose(s.R, ref["R"][6]) and s.image.shape == (40, 40, 3)
    assert r.person(30) == "profiled:owner2__repo" and r.person(50).startswith("synth:#")


def test_faces_npz_filters(tmp_path):
    root = write_build(tmp_path / "b")
    r = NpzFacesReader(str(root), ["synth"], full_range_only=True)
    assert len(r) == 6 and r[0].source == "synth:18"  # the full-range share comes last
    wide = NpzFacesReader(str(root), ["real"], min_abs_yaw=40.0)
    yaw = np.abs(geometry.matrix_to_euler(wide.labels())[:, 1])
    assert 0 < len(wide) < 24 and (yaw > 40).all()
    assert len(NpzFacesReader(str(root), ["real"], n=5, seed=1)) == 5
    with pytest.raises(DataError, match="not found"):
        NpzFacesReader(str(root), ["nope"])
    with pytest.raises(DataError, match="records no render settings"):
        NpzFacesReader(str(root), ["real"], full_range_only=True)
    with pytest.raises(DataError, match="unknown key"):
        build_reader({"format": "faces_npz", "root": str(root), "colour": 1})


def test_nearest_pose_positive_is_another_person_with_the_nearest_label(tmp_path):
    root = write_build(tmp_path / "b", n=40)
    r = NpzFacesReader(str(root), ["real"])
    R = r.labels()
    rng = np.random.default_rng(0)
    for i in range(len(r)):
        j, d = r.nearest_pose_positive(i, rng, k=1)
        assert r.person(j) != r.person(i)
        others = [m for m in range(len(r)) if r.person(m) != r.person(i)]
        best = min(geometry.geodesic_distance(R[i], R[m]) for m in others)
        assert d == pytest.approx(best, abs=1e-3)
        assert d == pytest.approx(geometry.geodesic_distance(R[i], R[j]), abs=1e-3)


def test_clerf_pairs_take_the_nearest_pose_positive(tmp_path):
    from edgepose.data.dataset import PoseDataset
    from edgepose.methods.data import ClerfPairs, GeometricAugment
    from edgepose.preprocess import PreprocessSpec

    root = write_build(tmp_path / "b", n=40)
    r = NpzFacesReader(str(root), ["real"])
    pairs = ClerfPairs(PoseDataset(r, PreprocessSpec(input_size=32), None), GeometricAugment(rotate_p=0.0, flip_p=0.0,
                       mirror_p=0.0))
    item = pairs[3]
    j, d = r.nearest_pose_positive(3, np.random.default_rng([0, 7919, 3]))
    assert torch.allclose(item["R_pos"].double(), torch.from_numpy(r.label(j)), atol=1e-5)
    assert geometry.geodesic_distance(item["R"].double().numpy(), item["R_pos"].double().numpy()) == \
        pytest.approx(d, abs=1e-2)


class LabelPredictor:
    """Predicts a fixed rotation per face: the claim sets must transform the label, not the prediction."""

    def __init__(self, spec, Rs):
        self.meta = type("M", (), {"preprocess": spec})()
        self.Rs, self.i = Rs, 0

    def infer(self, x):
        out = self.Rs[self.i:self.i + len(x)]
        self.i += len(x)
        return {"R": out}


def test_claim_views_transform_the_labels_through_geometry():
    from edgepose.benchmarks.teacher_claims import _predict
    from edgepose.data.sample import Sample
    from edgepose.metrics import geodesic_errors
    from edgepose.preprocess import PreprocessSpec

    spec = PreprocessSpec(input_size=32)
    R = geometry.random_rotations(5, np.random.default_rng(1))
    samples = [Sample(image=np.zeros((48, 48, 3), np.uint8), R=R[i], box=(8, 8, 40, 40)) for i in range(5)]
    want = {"rot+90": geometry.rotate_label(R, 90.0), "rot+180": geometry.rotate_label(R, 180.0),
            "flip": geometry.flip_label(R), "original": R}
    for view, Rv in want.items():
        P, G = _predict(LabelPredictor(spec, Rv), samples, view)
        assert np.allclose(G, Rv, atol=1e-6), view
        assert geodesic_errors(P, G).max() < 1e-3
    # a model that ignores the rotation is wrong by the rotation itself on the rotated view
    P, G = _predict(LabelPredictor(spec, R), samples, "rot+90")
    assert np.allclose(geodesic_errors(P, G), 90.0, atol=1e-3)


def test_bootstrap_intervals():
    from edgepose.benchmarks.teacher_claims import bootstrap_mean, paired_difference

    x = np.random.default_rng(0).normal(10.0, 2.0, 400)
    b = bootstrap_mean(x)
    assert b["lo"] < b["mean"] < b["hi"] and b["mean"] == pytest.approx(x.mean())
    assert 0.25 < b["hi"] - b["lo"] < 0.5  # about 2 x 1.96 x 2 / sqrt(400) = 0.39
    d = paired_difference(x + 1.0, x)
    assert d["lo"] == pytest.approx(1.0) and d["hi"] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        paired_difference(x, x[:3])


def test_nt_xent_prefers_matching_views():
    from edgepose.methods.simclr import nt_xent

    z = torch.nn.functional.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(0)), dim=1)
    other = torch.nn.functional.normalize(torch.randn(16, 8, generator=torch.Generator().manual_seed(1)), dim=1)
    assert nt_xent(z, z, 0.2) < nt_xent(z, other, 0.2)


def tiny_overrides(root: Path, out: Path, epochs: int = 2, method: str | None = None) -> list[str]:
    o = [f"data.train.root={root}", f"data.val.root={root}", "data.val.n=8", f"output={out}", f"epochs={epochs}",
         "max_iters_per_epoch=2", "batch_size=4", "model.name=mobilenetv3_small", "model.input_size=32",
         "model.pretrained=null", "data.crop_scale=1.0", "data.color_order=null"]
    return o + ([f"method.name={method}"] if method else [])


def test_simclr_probe_trains_only_the_head_after_pretraining(tmp_path, repo_root):
    from edgepose.train import Trainer, load_train_config

    root = write_build(tmp_path / "b")
    cfg = load_train_config(repo_root / "configs/teachers-real/simclr.yaml",
                            tiny_overrides(root, tmp_path / "run", epochs=3))
    trunks = {}

    def snapshot(epoch, row):
        sd = tr.module.pose_model.backbone.state_dict()
        trunks[epoch] = {k: v.clone() for k, v in sd.items()}

    tr = Trainer(cfg, on_epoch_end=[snapshot])
    tr.fit()
    assert "train_nt_xent" in tr.history[0] and "train_nt_xent" not in tr.history[2]
    changed = [k for k in trunks[0] if not torch.equal(trunks[0][k], trunks[1][k])]
    assert changed  # pre-training moves the trunk ...
    assert all(torch.equal(trunks[1][k], trunks[2][k]) for k in trunks[1])  # ... the probe epoch does not


def test_table_row_resumes_an_interrupted_run(tmp_path, repo_root):
    from edgepose.benchmarks.teacher_table import train_row

    root = write_build(tmp_path / "b")
    cfgs = repo_root / "configs" / "teachers-real"
    first = train_row("baseline", cfgs, tmp_path / "runs", tiny_overrides(root, tmp_path / "runs" / "baseline", 1))
    assert first["resumed"] is False
    again = train_row("baseline", cfgs, tmp_path / "runs", tiny_overrides(root, tmp_path / "runs" / "baseline", 2))
    assert again["resumed"] is True
    rows = [json.loads(line) for line in (tmp_path / "runs" / "baseline" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]  # the second session trained epoch 2 only


@pytest.mark.parametrize("row", ["clerf", "hmtl-ldl", "pcl"])
def test_teacher_rows_train_under_torchrun_on_two_cpu_processes(row, tmp_path, repo_root):
    """The teacher methods (extra heads, staged losses) under DDP: 2 gloo processes, the edgepose-train entry."""
    root = write_build(tmp_path / "b")
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", EDGEPOSE_LOG="INFO")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "edgepose.cli.main", "train", str(repo_root / "configs" / "teachers-real" / f"{row}.yaml"),
           *tiny_overrides(root, out, epochs=3), "log.tensorboard=false"]
    proc = subprocess.run(cmd, cwd=repo_root, env=env, capture_output=True, text=True, timeout=300)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-3000:]
    assert "DDP rank 0/2" in log and "DDP rank 1/2" in log
    ck = torch.load(out / "last.pt", weights_only=True)
    assert ck["world_size"] == 2 and ck["epoch"] == 3


@pytest.mark.parametrize("args, message", [
    (["--suite", "synth", "--rows", "simclr"], "error: --rows simclr: not rows of --suite synth"),
    (["--suite", "real", "--rows", "clerf-mlp"], "error: --rows clerf-mlp: not rows of --suite real"),
    (["--suite", "real", "--build-dir", "/nonexistent-build"], "error: --build-dir /nonexistent-build: no real.npz"),
])
def test_methods_table_input_errors_are_one_line(args, message, capsys):
    from edgepose.cli.main import main

    assert main(["bench", "methods", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err


def test_imported_rows_take_a_label_for_checkpoint_specs():
    """``--imported LABEL=SPEC`` names the row (a build's last.pt scored beside the teachers); importer specs keep
    their importer's name; a label that would make a bad folder name is one line naming the form."""
    from edgepose.benchmarks.teacher_table import _row_label
    from edgepose.errors import UserError

    assert _row_label("student-v10=runs/default-model-v10/last.pt") == ("student-v10", "runs/default-model-v10/last.pt")
    assert _row_label("3ddfa-v2:/data/mb05_120x120.pth") == ("3ddfa-v2", "3ddfa-v2:/data/mb05_120x120.pth")
    assert _row_label("fsanet:/d/a=b.onnx") == ("fsanet", "fsanet:/d/a=b.onnx")  # '=' inside a path is not a label
    with pytest.raises(UserError, match="LABEL=SPEC"):
        _row_label("my student=last.pt")


def test_every_real_row_has_a_config_and_the_cli_offers_each(repo_root):
    """The CLI keeps its own copy of the row names (the parser must not import the table): both lists agree, and
    each row has its config in configs/teachers-real, so `--rows NAME` never fails half-way through a table."""
    import argparse

    from edgepose.benchmarks.teacher_table import CLAIMS, ROWS
    from edgepose.cli.bench_methods import add_arguments

    ap = argparse.ArgumentParser()
    add_arguments(ap)
    offered = next(a for a in ap._actions if a.dest == "rows").choices
    assert set(ROWS) <= set(offered)
    assert all((repo_root / "configs" / "teachers-real" / f"{row}.yaml").is_file() for row in ROWS)
    assert all(r in ROWS and a in ROWS for pairs in CLAIMS.values() for r, a in pairs)


def test_report_merges_run_folders_and_refuses_a_row_twice(tmp_path):
    """`edgepose-bench methods --suite real --report A B --seeds ...`: rows trained in folders of their own make one
    table; the same row in two folders is one line naming both (a table must not mix two runs of a row)."""
    import json

    from edgepose.benchmarks.teacher_table import merged_results, seed_comparison
    from edgepose.errors import UserError

    rng = np.random.default_rng(0)

    def row(folder, name, shift):
        errs = {s: {v: {"errors": list(rng.uniform(1, 5, 40) + shift)} for v in ("original", "rotated")}
                for s in ("real-val", "fixtures", "synth-full", "profiled-yaw75")}
        (tmp_path / folder / name).mkdir(parents=True, exist_ok=True)
        (tmp_path / folder / name / "table.json").write_text(json.dumps({"claims": errs}))

    row("a", "baseline", 1.0), row("a", "ldl", 0.0), row("b", "clerf", 2.0), row("c", "ldl", 0.0)
    assert set(merged_results([tmp_path / "a", tmp_path / "b"])) == {"baseline", "ldl", "clerf"}
    with pytest.raises(UserError, match="row ldl is in both"):
        merged_results([tmp_path / "a", tmp_path / "c"])
    table = seed_comparison([tmp_path / "a", tmp_path / "b"])
    assert "| a | -" in table and "| b |" not in table  # ldl 1 deg closer in folder a; b has no pair
