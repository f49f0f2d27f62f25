"""TrtRunner's pure-Python logic (feed checks, batch chunks, buffer sizing) and the TensorRT backend
wiring; the real engine test runs only where TensorRT, pycuda and a GPU exist."""
from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from edgepose.errors import DependencyError, ModelError
from edgepose.jetson.io_plan import BufferPlan, TensorSpec, batch_chunks, nbytes, resolve_shape, validate_feed

DYN = TensorSpec("input", True, np.dtype(np.float32), (-1, 3, 112, 112), (1, 3, 112, 112), (8, 3, 112, 112))
DYN_MIN2 = TensorSpec("input", True, np.dtype(np.float32), (-1, 3, 112, 112), (2, 3, 112, 112), (4, 3, 112, 112))
STATIC = TensorSpec("input", True, np.dtype(np.float16), (4, 3, 112, 112), (4, 3, 112, 112), (4, 3, 112, 112))


def test_batch_chunks_dynamic():
    assert batch_chunks(1, DYN) == [(0, 1, 1)]
    assert batch_chunks(8, DYN) == [(0, 8, 8)]
    assert batch_chunks(19, DYN) == [(0, 8, 8), (8, 16, 8), (16, 19, 3)]
    # every row is covered exactly once, and runs stay inside the profile
    for n in range(1, 30):
        ch = batch_chunks(n, DYN)
        assert sum(b - a for a, b, _ in ch) == n and ch[0][0] == 0 and ch[-1][1] == n
        assert all(1 <= r <= 8 and r >= b - a for a, b, r in ch)


def test_batch_chunks_min_and_static():
    assert batch_chunks(5, DYN_MIN2) == [(0, 4, 4), (4, 5, 2)]  # 1 row padded up to the profile minimum
    assert batch_chunks(6, STATIC) == [(0, 4, 4), (4, 6, 4)]  # static engines always run their batch
    assert STATIC.batch_range == (4, 4) and not STATIC.dynamic_batch and DYN.dynamic_batch


def test_shapes_and_bytes():
    assert resolve_shape((-1, 3, 112, 112), 5) == (5, 3, 112, 112)
    assert resolve_shape((4, 3), 5) == (4, 3)
    with pytest.raises(ModelError, match="dynamic dims other than the batch"):
        resolve_shape((-1, 3, -1, -1), 2)
    assert nbytes((5, 3, 112, 112), np.float32) == 5 * 3 * 112 * 112 * 4
    assert nbytes((2, 3, 3), np.float16) == 36
    with pytest.raises(ValueError):
        nbytes((-1, 3), np.float32)


