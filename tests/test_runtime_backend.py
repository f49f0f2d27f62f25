"""Pose backends: suffix dispatch, metadata checks, batching, decoding, NaN handling, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest

from edgepose import geometry
from edgepose.errors import DependencyError, ModelError
from edgepose.metadata import sidecar_path
from edgepose.preprocess import preprocess_batch
from edgepose.runtime.backend import PoseBackend, decode_pose_outputs, load_backend
from edgepose.runtime.runners import OnnxRunner, TorchRunner, open_runner, select_providers

from runtime_fixture_model import export_fixture_model, torch_reference


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pose_models")


@pytest.fixture(scope="module")
def onnx_model(fixture_dir):
    return export_fixture_model(fixture_dir, "dyn", head="rotation", input_size=64)


def _frame(seed=0, h=240, w=320):
    return np.random.default_rng(seed).integers(0, 255, (h, w, 3), dtype=np.uint8)


def test_onnx_backend_matches_torch_and_geometry(onnx_model):
    path, net = onnx_model
    with load_backend(path) as be:
        assert isinstance(be.runner, OnnxRunner)
        assert be.meta.preprocess.input_size == 64
        batch = preprocess_batch(_frame(), [(10, 10, 80, 90), (100, 50, 200, 170), (250, 150, 300, 220)], be.spec)
        out = be.infer(batch)
    ref = torch_reference(net, batch)
    assert out["R"].shape == (3, 3, 3) and out["euler"].shape == (3, 3) and out["valid"].all()
    np.testing.assert_allclose(out["R"], ref, atol=1e-5)
    assert geometry.is_rotation(out["R"].astype(np.float64), atol=1e-4).all()
    np.testing.assert_allclose(out["euler"], geometry.matrix_to_euler(out["R"].astype(np.float64)), atol=1e-3)


def test_zero_faces_and_predict(onnx_model):
    path, _ = onnx_model
    with load_backend(path) as be:
        empty = be.predict(_frame(), [])
        assert empty["R"].shape == (0, 3, 3) and empty["euler"].shape == (0, 3)
        gray = _frame()[..., 0].copy()  # IR / GRAY8 frames go through the same preprocessing
        out = be.predict(gray, [(20, 20, 120, 140)])
        assert out["R"].shape == (1, 3, 3) and out["valid"].all()


def test_fixed_batch_model_is_split_and_padded(fixture_dir):
    path, net = export_fixture_model(fixture_dir, "fixed2", fixed_batch=2, input_size=48)
    with load_backend(path) as be:
        assert be.max_batch == 2
        boxes = [(5 + 20 * i, 5, 60 + 20 * i, 70) for i in range(5)]  # 5 faces > max batch 2
        batch = preprocess_batch(_frame(1), boxes, be.spec)
        out = be.infer(batch)
    assert out["R"].shape == (5, 3, 3)
    np.testing.assert_allclose(out["R"], torch_reference(net, batch), atol=1e-5)


def test_sixd_output_decoded_on_host(fixture_dir):
    path, net = export_fixture_model(fixture_dir, "sixd", head="sixd", input_size=32)
    with load_backend(path) as be:
        batch = preprocess_batch(_frame(2), [(0, 0, 50, 50), (60, 60, 160, 180)], be.spec)
        out = be.infer(batch)
    expected = geometry.sixd_to_matrix(torch_reference(net, batch).astype(np.float64))
    np.testing.assert_allclose(out["R"], expected, atol=1e-5)


def test_input_size_mismatch_is_a_clear_model_error(fixture_dir):
    path, _ = export_fixture_model(fixture_dir, "mismatch", input_size=64, meta_input_size=112)
    with pytest.raises(ModelError, match="input_size=112"):
        load_backend(path)


def test_nan_outputs_are_flagged_or_raised(fixture_dir, caplog):
    path, _ = export_fixture_model(fixture_dir, "nanmodel", head="nan", input_size=32)
    with load_backend(path) as be:
        out = be.predict(_frame(), [(0, 0, 40, 40), (50, 50, 90, 90)])
        assert not out["valid"].any() and np.isnan(out["euler"]).all()
    assert "non-finite" in caplog.text
    with load_backend(path, on_nan="raise") as be, pytest.raises(ModelError, match="non-finite"):
        be.predict(_frame(), [(0, 0, 40, 40)])


def test_torch_runner_parity(onnx_model):
    path, net = onnx_model
    meta = load_backend(path).meta
    runner = TorchRunner(net, input_shape=(None, 3, 64, 64))
    with PoseBackend(runner, meta) as be:
        batch = preprocess_batch(_frame(3), [(30, 30, 100, 110)], be.spec)
        np.testing.assert_allclose(be.infer(batch)["R"], torch_reference(net, batch), atol=1e-6)


def test_error_paths(tmp_path, onnx_model):
    with pytest.raises(ModelError, match="not found"):
        load_backend(tmp_path / "missing.onnx")
    bad = tmp_path / "model.xyz"
    bad.write_bytes(b"x")
    with pytest.raises(ModelError, match="unknown model format"):
        open_runner(bad)
    # an ONNX file with no sidecar and no embedded metadata
    path, _ = onnx_model
    bare = tmp_path / "bare.onnx"
    bare.write_bytes(path.read_bytes())
    with pytest.raises(ModelError, match="no edgepose metadata"):
        load_backend(bare)
    # corrupt sidecar
    sidecar_path(bare).write_text("{not json")
    with pytest.raises(ModelError, match="not valid edgepose metadata"):
        load_backend(bare)
    # a file that is not ONNX at all
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"this is not a model")
    sidecar_path(junk).write_text(json.dumps(load_backend(path).meta.to_dict()))
    with pytest.raises(ModelError, match="cannot load"):
        load_backend(junk)
    with load_backend(path) as be, pytest.raises(ModelError, match="expected"):
        be.infer(np.zeros((1, 3, 32, 32), np.float32))
    with pytest.raises(ModelError, match="no rotation"):
        decode_pose_outputs({"x": np.zeros((1, 5), np.float32)})


def test_engine_without_tensorrt_is_a_dependency_error(tmp_path):
    pytest.importorskip("numpy")
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    plan = tmp_path / "model.engine"
    plan.write_bytes(b"\0")
    with pytest.raises(DependencyError, match="tensorrt"):
        open_runner(plan)


def test_provider_selection():
    assert select_providers("cpu") == ["CPUExecutionProvider"]
    auto = select_providers("auto")
    assert auto[-1] == "CPUExecutionProvider"
    with pytest.raises(DependencyError, match="not available"):
        select_providers(providers=["NoSuchExecutionProvider"])
    with pytest.raises(ModelError, match="unknown device"):
        select_providers("quantum")


def test_real_posemodel_checkpoint_through_torch_runner(tmp_path):
    """A real (untrained) PoseModel checkpoint: suffix dispatch -> TorchRunner.from_checkpoint,
    metadata from the checkpoint, outputs equal to the model's own forward.  (ONNX export parity
    is tested by the exporter's tests; the dynamo export is too slow to repeat here.)"""
    models = pytest.importorskip("edgepose.models")
    import torch

    model = models.create_model("mobilenetv3_small", head="6d", input_size=96).eval()
    ckpt = model.save_checkpoint(tmp_path / "m.pt")
    boxes = [(20, 20, 120, 140), (150, 40, 260, 170), (0, 0, 60, 60)]
    frame = _frame(5)
    with load_backend(ckpt) as be:
        assert isinstance(be.runner, TorchRunner)
        assert be.meta.preprocess.input_size == 96 and be.meta.model == "mobilenetv3_small"
        out = be.predict(frame, boxes)
        batch = preprocess_batch(frame, boxes, be.spec)
    with torch.no_grad():
        ref = model(torch.from_numpy(batch))["R"].numpy()
    assert out["valid"].all()
    np.testing.assert_allclose(out["R"], ref, atol=1e-5)


