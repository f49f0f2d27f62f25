"""ONNX export: every head type, onnxruntime parity, dynamic batch, in-graph Euler decode, sidecar, errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from edgepose import geometry  # noqa: E402
from edgepose.errors import ModelError, UserError  # noqa: E402
from edgepose.export import export_onnx  # noqa: E402
from edgepose.export.checks import read_embedded_metadata  # noqa: E402
from edgepose.metadata import file_sha256, load_metadata, sidecar_path  # noqa: E402
from edgepose.models import create_model  # noqa: E402

SIZE = 64


def _run(path, x):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input"]
    assert [o.name for o in sess.get_outputs()] == ["rotation", "euler"]
    R, e = sess.run(None, {"input": x.astype(np.float32)})
    return R, e


def _torch(model, x):
    with torch.no_grad():
        return model(torch.from_numpy(x))["R"].numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One small model per head type: 6d from a checkpoint path with the default dynamo exporter
    (opset 18); bins on RepVGG (reparameterized, wrapped yaw -> in-graph circular mean) and 6d+bins
    with the fast legacy exporter (opset 17).  The dynamo path for those two heads is covered by
    the slow test below (dynamo takes 3-30 s per model depending on machine load)."""
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("export")
    out = {}
    m6 = create_model("mobilenetv3_small", head="6d", input_size=SIZE).eval()
    ckpt = m6.save_checkpoint(d / "six.pt")
    out["6d"] = (m6, export_onnx(ckpt, d / "six.onnx", command="pytest 6d"), ckpt)
    mb = create_model("repvgg_a0", head="bins", input_size=SIZE,
                      bins={"yaw": {"lo": -180, "hi": 180, "width": 3, "wrap": True}}).eval()
    out["bins"] = (mb, export_onnx(mb, d / "bins.onnx", max_batch=8, opset=17), None)
    mm = create_model("mobilenetv3_small", head="6d+bins", input_size=SIZE).eval()
    out["6d+bins"] = (mm, export_onnx(mm, d / "mixed.onnx", opset=17), None)
    return out


@pytest.mark.parametrize("head", ["6d", "bins", "6d+bins"])
def test_parity_and_dynamic_batch(exported, head):
    model, report, _ = exported[head]
    rng = np.random.default_rng(1)
    for n in (1, 5):
        x = rng.standard_normal((n, 3, SIZE, SIZE)).astype(np.float32)
        R, e = _run(report.path, x)
        assert R.shape == (n, 3, 3) and e.shape == (n, 3)
        assert np.abs(R - _torch(model, x)).max() < 1e-4
        assert geometry.is_rotation(R.astype(np.float64), atol=1e-4).all()
        # the in-graph Euler decode is the project's decode of R
        d = geometry.angle_diff(e.astype(np.float64), geometry.matrix_to_euler(R.astype(np.float64)))
        assert np.abs(d).max() < 1e-2
    assert report.worst_rotation_diff < 1e-4
    assert report.dynamic_batch and report.input_shape == ("batch", 3, SIZE, SIZE)


def test_graph_properties(exported):
    for head, (_, report, _) in exported.items():
        m = onnx.load(str(report.path))
        opset = max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
        assert opset == report.opset == (18 if head == "6d" else 17)
        assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
        assert not list(report.path.parent.glob(report.path.name + ".data"))
        batch_dim = m.graph.input[0].type.tensor_type.shape.dim[0]
        assert batch_dim.dim_param and not batch_dim.dim_value  # symbolic batch axis
        assert report.simplified
    assert exported["bins"][1].reparameterized and exported["bins"][1].metadata.extra["onnx"]["reparameterized"]


