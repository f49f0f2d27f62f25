"""3DDFA_V2 and FSA-Net importers, the MobileNetV1 backbone, the ONNX-graph converter and the teacher specs.

Data-free tests check the pieces against independent references (SVD polar factor, onnxruntime on
a graph written here); the ``teachers/`` files and the AFLW2000 fixtures (YuNet boxes, the
deployment crop) check the real imports, their conventions and their ONNX exports, and skip when
the shared data is absent.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from edgepose import geometry
from edgepose.errors import ModelError
from edgepose.geometry_torch import nearest_rotation
from edgepose.importers import get_importer, list_importers
from edgepose.models.pose_model import PoseModel

TDDFA = "teachers/3ddfa_v2/mb05_120x120.pth"
FSANET = "teachers/fsanet-onnx"


# ---------------------------------------------------------------- data-free
def test_nearest_rotation_is_the_svd_polar_factor():
    rng = np.random.default_rng(0)
    R = geometry.random_rotations(64, rng)
    noise = rng.normal(0, 0.05, R.shape)
    M = (R + noise) * rng.uniform(1e-4, 1e3, (64, 1, 1))  # any scale: 3DDFA's is ~6e-4
    U, _, Vt = np.linalg.svd(M)
    ref = U @ Vt
    ours = nearest_rotation(torch.from_numpy(M)).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-6)
    assert geometry.is_rotation(ours).all()


def test_mobilenet_v1_widths_any_input_size():
    from edgepose.models.registry import create_backbone

    half, full = create_backbone("mobilenet_v1_050"), create_backbone("mobilenet_v1", widen_factor=1.0)
    assert half.num_features == 512 and full.num_features == 1024
    assert sum(p.numel() for p in half.parameters()) < sum(p.numel() for p in full.parameters()) / 3
    half.eval()
    for size in (64, 97, 120):
        assert half.forward_features(torch.randn(2, 3, size, size)).shape == (2, 512)


def test_3dmm_head_reads_the_camera_matrix_in_our_convention():
    """A camera whose left 3x3 is s * R_cam gives R = R_cam^T (3DDFA's camera-frame matrix is R.T)."""
    from edgepose.models.heads import TDDFAHead

    head = TDDFAHead(8).eval()
    R_ours = geometry.euler_to_matrix(np.array([[20.0, -35.0, 10.0]]))[0]
    camera = np.concatenate([6e-4 * R_ours.T, [[60.0], [60.0], [0.0]]], 1)  # 3x4, translation ignored
    mean = np.concatenate([camera.reshape(-1), np.zeros(50)]).astype(np.float32)
    with torch.no_grad():
        head.fc.weight.zero_()
        head.fc.bias.zero_()
        head.param_mean.copy_(torch.from_numpy(mean))
        out = head(torch.zeros(1, 8))
    assert geometry.geodesic_distance(out["R"][0].double().numpy(), R_ours) < 1e-3
    np.testing.assert_allclose(geometry.matrix_to_euler(out["R"][0].double().numpy()), [20.0, -35.0, 10.0], atol=1e-3)


def _tiny_onnx(path, extra_op: str | None = None):
    """A small graph with the FSA-Net op families: conv/BN/pool, shape arithmetic, gemm, reductions."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(1)

    def init(name, arr):
        return numpy_helper.from_array(np.asarray(arr), name)

    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=1),
        helper.make_node("BatchNormalization", ["c", "g", "beta", "m", "v"], ["bn"], epsilon=1e-5),
        helper.make_node("Tanh", ["bn"], ["t"]),
        helper.make_node("MaxPool", ["t"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("ReduceMean", ["p"], ["rm"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["p", "rm"], ["d"]),
        helper.make_node("Shape", ["d"], ["s"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("k", TensorProto.INT64, [], [0])),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n"], ["n1"], axes=[0]),
        helper.make_node("Concat", ["n1", "minus1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["d", "shape"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["g1"], transB=1),
        helper.make_node("Slice", ["g1"], ["sl"], axes=[1], starts=[0], ends=[3]),
        helper.make_node("Sigmoid", ["sl"], ["y"]),
    ]
    if extra_op:
        nodes.append(helper.make_node(extra_op, ["y"], ["y2"]))
    inits = [init("w", rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32)), init("b", np.zeros(4, np.float32)),
             init("g", rng.uniform(0.5, 1.5, 4).astype(np.float32)), init("beta", rng.normal(0, .1, 4).astype(np.float32)),
             init("m", rng.normal(0, .1, 4).astype(np.float32)), init("v", rng.uniform(.5, 2, 4).astype(np.float32)),
             init("minus1", np.array([-1], np.int64)),
             init("fw", rng.normal(0, 0.1, (5, 64)).astype(np.float32)), init("fb", np.zeros(5, np.float32))]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y2" if extra_op else "y", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    model.ir_version = 7
    onnx.save(model, str(path))
    return path


def test_onnx_graph_converter_matches_onnxruntime(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from edgepose.importers.fsanet import onnx_to_graph
    from edgepose.models.backbones.onnx_graph import OnnxGraph

    path = _tiny_onnx(tmp_path / "tiny.onnx")
    graph, tensors = onnx_to_graph(path)
    net = OnnxGraph(graph).eval()
    with torch.no_grad():
        for name, arr in tensors.items():
            getattr(net, net._slots[name]).copy_(torch.from_numpy(np.array(arr)))
    x = np.random.default_rng(2).normal(0, 1, (3, 3, 8, 8)).astype(np.float32)
    ref = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    with torch.no_grad():
        ours = net(torch.from_numpy(x)).numpy()
    assert ours.shape == (3, 3)  # the batch dimension followed the input (Shape -> Reshape)
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # the graph description survives JSON (it travels in the checkpoint metadata)
    import json

    assert OnnxGraph(json.loads(json.dumps(graph))).graph == json.loads(json.dumps(graph))


def test_onnx_graph_converter_refuses_unknown_ops(tmp_path):
    from edgepose.importers.fsanet import onnx_to_graph

    with pytest.raises(ModelError, match="Softmax.*not supported"):
        onnx_to_graph(_tiny_onnx(tmp_path / "soft.onnx", extra_op="Softmax"))


def test_importer_errors_are_clear(tmp_path):
    assert {"3ddfa-v2", "fsanet"} <= set(list_importers())
    with pytest.raises(ModelError, match="weight file not found"):
        get_importer("3ddfa-v2").load(tmp_path / "mb05_120x120.pth")
    with pytest.raises(ModelError, match="no .onnx file"):
        get_importer("fsanet").load(tmp_path)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not onnx at all")
    with pytest.raises(ModelError, match="not a readable ONNX"):
        get_importer("fsanet").load(junk)


def test_teacher_spec_names_without_cache(tmp_path, monkeypatch):
    from edgepose.distill.teacher import load_teacher

    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    with pytest.raises(ModelError, match=r"3ddfa-v2 weights not found.*edgepose import 3ddfa-v2 PATH"):
        load_teacher("3ddfa-v2")
    with pytest.raises(ModelError, match=r"fsanet weights not found.*fsanet:/path"):
        load_teacher(["fsanet"])
    with pytest.raises(ModelError, match="teacher checkpoint not found.*3ddfa-v2"):
        load_teacher("nosuch:thing.pt")


# ---------------------------------------------------------------- the real files
@pytest.fixture(scope="module")
def tddfa(data_file):
    return get_importer("3ddfa-v2").load(data_file(TDDFA))


@pytest.fixture(scope="module")
def fsanet(data_file):
    return get_importer("fsanet").load(data_file(FSANET))


@pytest.fixture(scope="module")
def yunet_faces(data_root, data_file):
    """AFLW2000 fixture faces with the deployment detector's boxes (how edgepose.assets.evaluate crops)."""
    from edgepose.assets.evaluate import aflw_faces

    data_file("aflw2000-sample")
    items, G = aflw_faces(data_root, data_file("detectors/yunet/yunet_s_640_640.onnx"))
    assert len(items) == 6
    return items, G


def _predict(model, items):
    from edgepose.preprocess import preprocess

    x = torch.from_numpy(np.stack([preprocess(im, box, model.preprocess) for im, box in items]))
    with torch.no_grad():
        return model(x)["R"].double().numpy()


def _check_fixture_family(R, G, bound):
    """Signs of every clearly non-zero angle follow the label; mean Euler MAE and each geodesic are bounded."""
    from edgepose.metrics import euler_abs_errors, geodesic_errors

    e, eg = geometry.matrix_to_euler(R), geometry.matrix_to_euler(G)
    for axis, threshold in ((1, 20.0), (0, 20.0), (2, 8.0)):  # yaw, pitch, roll (deg)
        clear = np.abs(eg[:, axis]) > threshold
        assert clear.sum() >= 2, axis
        assert (np.sign(e[clear, axis]) == np.sign(eg[clear, axis])).all(), (axis, e[clear], eg[clear])
    mae = euler_abs_errors(R, G).mean()
    assert mae < bound, mae
    assert (geodesic_errors(R, G) < 2.5 * bound).all(), geodesic_errors(R, G)


def test_mobilenet_v1_050_keys_match_the_3ddfa_checkpoint(data_file, tddfa):
    from edgepose.importers.torch_state import read_state_dict
    from edgepose.models.registry import create_backbone
    from edgepose.models.transfer import copy_matching_weights

    sd = read_state_dict(data_file(TDDFA))
    trunk = {k for k in sd if not k.startswith(("fc_param.", "fc_lm.", "fc."))}
    assert set(create_backbone("mobilenet_v1_050").state_dict()) == trunk
    # `pretrained=` reads the upstream file directly, and a student initialises from the teacher's trunk
    direct = create_backbone("mobilenet_v1_050", pretrained=str(data_file(TDDFA)))
    assert torch.equal(direct.dw6.conv_sep.weight, tddfa.backbone.dw6.conv_sep.weight)
    student = PoseModel.build("mobilenet_v1_050", head="6d", input_size=96)
    copied = copy_matching_weights(student.backbone, tddfa.backbone, "3DDFA_V2")
    assert len(copied) == len(student.backbone.state_dict())


def test_tddfa_signs_and_accuracy_on_fixtures(tddfa, yunet_faces):
    """3DDFA_V2 reports ~3.6-4 deg MAE on AFLW2000: a loose 8 deg bound on the six fixtures."""
    items, G = yunet_faces
    meta = tddfa.metadata()
    assert meta.head == "3dmm" and meta.preprocess.color_order == "BGR" and meta.preprocess.input_size == 120
    _check_fixture_family(_predict(tddfa, items), G, bound=8.0)


def test_fsanet_signs_and_accuracy_on_fixtures(fsanet, yunet_faces):
    """FSA-Net reports ~5 deg MAE on AFLW2000: a loose 9 deg bound on the six fixtures."""
    items, G = yunet_faces
    assert len(fsanet.backbone.nets) == 2
    _check_fixture_family(_predict(fsanet, items), G, bound=9.0)


def test_teacher_specs_with_paths_and_batches(data_file, fsanet):
    """NAME:PATH specs (3ddfa-v2:FILE, fsanet:FILE = one net), each member with its own preprocessing; the
    converted FSA-Net graphs take any batch size (the ONNX files are batch 1)."""
    from edgepose.distill.teacher import load_teacher

    t = load_teacher([f"3ddfa-v2:{data_file(TDDFA)}", f"fsanet:{data_file(FSANET)}/fsanet-var-iter-688590.onnx"])
    assert [s.input_size for s in t.specs] == [120, 64] and [s.color_order for s in t.specs] == ["BGR", "BGR"]
    assert len(t.members[1].backbone.nets) == 1
    out = t([torch.zeros(2, 3, s.input_size, s.input_size) for s in t.specs])
    assert out["R"].shape == (2, 3, 3) and "features" not in out  # feature widths differ: no feature term
    x = torch.from_numpy(np.random.default_rng(0).uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32))
    with torch.no_grad():
        both = fsanet(x)["R"]
        per = torch.cat([fsanet(x[i:i + 1])["R"] for i in range(3)])
    torch.testing.assert_close(both, per, atol=1e-5, rtol=0)