def test_a_checkpoint_is_read_once(tmp_path, monkeypatch):
    """load_backend takes the metadata and the weights of a .pt from one read (a checkpoint can be
    hundreds of MB; it used to be read for its metadata, then again for its weights).  The real
    torch.load runs; the wrapper only counts the reads."""
    models = pytest.importorskip("edgepose.models")
    import torch

    ckpt = models.create_model("mobilenetv3_small", head="6d", input_size=64).save_checkpoint(tmp_path / "m.pt")
    reads = []
    real_load = torch.load

    def counting_load(*args, **kw):
        reads.append(args[0] if args else kw.get("f"))
        return real_load(*args, **kw)

    monkeypatch.setattr(torch, "load", counting_load)
    with load_backend(ckpt) as be:
        assert isinstance(be.runner, TorchRunner) and be.meta.model == "mobilenetv3_small"
    assert reads == [str(ckpt)]


class KernelTwinRunner:
    """A runner that crops on the "device" the way TrtRunner.infer_frame does, with the CUDA kernel's
    NumPy twin (edgepose.jetson.gpu_preprocess.reference_crop_resize_normalize, tested against the
    kernel on GPUs) feeding the real ONNX runner: the dispatch of PoseBackend.predict is tested here
    without a GPU; the real TensorRT path is tests/test_trt_runtime.py (GPU only)."""

    def __init__(self, inner):
        self.inner = inner
        self.input_name, self.input_shape, self.path = inner.input_name, inner.input_shape, inner.path
        self.frame_calls: list[int] = []

    def infer(self, feed):
        return self.inner.infer(feed)

    def infer_frame(self, frame, boxes, spec):
        from edgepose.jetson.gpu_preprocess import reference_crop_resize_normalize

        self.frame_calls.append(len(boxes))
        return self.inner.infer({self.input_name: reference_crop_resize_normalize(frame, boxes, spec)})

    def close(self):
        self.inner.close()


def test_predict_crops_on_device_when_the_runner_can(onnx_model):
    path, _ = onnx_model
    meta = load_backend(path).meta
    boxes = [(10, 10, 80, 90), (100, 50, 200, 170), (250, 150, 330, 250), (-20, -10, 40, 60)]
    frame = _frame(4)
    with load_backend(path) as cpu:
        assert not cpu.crops_on_device  # ONNX Runtime: crops on the CPU
        ref = cpu.predict(frame, boxes)
    twin = KernelTwinRunner(OnnxRunner(path))
    with PoseBackend(twin, meta) as be:
        assert be.crops_on_device
        out = be.predict(frame, boxes)
        assert twin.frame_calls == [4]  # all faces of the frame in one device call
        assert out["valid"].all()
        # kernel crops use exact float coordinates, OpenCV 1/32 px: close, not identical
        np.testing.assert_allclose(out["R"], ref["R"], atol=0.05)
        assert np.abs(out["R"] - ref["R"]).max() > 0  # it really took the device path
        bgra = np.concatenate([frame, np.full(frame.shape[:2] + (1,), 255, np.uint8)], axis=2)
        be.predict(bgra, boxes)  # BGRA: the kernel reads BGR/GRAY only -> CPU crops
        assert be.predict(frame, [])["R"].shape == (0, 3, 3)
        assert twin.frame_calls == [4]
    twin2 = KernelTwinRunner(OnnxRunner(path))
    with PoseBackend(twin2, meta, gpu_preprocess=False) as be:
        assert not be.crops_on_device
        np.testing.assert_array_equal(be.predict(frame, boxes)["R"], ref["R"])
        assert twin2.frame_calls == []
