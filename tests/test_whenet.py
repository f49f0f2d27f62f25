"""WHENet import: Keras .h5 -> PoseModel.

* mapping tests on a synthetic Keras-layout .h5 written here with h5py (same layer names and
  layouts as the released file; no network);
* accuracy / sign checks with the real WHENet.h5 from the edgepose cache (skipped when absent).
"""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
import torch.nn.functional as F

h5py = pytest.importorskip("h5py")

from edgepose.errors import ModelError, UserError  # noqa: E402
from edgepose.importers import get_importer, list_importers  # noqa: E402
from edgepose.importers.keras_h5 import conv_kernel, depthwise_kernel  # noqa: E402
from edgepose.importers.whenet import WHENET_SHA256, whenet_bins, whenet_cache_path  # noqa: E402
from edgepose.models.backbones.efficientnet import efficientnet_b0, keras_layer_order  # noqa: E402

HEADS = (("yaw_new", 120), ("pitch_new", 66), ("roll_new", 66))


# ---------------------------------------------------------------- Keras layouts, checked independently
def test_conv_kernel_layout_matches_keras_semantics():
    rng = np.random.default_rng(0)
    k = rng.standard_normal((3, 3, 4, 5)).astype(np.float32)  # Keras HWIO
    x = rng.standard_normal((1, 4, 6, 6)).astype(np.float32)
    y = F.conv2d(torch.from_numpy(x), torch.from_numpy(conv_kernel(k))).numpy()
    # Keras: out[o, i0, j0] = sum_{h, w, c} x[c, i0 + h, j0 + w] * k[h, w, c, o]
    ref = np.einsum("chw,hwco->o", x[0, :, 1:4, 2:5], k)
    np.testing.assert_allclose(y[0, :, 1, 2], ref, rtol=1e-5, atol=1e-5)


def test_depthwise_kernel_layout_matches_keras_semantics():
    rng = np.random.default_rng(1)
    k = rng.standard_normal((5, 5, 3, 2)).astype(np.float32)  # (kh, kw, in, multiplier)
    x = rng.standard_normal((1, 3, 7, 7)).astype(np.float32)
    y = F.conv2d(torch.from_numpy(x), torch.from_numpy(depthwise_kernel(k)), groups=3).numpy()
    # Keras: output channel c * mult + m = sum_{h, w} x[c] * k[h, w, c, m]
    for c in range(3):
        for m in range(2):
            ref = (x[0, c, 1:6, 0:5] * k[:, :, c, m]).sum()
            assert y[0, c * 2 + m, 1, 0] == pytest.approx(ref, rel=1e-5, abs=1e-5)


# ---------------------------------------------------------------- synthetic WHENet file
def _write_keras_whenet(path, drop=None, bad_shape=False, seed=0):
    """Write a random EfficientNet-B0 + WHENet heads in the released file's layout and names."""
    rng = np.random.default_rng(seed)
    ref = efficientnet_b0().eval()
    counters = {"conv": 0, "dwconv": 0, "bn": 0}
    prefix = {"conv": "conv2d", "dwconv": "depthwise_conv2d", "bn": "batch_normalization"}
    layers = []
    for kind, mod in keras_layer_order(ref):
        counters[kind] += 1
        name = f"{prefix[kind]}_{counters[kind]}"
        if kind == "bn":
            c = mod.num_features
            w = {"gamma": rng.uniform(0.5, 1.5, c), "beta": rng.normal(0, 0.1, c),
                 "moving_mean": rng.normal(0, 0.1, c), "moving_variance": rng.uniform(0.5, 2, c)}
        elif kind == "dwconv":
            o, _, kh, kw = mod.weight.shape
            w = {"depthwise_kernel": rng.normal(0, 0.1, (kh, kw, o, 1))}
        else:
            o, i, kh, kw = mod.weight.shape
            w = {"kernel": rng.normal(0, 0.1, (kh, kw, i, o))}
            if mod.bias is not None:
                w["bias"] = rng.normal(0, 0.1, o)
        layers.append((name, w))
    for name, n in HEADS:
        layers.append((name, {"kernel": rng.normal(0, 0.05, (1280, n)), "bias": rng.normal(0, 0.05, n)}))
    if drop is not None:
        layers = [entry for entry in layers if entry[0] != drop]
    if bad_shape:
        name, w = layers[0]
        layers[0] = (name, {"kernel": np.zeros((3, 3, 3, 16))})
    # interleave weightless layers as Keras does (input, swish, lambda, ...)
    order = ["input_1"] + [n for n, _ in layers] + ["global_average_pooling2d_1"]
    with h5py.File(path, "w") as fh:
        fh.attrs["layer_names"] = np.array([n.encode() for n in order])
        fh.attrs["backend"], fh.attrs["keras_version"] = b"tensorflow", b"2.1.6"
        for n in ("input_1", "global_average_pooling2d_1"):
            fh.create_group(n).attrs["weight_names"] = np.array([], dtype="S1")
        for n, w in layers:
            g = fh.create_group(n)
            sub = g.create_group(n)
            names = []
            for key, value in w.items():
                sub.create_dataset(f"{key}:0", data=np.asarray(value, np.float32))
                names.append(f"{n}/{key}:0".encode())
            g.attrs["weight_names"] = np.array(names)
    return dict(layers)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    path = tmp_path_factory.mktemp("whenet") / "synthetic_WHENet.h5"
    return path, _write_keras_whenet(path)


