"""`edgepose-bench quantize-sweep --shift-faces`: every INT8 variant is scored by the [accuracy] issue's stability
measure (answer change under a 0.01 px box shift), computed as edgepose.evaluation.subpixel_change computes it."""
import json

import numpy as np
import pytest


def _shift_sweep(data_file, out, stages: str) -> list[dict]:
    """The default FP32 file swept on 8 faces-aws crops (cpu profile), every row with the 0.01 px shift column."""
    from edgepose import defaults
    from edgepose.cli.main import main

    faces, det = data_file("faces-aws"), data_file("detectors/yunet/yunet_s_640_640.onnx")
    rc = main(["bench", "quantize-sweep", str(defaults.default_pose_model("fp32")), "--calib", str(faces),
               "--detector-model", str(det), "--max-crops", "8", "--synth-test", "0", "--stages", stages,
               "--profile", "cpu", "--shift-faces", str(faces), "--out", str(out)])
    assert rc == 0
    return json.loads((out / "sweep.json").read_text())["rows"]


def test_sweep_scores_the_sub_pixel_shift_like_the_evaluation(data_file, tmp_path):
    pytest.importorskip("onnxruntime")
    from edgepose import defaults
    from edgepose.assets.evaluate import OnnxRow
    from edgepose.evaluation import photo_faces, subpixel_change

    fp32 = defaults.default_pose_model("fp32")
    faces, det = data_file("faces-aws"), data_file("detectors/yunet/yunet_s_640_640.onnx")
    out = tmp_path / "sweep"
    rows = {r["variant"]: r for r in _shift_sweep(data_file, out, "methods")}
    # the FP32 row equals the evaluation's own measurement of the same file on the same faces
    expected = subpixel_change(OnnxRow("fp32", fp32).predict, photo_faces(faces, det)).mean()
    assert rows["fp32"]["scores"]["shift"]["shift"] == pytest.approx(expected, rel=1e-6)
    int8 = [r["scores"]["shift"]["shift"] for name, r in rows.items() if name != "fp32"]
    assert len(int8) == 5 and np.isfinite(int8).all()
    assert max(int8) > expected  # INT8 rounding makes the answer jump more than FP32 does
    assert "0.01 px shift" in (out / "sweep.md").read_text()


def test_rank_by_shift_without_faces_is_one_line(data_file, tmp_path, capsys):
    from edgepose import defaults
    from edgepose.cli.main import main

    rc = main(["bench", "quantize-sweep", str(defaults.default_pose_model("fp32")), "--calib", str(data_file("faces-aws")), "--rank-by", "shift", "--synth-test", "0",
               "--out", str(tmp_path / "s")])
    assert rc != 0 and "--shift-faces" in capsys.readouterr().err


def test_sensitivity_without_an_evaluation_set_is_one_line(data_file, tmp_path, capsys):
    from edgepose import defaults
    from edgepose.cli.main import main

    out = tmp_path / "s"
    rc = main(["bench", "quantize-sweep", str(defaults.default_pose_model("fp32")), "--calib",
               str(data_file("faces-aws")), "--synth-test", "0", "--stages", "sensitivity", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc != 0 and "--eval or --synth-test" in err and "Traceback" not in err
    assert not (out / "sweep.json").exists()  # named before any calibration or quantizing


def test_equalize_stage_scores_three_strengths_and_unknown_stages_are_named(data_file, tmp_path, capsys):
    pytest.importorskip("onnxruntime")
    from edgepose import defaults
    from edgepose.cli.main import main

    rows = _shift_sweep(data_file, tmp_path / "sweep", "equalize")
    assert [(r["variant"], r.get("equalize")) for r in rows[1:]] == [("equalize-0", 0.0), ("equalize-0.5", 0.5),
                                                                    ("equalize-1", 1.0)]
    assert all(np.isfinite(r["scores"]["shift"]["shift"]) for r in rows)
    rc = main(["bench", "quantize-sweep", str(defaults.default_pose_model("fp32")), "--calib", str(data_file("faces-aws")),
               "--stages", "methods,equalise",
               "--out", str(tmp_path / "s2")])
    err = capsys.readouterr().err
    assert rc != 0 and "unknown stage(s) equalise" in err and "Traceback" not in err
