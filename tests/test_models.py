"""PoseModel: forward contract over the whole zoo, heads and bin decoding, metadata, checkpoints, ONNX."""
from __future__ import annotations


import numpy as np
import pytest
import torch

from edgepose.errors import ModelError
from edgepose.metadata import ArtifactMetadata, BinSpec, load_metadata
from edgepose.models import PoseModel, RotationOutput, create_model, list_models
from edgepose.models.heads import bin_centers, bin_index, decode_bins, resolve_bins

HEADS = ["6d", "bins", "6d+bins"]
SIZE = 64
WRAP_YAW = {"yaw": BinSpec(-180.0, 180.0, 4.0, True)}


def _is_rotation(R: torch.Tensor, atol: float = 1e-4) -> bool:
    eye = torch.eye(3, dtype=R.dtype).expand_as(R)
    return bool(torch.allclose(R @ R.transpose(-1, -2), eye, atol=atol)
                and torch.allclose(torch.linalg.det(R), torch.ones(R.shape[0], dtype=R.dtype), atol=atol))


@pytest.fixture(scope="module")
def batch():
    return torch.randn(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("name", list_models())
def test_forward_contract_all_heads(name, batch):
    for head in HEADS:
        m = create_model(name, head=head, input_size=SIZE, bins=WRAP_YAW).eval()
        with torch.no_grad():
            out = m(batch)
        assert out["R"].shape == (2, 3, 3) and _is_rotation(out["R"]), (name, head)
        assert out["features"].shape == (2, m.num_features)
        assert ("sixd" in out) == ("6d" in head)
        if "6d" in head:
            assert out["sixd"].shape == (2, 6)
        if "bins" in head:
            assert set(out["logits"]) == {"pitch", "yaw", "roll"}
            assert out["logits"]["yaw"].shape == (2, 90) and out["logits"]["pitch"].shape == (2, 66)
            assert out["bin_euler"].shape == (2, 3)
        else:
            assert "logits" not in out
        # forward == forward_head(forward_features)
        with torch.no_grad():
            again = m.forward_head(m.forward_features(batch))
        assert torch.allclose(again["R"], out["R"])


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_round_trip(name, batch, tmp_path):
    m = create_model(name, head="6d+bins", input_size=SIZE, bins=WRAP_YAW, dropout=0.1).eval()
    m.provenance["datasets"] = ["300W-LP"]
    path = m.save_checkpoint(tmp_path / f"{name}.pt", epoch=7, optimizer={"lr": 1e-4})
    m2 = PoseModel.from_checkpoint(path)
    assert not m2.training
    with torch.no_grad():
        a, b = m(batch), m2(batch)
    assert torch.equal(a["R"], b["R"]) and torch.equal(a["logits"]["yaw"], b["logits"]["yaw"])
    meta = load_metadata(path)
    assert meta.model == name and meta.head == "6d+bins" and meta.preprocess.input_size == SIZE
    assert meta.bins["yaw"].wrap and meta.model_kwargs["dropout"] == 0.1
    assert meta.provenance["datasets"] == ["300W-LP"]
    ckpt = torch.load(path, weights_only=True)
    assert ckpt["epoch"] == 7 and set(ckpt) >= {"model", "edgepose_metadata", "optimizer"}
    assert not list(tmp_path.glob(".*.tmp"))  # atomic write left no temporary file


def test_reparameterized_checkpoint_round_trip(batch, tmp_path):
    m = create_model("repvgg_a0", head="6d", input_size=SIZE).eval().reparameterize()
    path = m.save_checkpoint(tmp_path / "a0_deploy.pt")
    m2 = PoseModel.from_checkpoint(path)
    assert m2.is_deploy and m2.metadata().model_kwargs["reparameterized"] is True
    with torch.no_grad():
        assert torch.equal(m(batch)["R"], m2(batch)["R"])


def test_metadata_describes_preprocessing():
    m = create_model("mobilenetv3_small", head="bins", input_size=112)
    meta = m.metadata()
    assert isinstance(meta, ArtifactMetadata)
    assert meta.preprocess.input_size == 112 and meta.preprocess.color_order == "RGB"
    assert meta.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))
    assert set(meta.bins) == {"pitch", "yaw", "roll"} and meta.bins["pitch"].num_bins == 66
    assert "rotation" in meta.outputs  # every artifact serves R; bins are a torch-side extra
    assert ArtifactMetadata.from_dict(meta.to_dict()).bins == meta.bins  # JSON-safe
    assert create_model("resnet18").metadata().bins == {}