def test_synthetic_file_maps_every_tensor(synthetic):
    path, weights = synthetic
    model = get_importer("whenet").load(path)
    bb = model.backbone
    assert torch.equal(bb.conv_stem.weight, torch.from_numpy(conv_kernel(weights["conv2d_1"]["kernel"].astype(np.float32))))
    bn = weights["batch_normalization_49"]  # the last BN (after the 1x1 head conv)
    np.testing.assert_allclose(bb.bn2.running_var.numpy(), bn["moving_variance"], rtol=1e-6)
    np.testing.assert_allclose(bb.bn2.bias.detach().numpy(), bn["beta"], rtol=1e-6)
    dw = weights["depthwise_conv2d_16"]["depthwise_kernel"].astype(np.float32)
    np.testing.assert_allclose(bb.blocks[-1][-1].conv_dw.weight.detach().numpy(), depthwise_kernel(dw))
    se = weights["conv2d_2"]  # first SE reduce conv, with bias
    np.testing.assert_allclose(bb.blocks[0][0].se.conv_reduce.bias.detach().numpy(), se["bias"], rtol=1e-6)
    for (name, n), axis in zip(HEADS, ("yaw", "pitch", "roll")):
        fc = model.head.fc[axis]
        assert fc.weight.shape == (n, 1280)
        np.testing.assert_allclose(fc.weight.detach().numpy(), weights[name]["kernel"].T.astype(np.float32))
    meta = model.metadata()
    assert meta.model == "efficientnet_b0" and meta.head == "bins"
    assert meta.preprocess.color_order == "RGB" and meta.preprocess.input_size == 224
    assert meta.bins["yaw"].num_bins == 120 and meta.bins["pitch"].num_bins == 66
    assert meta.provenance["imported_from"]["official_release"] is False


def test_decode_reproduces_whenet_get_angle(synthetic):
    """bin_euler == WHENet's sum(softmax * idx) * 3 - 180 (yaw) / - 99 (pitch, roll)."""
    path, _ = synthetic
    model = get_importer("whenet").load(path)
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
    for i, axis in enumerate(("pitch", "yaw", "roll")):
        p = torch.softmax(out["logits"][axis].double(), -1).numpy()
        ref = (p * np.arange(p.shape[1])).sum(1) * 3 - (180 if axis == "yaw" else 99)
        np.testing.assert_allclose(out["bin_euler"][:, i].numpy(), ref, atol=1e-3)


def test_whenet_bins_centres_are_whenet_values():
    b = whenet_bins()
    assert b["yaw"].centers()[0] == -180 and b["yaw"].centers()[-1] == 177 and not b["yaw"].wrap
    assert b["pitch"].centers()[0] == -99 and b["pitch"].centers()[-1] == 96
    assert whenet_bins("circular")["yaw"].wrap
    with pytest.raises(UserError):
        whenet_bins("linear")


def test_errors_are_clear(tmp_path):
    imp = get_importer("whenet")
    with pytest.raises(ModelError, match="not found.*--from-pypi"):
        imp.load(tmp_path / "missing.h5")
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not an hdf5 file" * 10)
    with pytest.raises(ModelError, match="not a readable HDF5"):
        imp.load(junk)
    short = tmp_path / "short.h5"
    _write_keras_whenet(short, drop="batch_normalization_7")
    with pytest.raises(ModelError, match="weighted trunk layers"):
        imp.load(short)
    bad = tmp_path / "bad.h5"
    _write_keras_whenet(bad, bad_shape=True)
    with pytest.raises(ModelError, match="shape mismatch"):
        imp.load(bad)
    with pytest.raises(ModelError, match="unknown teacher"):
        get_importer("nosuchnet")
    assert "whenet" in list_importers()


def test_cli_import_errors(tmp_path, capsys):
    from edgepose.cli.main import main

    assert main(["import", "whenet", str(tmp_path / "nope.h5"), "-o", str(tmp_path / "t.pt")]) == 2
    assert "weight file not found" in capsys.readouterr().err
    assert main(["import", "whenet", "-o", str(tmp_path / "t.pt")]) == 2
    assert "--from-pypi" in capsys.readouterr().err
    assert not (tmp_path / "t.pt").exists()