@pytest.mark.slow
def test_cli_cache_then_teacher_names(data_file, tmp_path, monkeypatch, capsys):
    """`edgepose import NAME PATH` without -o fills the cache, where `teacher: [3ddfa-v2, fsanet]` finds it;
    fsanet takes several files with -o."""
    from edgepose.cli.main import main
    from edgepose.distill.teacher import load_teacher

    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    assert main(["import", "3ddfa-v2", str(data_file(TDDFA))]) == 0
    assert main(["import", "fsanet", str(data_file(FSANET))]) == 0
    assert "weights cached at" in capsys.readouterr().out
    t = load_teacher(["3ddfa-v2", "fsanet"])
    assert [m.head_kind for m in t.members] == ["3dmm", "euler"]
    out_pt = tmp_path / "fsa.pt"
    assert main(["import", "fsanet", *(str(p) for p in sorted(data_file(FSANET).glob("*.onnx"))), "-o", str(out_pt)]) == 0
    again = PoseModel.from_checkpoint(out_pt)
    assert len(again.backbone.nets) == 2 and "edgepose import fsanet" in again.provenance["command"]


@pytest.mark.parametrize("which", ["3ddfa-v2", pytest.param("fsanet", marks=pytest.mark.slow)])
def test_imported_teacher_exports_to_onnx(which, tddfa, fsanet, yunet_faces, tmp_path):
    """The imported models export (polar factor / converted graph in-graph) and the runtime reads them."""
    from edgepose.export import export_onnx
    from edgepose.runtime import load_backend

    model = {"3ddfa-v2": tddfa, "fsanet": fsanet}[which]
    rep = export_onnx(model, tmp_path / "t.onnx", opset=17, max_batch=4)
    assert rep.worst_rotation_diff < 1e-4
    items, _ = yunet_faces
    R_torch = _predict(model, items)
    with load_backend(rep.path) as backend:
        assert backend.spec.to_dict() == model.preprocess.to_dict()
        for (im, box), R in zip(items, R_torch):
            R_onnx = backend.predict(im, [box])["R"][0].astype(np.float64)
            assert geometry.geodesic_distance(R_onnx, R) < 0.05


