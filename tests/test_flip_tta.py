"""Test-time flip (PoseModel.flip_tta): the in-graph mean, the model's mirror symmetry, metadata and export."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from edgepose import geometry
from edgepose.distill.teacher import chordal_mean
from edgepose.geometry_torch import mean_of_two_rotations
from edgepose.metrics import geodesic_errors
from edgepose.models.pose_model import PoseModel


def _random_rotations(n: int, seed: int) -> np.ndarray:
    q = np.random.default_rng(seed).normal(size=(n, 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1)], 1)


@pytest.mark.parametrize("max_deg", [3.0, 60.0, 140.0])
def test_mean_of_two_rotations_is_the_svd_chordal_mean(max_deg):
    rng = np.random.default_rng(int(max_deg))
    A = _random_rotations(500, 1)
    axis = rng.normal(size=(500, 3))
    axis /= np.linalg.norm(axis, axis=1, keepdims=True)
    angle = np.radians(rng.uniform(0, max_deg, 500))
    K = np.zeros((500, 3, 3))
    K[:, 0, 1], K[:, 0, 2], K[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
    K -= K.transpose(0, 2, 1)
    B = A @ (np.eye(3) + np.sin(angle)[:, None, None] * K + (1 - np.cos(angle))[:, None, None] * K @ K)  # Rodrigues
    got = mean_of_two_rotations(torch.from_numpy(A), torch.from_numpy(B)).numpy()
    ref = chordal_mean(torch.stack([torch.from_numpy(A), torch.from_numpy(B)])).numpy()
    assert geodesic_errors(got, ref).max() < 1e-3  # degrees
    assert np.allclose(got @ got.transpose(0, 2, 1), np.eye(3), atol=1e-9)
    assert np.allclose(np.linalg.det(got), 1.0, atol=1e-9)
    # the midpoint: as far from A as from B
    assert np.allclose(geodesic_errors(got, A), geodesic_errors(got, B), atol=1e-3)


def _model(flip_tta: bool) -> PoseModel:
    torch.manual_seed(0)
    return PoseModel.build("mobilenetv3_small_075", input_size=64, flip_tta=flip_tta).eval()


def test_flip_tta_model_is_mirror_symmetric_and_the_plain_one_is_not():
    x = torch.randn(4, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    mirrored = torch.flip(x, dims=[-1])
    with torch.no_grad():
        tta, plain = _model(True), _model(False)
        R, Rm = tta(x)["R"].double().numpy(), tta(mirrored)["R"].double().numpy()
        P, Pm = plain(x)["R"].double().numpy(), plain(mirrored)["R"].double().numpy()
    # a mirrored crop must give the mirrored label exactly (geometry.flip_label), by construction
    # float32 rotations: arccos near 1 turns rounding into up to ~0.01 deg of apparent angle
    assert geodesic_errors(Rm, geometry.flip_label(R)).max() < 0.05
    assert geodesic_errors(Pm, geometry.flip_label(P)).max() > 1.0  # an untrained net is not symmetric
    # and the TTA output is the mean of the plain outputs (same weights)
    ref = chordal_mean(torch.stack([torch.from_numpy(P), torch.from_numpy(geometry.flip_label(Pm))])).numpy()
    assert geodesic_errors(R, ref).max() < 0.05


def test_flip_tta_is_off_in_training_and_kept_in_checkpoints(tmp_path):
    m = _model(True)
    m.train()
    assert m(torch.randn(2, 3, 64, 64))["R"].shape == (2, 3, 3)  # no doubled batch in training
    m.eval()
    path = m.save_checkpoint(tmp_path / "m.pt")
    again = PoseModel.from_checkpoint(path)
    assert again.flip_tta and again.metadata().model_kwargs["flip_tta"] is True
    assert "flip_tta" not in _model(False).metadata().model_kwargs  # older metadata unchanged


def test_export_bakes_flip_tta_into_the_graph(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from edgepose.export import export_onnx

    path = _model(False).save_checkpoint(tmp_path / "m.pt")
    x = np.random.default_rng(1).standard_normal((3, 3, 64, 64)).astype(np.float32)
    outs = {}
    for name, flag in (("tta", True), ("plain", None)):
        rep = export_onnx(path, tmp_path / f"{name}.onnx", flip_tta=flag, command="test")
        assert json.loads(rep.sidecar.read_text())["model_kwargs"].get("flip_tta", False) is bool(flag)
        s = ort.InferenceSession(str(rep.path), providers=["CPUExecutionProvider"])
        outs[name] = (s.run(["rotation"], {"input": x})[0].astype(np.float64),
                      s.run(["rotation"], {"input": x[..., ::-1].copy()})[0].astype(np.float64))
    R, Rm = outs["tta"]
    assert geodesic_errors(Rm, geometry.flip_label(R)).max() < 0.05
    P, Pm = outs["plain"]
    assert geodesic_errors(Pm, geometry.flip_label(P)).max() > 1.0


def test_the_build_exports_and_quantizes_with_flip_tta(tmp_path):
    """``flip_tta: true`` in the build config: all three files carry it, INT8 included, and stay symmetric."""
    pytest.importorskip("onnxruntime.quantization")
    import onnxruntime as ort

    from edgepose.assets.build import export_all
    from edgepose.metadata import load_metadata

    model = _model(False)
    rng = np.random.default_rng(0)
    real = {"images": rng.integers(0, 255, (8, 112, 112, 3), dtype=np.uint8),
            "boxes": np.tile(np.asarray([[24, 24, 88, 88]], np.float32), (8, 1))}
    paths = export_all(model, real, model.preprocess, tmp_path, calib_crops=8, seed=0, flip_tta=True)
    assert not model.flip_tta  # the caller's model is not changed
    x = rng.standard_normal((2, 3, 64, 64)).astype(np.float32)
    for key, path in paths.items():
        assert load_metadata(path).model_kwargs["flip_tta"] is True, key
        s = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        R = s.run(["rotation"], {"input": x})[0].astype(np.float64)
        Rm = s.run(["rotation"], {"input": x[..., ::-1].copy()})[0].astype(np.float64)
        assert geodesic_errors(Rm, geometry.flip_label(R)).max() < 1.0, key  # INT8 rounding, still mirrored


def test_histogram_calibration_skips_the_float_head(tmp_path):
    """The shipped FP32 file ends in the flip average, whose Gram-Schmidt norms are 1 on every crop: ORT's
    histogram of such a tensor fails, so calibration must leave the float head out (its ranges are unused)."""
    pytest.importorskip("onnxruntime.quantization")
    from edgepose.defaults import default_pose_model
    from edgepose.metadata import load_metadata
    from edgepose.quantize.ptq import quantize_onnx

    from edgepose.export import export_onnx

    fp32 = tmp_path / "flip.onnx"  # a file that ends in the flip average (the shipped one did until 2026-12-07)
    torch.manual_seed(0)  # a ReLU trunk: random hard-swish / squeeze-excite layers give constant tensors
    export_onnx(PoseModel.build("mobilenet_v1_050", input_size=64).eval(), fp32, flip_tta=True, simplify=False)
    assert load_metadata(fp32).model_kwargs.get("flip_tta")
    size = load_metadata(fp32).preprocess.input_size
    crops = np.random.default_rng(0).standard_normal((16, 3, size, size)).astype(np.float32)
    for method in ("percentile", "entropy"):
        quantize_onnx(fp32, tmp_path / f"{method}.onnx", crops, profile="tensorrt", method=method, command="test")
        assert json.loads((tmp_path / f"{method}.onnx.json").read_text())["extra"]["quantization"]["method"] == method