def test_checkpoint_errors(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        PoseModel.from_checkpoint(tmp_path / "missing.pt")
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, foreign)
    with pytest.raises(ModelError, match="not an edgepose checkpoint"):
        PoseModel.from_checkpoint(foreign)
    m = create_model("mobilenetv3_small", input_size=SIZE)
    path = m.save_checkpoint(tmp_path / "ok.pt")
    ckpt = torch.load(path, weights_only=True)
    ckpt["edgepose_metadata"]["head"] = "6d+bins"  # metadata now disagrees with the weights
    torch.save(ckpt, path)
    with pytest.raises(ModelError, match="do not match"):
        PoseModel.from_checkpoint(path)
    with pytest.raises(ValueError, match="reserved"):
        m.save_checkpoint(tmp_path / "x.pt", model={})


def test_build_errors():
    with pytest.raises(ModelError, match="unknown head"):
        create_model("resnet18", head="quaternion")
    with pytest.raises(ModelError, match="whole number"):
        create_model("resnet18", head="bins", bins={"pitch": {"lo": -99, "hi": 99, "width": 4}})
    with pytest.raises(ModelError, match="full circle"):
        create_model("resnet18", head="bins", bins={"yaw": BinSpec(-99, 99, 3, True)})
    with pytest.raises(ModelError, match="unknown axis"):
        create_model("resnet18", head="bins", bins={"heading": BinSpec()})
    with pytest.raises(ModelError, match="dropout"):
        create_model("resnet18", dropout=1.5)
    with pytest.raises(ModelError, match="too small"):
        create_model("resnet18", input_size=16)


# ---------------------------------------------------------------- bin decoding

def test_decode_uses_bin_centres_not_left_edges():
    spec = BinSpec(-99.0, 99.0, 3.0, False)
    for k in (0, 10, 33, 65):
        logits = torch.full((1, 66), -1e4)
        logits[0, k] = 0.0
        # HopeNet's left-edge decode would give 3k - 99; the centre is 1.5 deg higher.
        assert decode_bins(logits, spec).item() == pytest.approx(3 * k - 99 + 1.5, abs=1e-4)


def test_wrapped_decode_is_circular_across_the_seam():
    spec = BinSpec(-180.0, 180.0, 4.0, True)
    c = bin_centers(spec)
    logits = torch.full((1, 90), -1e4)
    logits[0, 0] = logits[0, -1] = 0.0  # equal mass at -178 and +178: the answer is 180, not 0
    assert abs(abs(decode_bins(logits, spec).item()) - 180.0) < 1e-3
    logits = torch.full((1, 90), -1e4)
    logits[0, -1] = 0.0
    assert decode_bins(logits, spec).item() == pytest.approx(c[-1].item(), abs=1e-3)
    # a linear expectation would be pulled towards 0 here; the circular mean is not
    soft = -((c - 179.0 + 180) % 360 - 180) ** 2 / 50.0
    assert abs(decode_bins(soft[None], spec).item()) > 175.0


def test_bin_index_wraps_and_clamps():
    spec = BinSpec(-180.0, 180.0, 3.0, True)
    idx = bin_index(torch.tensor([-180.0, 179.9, 180.0, 181.5, -181.0]), spec)
    assert idx.tolist() == [0, 119, 0, 0, 119]
    open_spec = BinSpec(-99.0, 99.0, 3.0, False)
    assert bin_index(torch.tensor([-120.0, -99.0, 0.0, 98.9, 120.0]), open_spec).tolist() == [0, 0, 33, 65, 65]


def test_bins_head_R_matches_decoded_euler():
    from edgepose.geometry import euler_to_matrix

    m = create_model("mobilenetv3_small", head="bins", input_size=SIZE).eval()
    with torch.no_grad():
        out = m(torch.randn(3, 3, SIZE, SIZE))
    ref = euler_to_matrix(out["bin_euler"].double().numpy())
    assert np.allclose(out["R"].numpy(), ref, atol=1e-5)


def test_resolve_bins_accepts_yaml_dicts():
    bins = resolve_bins({"yaw": {"lo": -180, "hi": 180, "width": 3, "wrap": True}})
    assert bins["yaw"].num_bins == 120 and bins["roll"].num_bins == 66


# ---------------------------------------------------------------- ONNX export (legacy exporter: fast)

@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the legacy exporter announces its retirement
@pytest.mark.parametrize("name,head", [("resnet18", "6d"), ("mobilenetv3_small", "6d+bins"), ("repvgg_a0", "bins")])
def test_onnx_export_matches_torch(name, head, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    m = create_model(name, head=head, input_size=SIZE, bins=WRAP_YAW).eval()
    if m.backbone.__class__.__name__ == "RepVGG":
        m.reparameterize()
    x = torch.randn(2, 3, SIZE, SIZE)
    path = tmp_path / f"{name}.onnx"
    with torch.no_grad():
        torch.onnx.export(RotationOutput(m), (x,), str(path), input_names=["input"], output_names=["rotation"],
                          dynamic_axes={"input": {0: "batch"}, "rotation": {0: "batch"}}, opset_version=17,
                          dynamo=False)
        ref = m(x)["R"].numpy()
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"input": x.numpy()})[0]
    assert got.shape == (2, 3, 3)
    assert np.abs(got - ref).max() < 1e-4