@pytest.mark.slow
def test_build_labels_real_faces_with_the_three_teacher_ensemble(data_file, tmp_path):
    """The default-model build's `teacher: [whenet, 3ddfa-v2, fsanet]` (WHENet when it is cached): every
    member crops the detector box by its own preprocessing (224 RGB / 120 BGR / 64 BGR) and the
    ensemble labels each face with a rotation near every member's own reading."""
    import shutil

    from edgepose.assets.build_config import BuildConfig
    from edgepose.assets.build_data import real_faces
    from edgepose.distill.teacher import load_teacher
    from edgepose.importers.whenet import whenet_cache_path
    from edgepose.preprocess import PreprocessSpec, preprocess

    (tmp_path / "media").mkdir()
    shutil.copy(data_file("faces-aws/IMG_1232.JPG"), tmp_path / "media" / "a.jpg")
    cfg = BuildConfig()
    cfg.data.real = ["media"]
    cfg.data.detector_model = str(data_file("detectors/yunet/yunet_s_640_640.onnx"))
    cfg.teacher = (["whenet"] if whenet_cache_path().is_file() else []) + \
        [f"3ddfa-v2:{data_file(TDDFA)}", f"fsanet:{data_file(FSANET)}"]
    teacher = load_teacher(cfg.teacher)
    data = real_faces(cfg, tmp_path, teacher, PreprocessSpec(input_size=64), tmp_path / "out")
    R = data["R"].astype(np.float64)
    assert len(R) >= 1 and geometry.is_rotation(R, atol=1e-4).all()
    assert list(data["teachers"]) == cfg.teacher
    # the ensemble label is within a few degrees of each member on the same face (flip TTA aside)
    import cv2

    from edgepose.data.faces import DetectorSettings, detect_faces

    st = DetectorSettings(name="yunet", model_path=cfg.data.detector_model, min_face=cfg.data.min_face,
                          max_faces=cfg.data.max_faces)
    boxes, _ = detect_faces([tmp_path / "media" / "a.jpg"], st, cache_dir=tmp_path / "out" / "faces")
    frame = cv2.imread(str(tmp_path / "media" / "a.jpg"))
    for member in teacher.members:
        x = torch.from_numpy(preprocess(frame, boxes[0].box[:4], member.preprocess)[None])
        with torch.no_grad():
            Rm = member(x)["R"][0].double().numpy()
        assert geometry.geodesic_distance(R, Rm).min() < 20.0, member.name