def test_buffer_plan_grows_never_shrinks():
    plan = BufferPlan()
    a = nbytes((1, 3, 112, 112), np.float32)
    assert plan.grow({"input": a, "rotation": 36}) == {"input": a, "rotation": 36}
    assert plan.grow({"input": a, "rotation": 36}) == {}  # steady state: no reallocation
    assert plan.grow({"input": a // 2}) == {}  # smaller batch reuses the buffer
    assert plan.grow({"input": 8 * a, "rotation": 36}) == {"input": 8 * a}
    assert plan.capacity["input"] == 8 * a
    plan.clear()
    assert plan.capacity == {}


def test_validate_feed():
    x = np.zeros((3, 3, 112, 112), np.float32)
    assert validate_feed({"input": x}, [DYN]) == 3
    with pytest.raises(ModelError, match="feed has"):
        validate_feed({"images": x}, [DYN])
    with pytest.raises(ModelError, match="dim 2 is 64"):
        validate_feed({"input": np.zeros((3, 3, 64, 112), np.float32)}, [DYN])
    with pytest.raises(ModelError, match="needs 4 dims"):
        validate_feed({"input": np.zeros((3, 112, 112), np.float32)}, [DYN])
    other = TensorSpec("mask", True, np.dtype(np.float32), (-1, 1), (1, 1), (8, 1))
    with pytest.raises(ModelError, match="disagree"):
        validate_feed({"input": x, "mask": np.zeros((2, 1), np.float32)}, [DYN, other])


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="TensorRT is installed here")
def test_engine_files_need_tensorrt(tmp_path):
    """load_backend/open_runner dispatch .plan files to TrtRunner; without TensorRT: a clear error."""
    from edgepose.runtime.runners import open_runner

    plan = tmp_path / "pose.fp16.plan"
    plan.write_bytes(b"\0" * 16)
    with pytest.raises(DependencyError, match="tensorrt"):
        open_runner(plan)


def test_trt_runner_module_imports_without_tensorrt():
    import edgepose.jetson.trt_runtime as rt

    assert rt.TrtRunner.__init__ and "infer" in dir(rt.TrtRunner)


@pytest.mark.gpu
def test_trt_runner_end_to_end(tmp_path):
    """Build an FP32 + FP16 engine from a real export and compare with onnxruntime (GPU machines)."""
    pytest.importorskip("tensorrt")
    pytest.importorskip("pycuda.driver")
    import pycuda.driver as cuda

    try:
        cuda.init()
        if cuda.Device.count() == 0:
            pytest.skip("no CUDA device")
    except Exception as exc:
        pytest.skip(f"no CUDA driver: {exc}")
    import onnxruntime as ort
    import torch

    from edgepose.export import export_onnx
    from edgepose.jetson.build import build_engine
    from edgepose.jetson.options import BuildOptions
    from edgepose.models import create_model
    from edgepose.runtime import load_backend

    torch.manual_seed(0)
    m = create_model("mobilenetv3_small", head="6d", input_size=64).eval()
    onnx_path = tmp_path / "pose.onnx"
    export_onnx(m, onnx_path, opset=17, max_batch=8)
    x = np.random.default_rng(0).standard_normal((11, 3, 64, 64)).astype(np.float32)
    ref = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"]).run(["rotation"], {"input": x})[0]
    for precision, tol in (("fp32", 1e-3), ("fp16", 5e-2)):
        res = build_engine(onnx_path, BuildOptions(precision=precision, max_batch=8), cache_dir=tmp_path / "cache",
                           output=tmp_path / f"pose.{precision}.plan")
        again = build_engine(onnx_path, BuildOptions(precision=precision, max_batch=8), cache_dir=tmp_path / "cache")
        assert again.cached and again.engine == res.engine
        with load_backend(res.output) as backend:
            out = backend.infer(x)  # 11 faces -> chunks of 8 + 3
            assert out["R"].shape == (11, 3, 3)
            assert np.abs(out["R"] - ref).max() < tol
            frame = np.random.default_rng(1).integers(0, 256, (240, 320, 3), dtype=np.uint8)
            boxes = [(40, 30, 140, 150), (200, 100, 300, 220)]
            gpu = backend.runner.infer_frame(frame, boxes, backend.meta.preprocess)
            cpu = backend.runner.infer({"input": __import__("edgepose.preprocess", fromlist=["x"]).preprocess_batch(
                frame, boxes, backend.meta.preprocess)})
            assert np.abs(gpu["rotation"] - cpu["rotation"]).max() < max(tol, 2e-2)
            # the per-frame path: PoseBackend.predict crops on the device; 11 faces > profile max 8 =
            # two kernel launches into the input buffer, the second from the 9th face's affine
            assert backend.crops_on_device
            many = [(10 + 25 * (i % 10), 10 + 60 * (i // 10), 70 + 25 * (i % 10), 80 + 60 * (i // 10))
                    for i in range(11)]
            dev = backend.predict(frame, many)
            host = backend.infer(__import__("edgepose.preprocess", fromlist=["x"]).preprocess_batch(
                frame, many, backend.meta.preprocess))
            assert dev["valid"].all() and np.abs(dev["R"] - host["R"]).max() < max(tol, 2e-2)