def test_sidecar_and_embedded_metadata(exported):
    model, report, ckpt = exported["6d"]
    side = json.loads(sidecar_path(report.path).read_text())
    assert side["format"] == "onnx" and side["precision"] == "fp32" and side["head"] == "6d"
    assert side["sha256"] == file_sha256(report.path) == report.sha256
    assert side["input_name"] == "input" and set(side["outputs"]) == {"rotation", "euler"}
    prov = side["provenance"]
    assert prov["parent"]["sha256"] == file_sha256(ckpt) and prov["parent"]["format"] == "torch"
    assert prov["command"] == "pytest 6d"
    assert {"torch", "onnx", "onnxruntime"} <= set(prov["versions"])
    onnx_extra = side["extra"]["onnx"]
    assert onnx_extra["opset"] == 18 and onnx_extra["max_batch"] == 32
    assert max(v for k, v in onnx_extra["max_abs_diff"].items() if k.endswith("rotation")) < 1e-4
    assert side["preprocess"] == model.metadata().preprocess.to_dict()
    embedded = read_embedded_metadata(report.path)
    assert embedded is not None and embedded.sha256 is None
    assert embedded.to_dict()["provenance"] == side["provenance"]
    # a renamed ONNX without its sidecar still knows itself
    lone = report.path.parent / "renamed.onnx"
    lone.write_bytes(report.path.read_bytes())
    assert load_metadata(lone).model == "mobilenetv3_small"
    # bins metadata travels along
    bins_side = json.loads(sidecar_path(exported["bins"][1].path).read_text())
    assert bins_side["bins"]["yaw"]["width"] == 3.0 and bins_side["extra"]["onnx"]["max_batch"] == 8


@pytest.mark.slow
@pytest.mark.parametrize("head", ["bins", "6d+bins"])
def test_dynamo_export_of_bin_heads(tmp_path, head):
    m = create_model("mobilenetv3_small", head=head, input_size=SIZE,
                     bins={"yaw": {"lo": -180, "hi": 180, "width": 3, "wrap": True}}).eval()
    rep = export_onnx(m, tmp_path / "m.onnx", max_batch=8)
    x = np.random.default_rng(3).standard_normal((5, 3, SIZE, SIZE)).astype(np.float32)
    R, _ = _run(rep.path, x)
    assert rep.opset == 18 and rep.exporter == "dynamo"
    assert np.abs(R - _torch(m, x)).max() < 1e-4


class _EulerEcho(torch.nn.Module):
    """R = euler_to_matrix(x[:, :, 0, 0]): feeds chosen poses, including singular ones, through export."""

    def forward(self, x):
        from edgepose.geometry_torch import euler_to_matrix

        return {"R": euler_to_matrix(x[:, :, 0, 0])}


def test_in_graph_euler_decode_at_edge_poses(tmp_path):
    from edgepose.export.onnx_export import _export_graph
    from edgepose.export.wrapper import ExportWrapper

    path = tmp_path / "echo.onnx"
    _export_graph(ExportWrapper(_EulerEcho()), torch.zeros(2, 3, 2, 2), path, 18, True, 64)
    poses = np.array([[0, 0, 0], [10, 20, 30], [0, 90, 0], [0, -90, 0], [25, 90, -40], [180, 0, 0],
                      [0, 0, 180], [-180, 0, -180], [0, 89.9, 0], [-99, 45, 99], [45, -135, 10]], np.float64)
    rng = np.random.default_rng(2)
    poses = np.concatenate([poses, rng.uniform([-180, -90, -180], [180, 90, 180], (40, 3))])
    x = np.zeros((len(poses), 3, 2, 2), np.float32)
    x[:, :, 0, 0] = poses
    R, e = _run(path, x)
    # the decoded triple must rebuild the same rotation everywhere, gimbal lock included
    rebuilt = geometry.euler_to_matrix(e.astype(np.float64))
    assert geometry.geodesic_distance(rebuilt, R.astype(np.float64)).max() < 0.05
    # and equal the numpy decode (wrapped) away from the singular yaw = +-90 deg
    regular = np.abs(np.abs(poses[:, 1]) - 90) > 1
    d = geometry.angle_diff(e[regular].astype(np.float64), geometry.matrix_to_euler(R[regular].astype(np.float64)))
    assert np.abs(d).max() < 1e-2
    assert np.isfinite(e).all()