def test_cli_without_output_names_the_fix(tmp_path, capsys, monkeypatch):
    from edgepose.cli.main import main

    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    assert main(["import", "sixdrepnet", str(tmp_path / "x.pth")]) == 2  # no cache for this importer
    assert "write a checkpoint with -o" in capsys.readouterr().err
    assert main(["import", "3ddfa-v2", str(tmp_path / "a.pth"), str(tmp_path / "b.pth")]) == 2
    assert "takes one weight file" in capsys.readouterr().err
    assert main(["import", "whenet", str(tmp_path / "missing.h5")]) == 2  # cached like the others, once it exists
    assert "weight file not found" in capsys.readouterr().err
    assert not (tmp_path / "cache").exists()


def test_shortened_trunk_loads_the_full_checkpoint_and_costs_less(data_file, tddfa):
    """mobilenet_v1_050_d12 (the v12 candidate, without dw6) reads the upstream file, ignoring the dropped block,
    and takes every one of its tensors from the teacher; dropping dw6 cuts the MACs at 96 px by 2.4 M."""
    from edgepose.models.registry import create_backbone
    from edgepose.models.summary import model_summary
    from edgepose.models.transfer import copy_matching_weights

    short = create_backbone("mobilenet_v1_050_d12", pretrained=str(data_file(TDDFA)))
    assert not hasattr(short, "dw6") and short.num_features == 512
    assert torch.equal(short.dw5_6.conv_sep.weight, tddfa.backbone.dw5_6.conv_sep.weight)
    student = PoseModel.build("mobilenet_v1_050_d12", head="6d", input_size=96)
    assert len(copy_matching_weights(student.backbone, tddfa.backbone, "3DDFA_V2")) == len(student.backbone.state_dict())
    full, cut = (model_summary(n, input_size=96)["macs"] for n in ("mobilenet_v1_050", "mobilenet_v1_050_d12"))
    assert 2.2e6 < full - cut < 2.6e6, (full, cut)


