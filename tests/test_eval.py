"""edgepose eval: robustness variants (image and label agree), report, CLI and its errors."""
from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edgepose import geometry
from edgepose.data.sample import Sample
from edgepose.errors import DataError
from edgepose.evaluation import (DEFAULT_ANGLES, Variant, default_variants, evaluate_reader, load_predictor,
                                 parse_variants, variant_batch, variant_euler)
from edgepose.preprocess import CropPolicy, PreprocessSpec

# three head points (x: subject's left, y: up, z: nose), one per colour channel
POINTS = np.array([[40.0, 0.0, 0.0], [0.0, 40.0, 0.0], [0.0, 0.0, 40.0]])


def _dots_frame(R):
    frame = np.zeros((200, 200, 3), np.uint8)
    uv = geometry.project_points(R, POINTS, center=(99.5, 99.5))
    for ch, (u, v) in enumerate(uv):
        layer = np.ascontiguousarray(frame[..., ch])
        cv2.circle(layer, (int(round(u)), int(round(v))), 3, 255, -1)
        frame[..., ch] = layer
    return frame


def _dot_centres(crop):
    out = []
    for ch in range(3):
        ys, xs = np.nonzero(crop[..., ch] > 128)
        out.append((xs.mean(), ys.mean()))
    return np.array(out)


def test_default_variants_cover_clerf_set():
    names = [v.name for v in default_variants()]
    assert names[0] == "original" and "flip" in names
    for a in DEFAULT_ANGLES:
        assert any(v.angle == a for v in default_variants())
    assert {90.0, 180.0} <= {v.angle for v in default_variants()}


def test_parse_variants():
    vs = parse_variants("-30, 15,flip,90+flip")
    assert [(v.angle, v.flip) for v in vs] == [(0.0, False), (-30.0, False), (15.0, False), (0.0, True), (90.0, True)]
    assert [v.name for v in parse_variants("none")] == ["original"]
    with pytest.raises(DataError, match="angle"):
        parse_variants("sideways")


@pytest.mark.parametrize("variant", [Variant("original"), Variant("r30", 30.0), Variant("r-15", -15.0),
                                     Variant("r90", 90.0), Variant("r180", 180.0), Variant("flip", 0.0, True),
                                     Variant("r30f", 30.0, True)])
def test_variant_image_and_label_agree(variant):
    """The transformed label, projected, lands where the transformed image put each head point."""
    R = geometry.euler_to_matrix([20.0, 30.0, 10.0])
    sample = Sample(image=_dots_frame(R), R=R, box=(50.0, 50.0, 150.0, 150.0), source="synthetic")
    spec = PreprocessSpec(input_size=100, color_order="BGR", mean=(0, 0, 0), std=(1, 1, 1),
                          pixel_scale=1.0, crop=CropPolicy(scale=1.0))
    x, R_label = variant_batch([sample], spec, variant)
    crop = np.clip(x[0].transpose(1, 2, 0), 0, 255).astype(np.uint8)  # identity normalisation
    # a mirror swaps the subject's left and right: the dot drawn at +x belongs to the mirrored
    # head's -x side (the label stays a proper rotation)
    pts = POINTS * ([-1.0, 1.0, 1.0] if variant.flip else 1.0)
    expected = geometry.project_points(R_label[0], pts, center=(49.5, 49.5))
    np.testing.assert_allclose(_dot_centres(crop), expected, atol=1.0)
    assert geometry.is_rotation(R_label[0])


@pytest.fixture(scope="module")
def random_checkpoint(tmp_path_factory):
    import torch

    from edgepose.models import create_model

    torch.manual_seed(0)
    model = create_model("mobilenetv3_small", head="6d", input_size=64).eval()
    path = tmp_path_factory.mktemp("model") / "random.pt"
    model.save_checkpoint(path)
    return path


def test_evaluate_reader_reports_every_variant(random_checkpoint, aflw_dir):
    from edgepose.data import build_reader

    reader = build_reader({"format": "aflw2000", "root": str(aflw_dir)})
    variants = parse_variants("-30,180,flip")
    with load_predictor(random_checkpoint) as pred:
        res = evaluate_reader(pred, reader, variants, batch_size=4, aligned=True, progress=False)
    assert list(res) == ["original", "rot-30", "rot+180", "flip"]
    for r in res.values():
        m = r["metrics"]
        assert m["n"] == 6 and m["invalid"] == 0
        for key in ("mae", "ge", "maev", "wrapped_mae", "two_solution_mae", "aligned_ge"):
            assert np.isfinite(m[key]) and m[key] >= 0, key
        assert m["aligned_ge"] <= m["ge"] + 1e-6 or m["aligned_ge"] < 180


def test_torch_fallback_matches_runtime_backend(random_checkpoint, aflw_dir):
    from edgepose.data import build_reader
    from edgepose.evaluation import TorchPredictor

    reader = build_reader({"format": "aflw2000", "root": str(aflw_dir)})
    with load_predictor(random_checkpoint) as a, TorchPredictor(random_checkpoint) as b:
        x, _ = variant_batch(list(reader)[:3], a.meta.preprocess, Variant("original"))
        np.testing.assert_allclose(a.infer(x)["R"], b.infer(x)["R"], atol=1e-5)