def test_static_batch_and_input_size(tmp_path):
    m = create_model("mobilenetv3_small", head="6d", input_size=SIZE).eval()
    rep = export_onnx(m, tmp_path / "static.onnx", dynamic_batch=False, input_size=96, opset=17, simplify=False)
    assert rep.input_shape == (1, 3, 96, 96) and rep.metadata.preprocess.input_size == 96
    R, _ = _run(rep.path, np.zeros((1, 3, 96, 96), np.float32))
    assert R.shape == (1, 3, 3)


def test_errors_missing_and_corrupt_checkpoint(tmp_path, capsys):
    from edgepose.cli.main import main

    with pytest.raises(ModelError, match="checkpoint not found"):
        export_onnx(tmp_path / "missing.pt", tmp_path / "m.onnx")
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelError, match="corrupt.pt"):
        export_onnx(bad, tmp_path / "m.onnx")
    assert main(["export", str(bad), "-o", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err
    assert main(["export", str(tmp_path / "missing.pt"), "-o", str(tmp_path / "m.onnx")]) == 2
    assert not (tmp_path / "m.onnx").exists()
    m = create_model("mobilenetv3_small", head="6d", input_size=SIZE)
    with pytest.raises(UserError, match=".onnx"):
        export_onnx(m, tmp_path / "m.trt")
    with pytest.raises(UserError, match="opset"):
        export_onnx(m, tmp_path / "m.onnx", opset=13)
    with pytest.raises(ModelError, match="PoseModel"):
        export_onnx(torch.nn.Linear(2, 2), tmp_path / "m.onnx")


def test_failed_parity_writes_nothing(tmp_path):
    m = create_model("mobilenetv3_small", head="6d", input_size=SIZE).eval()
    out = tmp_path / "never.onnx"
    with pytest.raises(ModelError, match="parity"):
        export_onnx(m, out, opset=17, simplify=False, tolerance=-1.0)
    assert not out.exists() and not sidecar_path(out).exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".export-")]


def test_cli_export_with_real_images(tmp_path, aflw_dir, capsys):
    from edgepose.cli.main import main

    m = create_model("mobilenetv3_small", head="bins", input_size=SIZE).eval()
    ckpt = m.save_checkpoint(tmp_path / "m.pt")
    out = tmp_path / "m.onnx"
    assert main(["export", str(ckpt), "-o", str(out), "--opset", "17", "--check-images", str(aflw_dir)]) == 0
    side = json.loads(sidecar_path(out).read_text())
    diffs = side["extra"]["onnx"]["max_abs_diff"]
    assert diffs["real.rotation"] < 1e-4
    assert side["provenance"]["command"].startswith("edgepose export ")
    assert "wrote" in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter announces its retirement
def test_mlp_6d_head_exports_with_parity(tmp_path):
    """CLERF's MLP 6D head (Linear -> BN -> ReLU -> Linear(6)) exports from a checkpoint: the graph
    matches PyTorch and the metadata keeps ``head_hidden`` (legacy exporter: fast)."""
    from edgepose.models import PoseModel

    torch.manual_seed(0)
    m = create_model("mobilenetv3_small", head="6d", input_size=SIZE, head_hidden=[32]).eval()
    bn = m.head.hidden[1]
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    ckpt = m.save_checkpoint(tmp_path / "mlp.pt")
    report = export_onnx(ckpt, tmp_path / "mlp.onnx", opset=17)
    x = np.random.default_rng(2).standard_normal((3, 3, SIZE, SIZE)).astype(np.float32)
    R, _ = _run(report.path, x)
    assert np.abs(R - _torch(PoseModel.from_checkpoint(ckpt), x)).max() < 1e-4
    assert np.abs(R - _torch(m, x)).max() < 1e-4
    assert geometry.is_rotation(R.astype(np.float64), atol=1e-4).all()
    assert load_metadata(report.path).model_kwargs["head_hidden"] == [32]