def test_cli_import_synthetic_roundtrip(synthetic, tmp_path):
    from edgepose.cli.main import main
    from edgepose.models.pose_model import PoseModel

    path, _ = synthetic
    out = tmp_path / "teacher.pt"
    assert main(["import", "whenet", str(path), "-o", str(out)]) == 0
    model = PoseModel.from_checkpoint(out)
    assert model.metadata().bins == whenet_bins()
    assert "edgepose import whenet" in model.provenance["command"]


# ---------------------------------------------------------------- the real WHENet.h5
@pytest.fixture(scope="module")
def whenet_model():
    path = whenet_cache_path()
    if not path.is_file():
        pytest.skip(f"WHENet.h5 not in the edgepose cache ({path}); fetch it once with "
                    f"`edgepose import whenet --from-pypi -o whenet.pt`")
    return get_importer("whenet").load(path)


def test_real_whenet_is_the_release(whenet_model):
    imp = whenet_model.provenance["imported_from"]
    assert imp["sha256"] == WHENET_SHA256 and imp["official_release"]
    assert sum(p.numel() for p in whenet_model.parameters()) == 4_330_360  # B0 trunk + 1280 x (120+66+66) heads


def test_real_whenet_accuracy_on_aflw_fixtures(whenet_model, aflw_dir):
    """WHENet reports 5.42 deg MAE on AFLW2000; on the 6 fixtures it must be WHENet-like (< 10 deg)."""
    from edgepose import geometry
    from edgepose.data.mat import AFLW2000Reader
    from edgepose.metrics import pose_metrics
    from edgepose.preprocess import preprocess

    reader = AFLW2000Reader(aflw_dir, crop="landmarks")
    samples = [reader.get(i) for i in range(len(reader))]
    x = np.stack([preprocess(s.image, s.box, whenet_model.preprocess) for s in samples])
    with torch.no_grad():
        R = whenet_model(torch.from_numpy(x))["R"].double().numpy()
    G = np.stack([s.R for s in samples])
    m = pose_metrics(R, G, aligned=False)
    assert m["n"] == 6
    assert m["mae"] < 10.0, m
    assert max(m["mae_pitch"], m["mae_yaw"], m["mae_roll"]) < 15.0, m
    assert m["ge"] < 15.0, m
    # the yaw sign follows the label convention on every turned face (|yaw| > 20)
    e, eg = geometry.matrix_to_euler(R), geometry.matrix_to_euler(G)
    turned = np.abs(eg[:, 1]) > 20
    assert turned.sum() >= 3 and (np.sign(e[turned, 1]) == np.sign(eg[turned, 1])).all()


def test_real_whenet_signs_on_faces_aws(whenet_model, data_file):
    """Medium/large by-eye direction tags (not ground truth: signs only) agree with WHENet."""
    from edgepose.preprocess import preprocess_batch
    from edgepose.runtime.detectors import create_detector

    root = data_file("faces-aws")
    yunet = data_file("detectors/yunet/yunet_s_640_640.onnx")
    with open(root / "coarse_direction_tags.csv") as fh:
        rows = list(csv.DictReader(line for line in fh if not line.startswith("#")))
    det = create_detector("yunet", model_path=yunet)
    import cv2

    checked = 0
    for r in rows:
        img = cv2.imread(str(root / r["file"]))
        faces = det.detect(img)
        assert faces, r["file"]
        x = preprocess_batch(img, [faces[0].box], whenet_model.preprocess)
        with torch.no_grad():
            pitch, yaw, _ = whenet_model(torch.from_numpy(x))["bin_euler"][0].tolist()
        for value, sign, mag in ((yaw, r["yaw_sign"], r["yaw_mag"]), (pitch, r["pitch_sign"], r["pitch_mag"])):
            if mag in ("medium", "large"):
                assert np.sign(value) == int(sign), (r["file"], yaw, pitch, r)
                checked += 1
    assert checked >= 15


@pytest.mark.parametrize("opset", [17, pytest.param(18, marks=pytest.mark.slow)])
def test_real_whenet_exports_to_onnx(whenet_model, aflw_dir, tmp_path, opset):
    """The imported teacher exports (TF padding, SE, bins decode in-graph) and the runtime reads it."""
    from edgepose import geometry
    from edgepose.data.mat import AFLW2000Reader
    from edgepose.export import export_onnx
    from edgepose.runtime import load_backend

    rep = export_onnx(whenet_model, tmp_path / "whenet.onnx", opset=opset, max_batch=4)
    assert rep.worst_rotation_diff < 1e-4
    reader = AFLW2000Reader(aflw_dir, crop="landmarks")
    with load_backend(rep.path) as backend:
        assert backend.meta.bins["yaw"].num_bins == 120
        for i in range(len(reader)):
            s = reader.get(i)
            R = backend.predict(s.image, [s.box])["R"][0].astype(np.float64)
            assert geometry.geodesic_distance(R, s.R) < 25.0, s.source
