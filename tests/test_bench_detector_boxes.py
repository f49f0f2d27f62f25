"""edgepose-bench's accuracy sets at the deployment detector's boxes (``boxes: detector``).

The packaged suites crop the AFLW2000 fixtures at YuNet's boxes, the path of docs/models.md's fixture
column (``edgepose models evaluate``); these tests hold the two paths to the same network inputs.
"""
from __future__ import annotations

import numpy as np
import pytest

from edgepose.benchmarks.accuracy import load_eval_set
from edgepose.benchmarks.suite import DatasetSpec, load_suite
from edgepose.cli.main import main
from edgepose.errors import DataError


@pytest.fixture(scope="module")
def fixtures(data_file):
    return data_file("aflw2000-sample"), data_file("detectors/yunet/yunet_s_640_640.onnx")


def _spec(root, **kw) -> DatasetSpec:
    return DatasetSpec(name="aflw", format="aflw2000", root=str(root), **kw)


def test_detector_boxes_give_the_models_evaluate_crops(fixtures):
    from edgepose.assets.evaluate import aflw_faces
    from edgepose.preprocess import PreprocessSpec, preprocess

    aflw, yunet = fixtures
    es = load_eval_set(_spec(aflw, boxes="detector", detector_model=str(yunet)))
    items, G = aflw_faces(aflw.parent, yunet)
    assert es.boxes == "detector" and len(es.samples) == len(items) > 0
    for s, (_, box) in zip(es.samples, items):
        assert s.box == box
    spec = PreprocessSpec(input_size=96)
    x, R = es.inputs(spec)
    np.testing.assert_allclose(x, np.stack([preprocess(im, box, spec) for im, box in items]), atol=1e-6)
    np.testing.assert_allclose(R, G, atol=1e-12)


def test_detector_boxes_are_not_the_dataset_boxes(fixtures):
    aflw, yunet = fixtures
    own = load_eval_set(_spec(aflw))
    det = load_eval_set(_spec(aflw, boxes="detector", detector_model=str(yunet)))
    by_source = {s.source: s.box for s in own.samples}
    moved = [max(abs(a - b) for a, b in zip(s.box, by_source[s.source])) for s in det.samples]
    assert max(moved) > 2.0, moved  # the landmark boxes are tighter than YuNet's
    assert own.fingerprint != det.fingerprint  # reports at other crops are not comparable


def test_missing_detector_file_is_one_error_with_the_fix(fixtures, tmp_path):
    aflw, _ = fixtures
    with pytest.raises(DataError, match="edgepose models fetch yunet"):
        load_eval_set(_spec(aflw, boxes="detector", detector_model=str(tmp_path / "nope.onnx")))


def test_unknown_box_source_is_refused(tmp_path, capsys):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: x\npeers: [{name: a, source: {arch: resnet18}}]\n"
                   "accuracy: [{name: aflw, format: aflw2000, root: /nowhere, boxes: landmarks}]\n")
    assert main(["bench", "--suite", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "accuracy boxes must be one of dataset, detector" in err and "Traceback" not in err


def test_packaged_suites_crop_the_fixtures_at_detector_boxes():
    for name in ("default", "jetson"):
        suite, _ = load_suite(name)
        aflw = [d for d in suite.accuracy if d.format == "aflw2000"]
        assert aflw and all(d.boxes == "detector" and d.detector_model for d in aflw), name