# ---------------------------------------------------------------- size / compute summary

def test_summary_counts_params_and_macs():
    from edgepose.models.summary import model_summary

    s = model_summary("mobilenetv3_small", "6d", 224)
    # docs/backbones.md, "The zoo" (same counting method): 0.93 M params, 0.05 G MACs at 224
    assert round(s["params"] / 1e6, 2) == 0.93
    assert 0.045e9 < s["macs"] < 0.065e9
    small = model_summary("mobilenetv3_small", "6d", 112)
    assert small["macs"] < s["macs"] / 3  # ~quadratic in the input side
    deploy = model_summary("repvgg_a0", "6d", 64)
    train = model_summary("repvgg_a0", "6d", 64, deploy=False)
    assert deploy["deploy"] and not train["deploy"]
    assert deploy["macs"] < train["macs"] and deploy["params"] < train["params"]


# ---------------------------------------------------------------- 6D MLP head (CLERF stage 2)

def _randomise_bn(model: torch.nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics, so a reload that dropped the head's buffers would show."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm1d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g))
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)


def test_mlp_6d_head_outputs_rotations_for_random_inputs():
    from edgepose.models.heads import SixDHead

    torch.manual_seed(0)
    head = SixDHead(48, hidden=(32, 16))
    assert [type(m).__name__ for m in head.hidden] == ["Linear", "BatchNorm1d", "ReLU"] * 2
    assert head.fc.in_features == 16 and head.fc.out_features == 6
    for mode in ("train", "eval"):
        getattr(head, mode)()
        _randomise_bn(head)
        for scale in (1e-3, 1.0, 1e3):  # tiny and huge features still give proper rotations
            out = head(scale * torch.randn(7, 48, dtype=torch.float32))
            assert out["sixd"].shape == (7, 6)
            assert _is_rotation(out["R"].double(), atol=1e-4), (mode, scale)


def test_mlp_head_leaves_linear_head_unchanged():
    """Default = the linear head: same state-dict keys and metadata as before, so existing
    checkpoints, importers and shipped models keep loading."""
    m = create_model("mobilenetv3_small", head="6d", input_size=SIZE)
    assert sorted(k for k in m.state_dict() if k.startswith("head.")) == ["head.fc.bias", "head.fc.weight"]
    assert "head_hidden" not in m.metadata().model_kwargs
    mlp = create_model("mobilenetv3_small", head="6d+bins", input_size=SIZE, head_hidden=[32])
    assert mlp.metadata().model_kwargs["head_hidden"] == [32]
    assert mlp.head.sixd.fc.in_features == 32 and mlp.head.bins.fc["yaw"].in_features == mlp.num_features


@pytest.mark.parametrize("bad", [[0], [-4], ["512"], [1.5], "512", [True]])
def test_mlp_head_bad_widths(bad):
    with pytest.raises(ModelError, match="head_hidden"):
        create_model("mobilenetv3_small", head="6d", input_size=SIZE, head_hidden=bad)


def test_mlp_head_refused_on_bins_head():
    with pytest.raises(ModelError, match="head_hidden"):
        create_model("mobilenetv3_small", head="bins", input_size=SIZE, head_hidden=[32])


def test_mlp_head_checkpoint_round_trip(batch, tmp_path):
    m = create_model("mobilenetv3_small", head="6d", input_size=SIZE, head_hidden=[32, 16]).eval()
    _randomise_bn(m.head)
    path = m.save_checkpoint(tmp_path / "mlp.pt")
    assert load_metadata(path).model_kwargs["head_hidden"] == [32, 16]
    m2 = PoseModel.from_checkpoint(path)  # the path eval / export / the torch runtime use
    assert m2.head_hidden == (32, 16)
    with torch.no_grad():
        a, b = m(batch), m2(batch)
    assert torch.equal(a["R"], b["R"]) and torch.equal(a["sixd"], b["sixd"]) and _is_rotation(b["R"])
    # metadata and weights must agree: a linear-head description cannot swallow MLP weights
    ckpt = torch.load(path, weights_only=True)
    del ckpt["edgepose_metadata"]["model_kwargs"]["head_hidden"]
    torch.save(ckpt, tmp_path / "lying.pt")
    with pytest.raises(ModelError, match="weights do not match"):
        PoseModel.from_checkpoint(tmp_path / "lying.pt")