def test_middle_skipped_trunk_loads_the_full_checkpoint_and_costs_less(data_file, tddfa):
    """mobilenet_v1_050_m3 (dw5_4, dw5_5 left out) takes every kept tensor from the upstream file, feeds dw5_3's
    output to dw5_6, and saves the two blocks' MACs at 96 px (2 x 6 x 6 x (256 x 256 + 256 x 9) = 4.9 M)."""
    from edgepose.models.backbones.mobilenet_v1 import MobileNetV1
    from edgepose.models.registry import create_backbone
    from edgepose.models.summary import model_summary
    from edgepose.models.transfer import copy_matching_weights

    mid = create_backbone("mobilenet_v1_050_m3", pretrained=str(data_file(TDDFA)))
    assert not hasattr(mid, "dw5_4") and not hasattr(mid, "dw5_5") and mid.num_features == 512
    assert torch.equal(mid.dw6.conv_sep.weight, tddfa.backbone.dw6.conv_sep.weight)
    names = [name for name, *_ in mid.blocks]
    assert names[names.index("dw5_3") + 1] == "dw5_6"
    student = PoseModel.build("mobilenet_v1_050_m3", head="6d", input_size=96)
    assert len(copy_matching_weights(student.backbone, tddfa.backbone, "3DDFA_V2")) == len(student.backbone.state_dict())
    full, cut = (model_summary(n, input_size=96)["macs"] for n in ("mobilenet_v1_050", "mobilenet_v1_050_m3"))
    assert 4.7e6 < full - cut < 5.1e6, (full, cut)
    with pytest.raises(ValueError, match="only stride-1 blocks"):
        MobileNetV1(0.5, skip=("dw5_6",))  # 256 -> 512, stride 2: leaving it out would break the shapes