def _eval_cli(capsys, *args):
    from edgepose.cli.main import main

    code = main(["eval", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_writes_json_and_table(random_checkpoint, aflw_dir, tmp_path, capsys):
    out = tmp_path / "report.json"
    code, stdout, stderr = _eval_cli(capsys, random_checkpoint, "--data", f"aflw2000:{aflw_dir}",
                                     "--variants=15,flip", "--aligned", "--no-progress", "-o", out)
    assert code == 0, stderr
    for word in ("variant", "original", "rot+15", "flip", "GE", "MAEV", "wMAE", "2solMAE", "aGE"):
        assert word in stdout
    report = json.loads(out.read_text())
    res = report["datasets"]["aflw2000"]["results"]
    assert set(res) == {"original", "rot+15", "flip"}
    assert report["model_info"]["input_size"] == 64
    assert res["flip"]["flip"] is True and res["rot+15"]["angle"] == 15.0


def test_cli_data_config_uses_training_val(random_checkpoint, aflw_dir, tmp_path, capsys):
    cfg = tmp_path / "config.yaml"
    cfg.write_text(f"data:\n  train: {{format: aflw2000, root: {aflw_dir}}}\n"
                   f"  val: {{format: aflw2000, root: {aflw_dir}, crop: test}}\n")
    code, stdout, stderr = _eval_cli(capsys, random_checkpoint, "--data-config", cfg, "--variants", "none",
                                     "--no-progress", "-o", tmp_path / "r.json")
    assert code == 0, stderr
    assert "original" in stdout and "rot" not in stdout


@pytest.mark.parametrize("args, message", [
    (["{missing}", "--data", "aflw2000:{aflw}"], "not found"),
    (["{model}"], "no dataset"),
    (["{model}", "--data", "aflw2000:/nonexistent/dir"], "dataset path not found"),
    (["{model}", "--data", "pascal:/x"], "unknown dataset format"),
    (["{model}", "--data", "aflw2000:{aflw}", "--variants", "upside"], "--variants"),
    (["{model}", "--data-config", "{missing}"], "file not found"),
])
def test_cli_errors_are_one_line(random_checkpoint, aflw_dir, tmp_path, capsys, args, message):
    fill = {"model": random_checkpoint, "aflw": aflw_dir, "missing": tmp_path / "missing.pt"}
    code, _, stderr = _eval_cli(capsys, *[a.format(**fill) for a in args])
    assert code == 2
    assert message in stderr and "Traceback" not in stderr


def test_cli_unlabelled_dataset_is_refused(random_checkpoint, tmp_path, capsys):
    cv2.imwrite(str(tmp_path / "face.png"), np.full((80, 80, 3), 127, np.uint8))
    (tmp_path / "labels.csv").write_text("image\nface.png\n")
    code, _, stderr = _eval_cli(capsys, random_checkpoint, "--data",
                                f"folder:{tmp_path / 'labels.csv'},labelled=false", "--no-progress")
    assert code == 2
    assert "no labelled samples" in stderr and "Traceback" not in stderr


class _FixedPredictor:
    """Predicts the same R for every face; enough to check which Euler label the MAE uses."""

    def __init__(self, R, spec):
        self.R, self.meta = np.asarray(R, np.float64), type("Meta", (), {"preprocess": spec})()

    def infer(self, batch):
        return {"R": np.repeat(self.R[None], len(batch), 0)}


def _euler_sample(pyr):
    R = geometry.euler_to_matrix(pyr)
    return Sample(image=np.full((40, 40, 3), 127, np.uint8), R=R, box=(5.0, 5.0, 35.0, 35.0),
                  source="synthetic", extra={"pyr_deg": np.asarray(pyr, np.float64)})


def test_euler_mae_uses_the_datasets_label_beyond_yaw_90():
    """Paper protocol: the MAE is against the dataset's (10, 91, 5), not its |yaw| <= 90 decode."""
    spec = PreprocessSpec(input_size=32)
    samples = [_euler_sample([10.0, 91.0, 5.0])]
    pred = _FixedPredictor(geometry.euler_to_matrix([10.0, 89.0, 5.0]), spec)
    m = evaluate_reader(pred, samples, [Variant("original")], progress=False)["original"]["metrics"]
    assert m["mae"] == pytest.approx(2.0 / 3, abs=1e-6) and m["ge"] == pytest.approx(2.0, abs=1e-6)
    # mirrored: label (10, -91, -5), the mirrored prediction (10, -89, -5)
    pred = _FixedPredictor(geometry.euler_to_matrix([10.0, -89.0, -5.0]), spec)
    m = evaluate_reader(pred, samples, [Variant("flip", 0.0, True)], progress=False)["flip"]["metrics"]
    assert m["mae"] == pytest.approx(2.0 / 3, abs=1e-6)


@pytest.mark.parametrize("variant", [Variant("original"), Variant("flip", 0.0, True), Variant("r15", 15.0),
                                     Variant("r180f", 180.0, True)])
def test_exact_prediction_beyond_yaw_90_scores_zero(variant):
    spec = PreprocessSpec(input_size=32)
    samples = [_euler_sample([10.0, 95.0, 5.0])]
    _, R_label = variant_batch(samples, spec, variant)
    euler = variant_euler(samples, R_label, variant)
    np.testing.assert_allclose(geometry.euler_to_matrix(euler), R_label, atol=1e-9)  # R stays the truth
    if variant.angle == 0:
        np.testing.assert_allclose(euler[0], [10.0, -95.0, -5.0] if variant.flip else [10.0, 95.0, 5.0])
    m = evaluate_reader(_FixedPredictor(R_label[0], spec), samples, [variant], progress=False)[variant.name]["metrics"]
    assert m["ge"] == pytest.approx(0.0, abs=1e-4)
    # the prediction's other triple matches the label exactly; the |yaw| <= 90 decode of a
    # perfect R reads (p + 180, 85, r + 180) against it, as in the papers (without their +-180 trick)
    assert m["two_solution_mae"] == pytest.approx(0.0, abs=1e-4)
