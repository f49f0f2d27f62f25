"""Teacher methods: hand-checked losses, sampling rules, label transforms, and each method's
training step end to end through edgepose-train (tiny budgets)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from edgepose import geometry
from edgepose.config import ConfigError
from edgepose.methods.losses import circle_loss, clerf_masks, diff_loss, dwa_weights, info_nce
from edgepose.methods.ssl import jigsaw_batch, jigsaw_permutations, rotation_batch


# ------------------------------------------------------------------ losses on hand-made inputs

def test_circle_loss_matches_formula_on_hand_set_similarities():
    m, g = 0.25, 2.0
    sim = torch.tensor([[1.0, 0.8, 0.1, -0.3]])
    pos = torch.tensor([[False, True, False, False]])
    neg = torch.tensor([[False, False, True, True]])
    sp, sn = 0.8, [0.1, -0.3]
    ap = 1 + m - sp
    an = [max(s + m, 0.0) for s in sn]
    want = math.log(1 + sum(math.exp(g * a * (s - m)) for a, s in zip(an, sn)) * math.exp(-g * ap * (sp - (1 - m))))
    assert circle_loss(sim, pos, neg, m, g).item() == pytest.approx(want, rel=1e-5)


def test_circle_loss_orders_easy_and_hard_and_skips_anchors_without_pairs():
    pos = torch.tensor([[False, True, False]])
    neg = torch.tensor([[False, False, True]])
    easy = circle_loss(torch.tensor([[1.0, 0.95, -0.5]]), pos, neg)
    hard = circle_loss(torch.tensor([[1.0, 0.2, 0.7]]), pos, neg)
    assert easy.item() < 0.1 < 1.0 < hard.item()
    none = circle_loss(torch.tensor([[1.0, 0.5, 0.5]], requires_grad=True), pos & False, neg)
    assert none.item() == 0.0 and none.requires_grad


def test_diff_loss_zero_for_orthogonal_features_positive_otherwise():
    # DiffLoss correlates feature dimensions over the batch: zero-mean batch columns u, v with u.v = 0
    u, v = torch.tensor([1.0, -1, 1, -1]), torch.tensor([1.0, 1, -1, -1])
    a, b = torch.zeros(4, 4), torch.zeros(4, 4)
    a[:, 0], b[:, 2] = u, v
    assert diff_loss(a, b).item() == pytest.approx(0.0, abs=1e-12)
    assert diff_loss(a, a).item() > 0.1


def test_diff_loss_row_norms_are_detached():
    a = torch.randn(6, 5, requires_grad=True)
    b = torch.randn(6, 5)
    diff_loss(a, b).backward()
    # with detached norms the loss is a quadratic form in the centred a: scaling a doubles... the
    # gradient is 2 * (A_hat B_hat^T-style) / norm; compare with the analytic expression
    ac, bc = a.detach() - a.detach().mean(0), b - b.mean(0)
    na, bn = ac.norm(dim=1, keepdim=True), bc / bc.norm(dim=1, keepdim=True)
    C = (ac / na).t() @ bn
    g = (bn @ (2 * C.t() / C.numel())) / na
    g = g - g.mean(0)
    assert torch.allclose(a.grad, g, atol=1e-5)


def test_info_nce_prefers_aligned_positive():
    q = torch.nn.functional.normalize(torch.tensor([[1.0, 0.0]]), dim=1)
    neg = torch.tensor([[[0.0, 1.0], [-1.0, 0.0]]])
    good = info_nce(q, q.clone(), neg, 0.07)
    bad = info_nce(q, torch.tensor([[0.0, 1.0]]), neg, 0.07)
    assert good.item() < 1e-3 and bad.item() > 0.5


def test_dwa_weights():
    assert dwa_weights([[1.0, 1.0]]) == [1.0, 1.0]
    w = dwa_weights([[1.0, 1.0], [1.0, 0.5]], temperature=2.0)
    assert sum(w) == pytest.approx(2.0)
    want0 = 2 * math.exp(0.5) / (math.exp(0.5) + math.exp(0.25))
    assert w[0] == pytest.approx(want0) and w[0] > w[1]  # the task that improved less gets more weight


# ------------------------------------------------------------------ SSL transforms

def test_jigsaw_permutations_are_distinct_hamming_distant_and_deterministic():
    p = jigsaw_permutations(30)
    assert p.shape == (30, 9)
    assert all(sorted(r) == list(range(9)) for r in p.tolist())
    assert len({tuple(r) for r in p.tolist()}) == 30
    d = (p[:, None, :] != p[None]).sum(-1)
    assert d[~np.eye(30, dtype=bool)].min() >= 6
    assert np.array_equal(p, jigsaw_permutations(30))


def test_jigsaw_batch_places_tiles_by_permutation():
    perms = jigsaw_permutations(30)
    x = torch.arange(9.0).repeat_interleave(2).reshape(1, 1, 1, 18).expand(1, 1, 18, 18).clone()
    x = torch.zeros(1, 1, 6, 6)
    for i in range(9):
        r, c = divmod(i, 3)
        x[0, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] = i
    out, lab = jigsaw_batch(x, perms, torch.Generator().manual_seed(0))
    perm = perms[int(lab[0])]
    for i in range(9):
        r, c = divmod(i, 3)
        assert torch.all(out[0, 0, 2 * r:2 * r + 2, 2 * c:2 * c + 2] == float(perm[i]))


def test_rotation_labels_match_ccw_crop_rotation():
    from edgepose.preprocess import PreprocessSpec, crop_image

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    from edgepose.preprocess import CropPolicy

    spec = PreprocessSpec(input_size=32, crop=CropPolicy(scale=1.0))
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float()
    xr, labels = rotation_batch(x)
    assert labels.tolist() == [0, 1, 2, 3]
    for k in range(4):
        ref = crop_image(img, (0, 0, 32, 32), spec, angle_deg=90.0 * k)
        got = xr[k].permute(1, 2, 0).numpy()
        assert np.abs(got[2:-2, 2:-2] - ref[2:-2, 2:-2]).mean() < 2.0, k


# ------------------------------------------------------------------ CLERF sampling rules

def test_clerf_masks_threshold_rule():
    R = torch.tensor(np.stack([np.eye(3), np.eye(3), geometry.euler_to_matrix([0, 10, 0]),
                               geometry.euler_to_matrix([0, 40, 0])]), dtype=torch.float32)
    pos, neg = clerf_masks(R, delta_deg=15.0, pos_deg=1.0)
    assert pos[0].tolist() == [False, True, False, False]  # same pose, self excluded
    assert neg[0].tolist() == [False, False, False, True]  # 10 deg: ignored; 40 deg: negative
    assert torch.equal(pos, pos.t()) and torch.equal(neg, neg.t())


def test_mirror_and_geometric_augment_labels_match_geometry():
    from edgepose.methods.data import GeometricAugment, mirror_as_rotate_flip

    R = geometry.random_rotations(4, np.random.default_rng(1))
    for phi in (0.0, 33.0, 90.0, 151.0):
        a, f = mirror_as_rotate_flip(phi)
        np.testing.assert_allclose(geometry.flip_label(geometry.rotate_label(R, a)), geometry.mirror_label(R, phi),
                                   atol=1e-12)
    g = GeometricAugment(rotate_p=1.0, rotate_deg=180.0, flip_p=0.5, mirror_p=0.3)
    rng = np.random.default_rng(0)
    angles = [g.sample(rng)[0] for _ in range(400)]
    assert min(angles) < -150 and max(angles) > 150  # upside-down included
    with pytest.raises(Exception, match="probability"):
        GeometricAugment(flip_p=1.5)


def test_label_transforms_preserve_geodesic_distance():
    rng = np.random.default_rng(2)
    A, B = geometry.random_rotations(20, rng), geometry.random_rotations(20, rng)
    d0 = geometry.geodesic_distance(A, B)
    for angle, flip in ((37.0, False), (180.0, True), (-120.0, True)):
        tA, tB = geometry.rotate_label(A, angle), geometry.rotate_label(B, angle)
        if flip:
            tA, tB = geometry.flip_label(tA), geometry.flip_label(tB)
        np.testing.assert_allclose(geometry.geodesic_distance(tA, tB), d0, atol=1e-6)


# ------------------------------------------------------------------ CLERF pairs, by rendering

@pytest.fixture(scope="module")
def synth_base():
    pytest.importorskip("moderngl")
    from edgepose.data import PoseDataset
    from edgepose.methods.data import MemoSynthReader
    from edgepose.preprocess import CropPolicy, PreprocessSpec

    try:
        reader = MemoSynthReader(4, seed=5, split="train", n_identities=20, pose_range="full", size=64, ssaa=1)
        reader.get(0)
    except Exception as exc:  # no EGL driver on this machine
        pytest.skip(f"synthetic renderer unavailable: {exc}")
    return PoseDataset(reader, PreprocessSpec(input_size=48, crop=CropPolicy(scale=1.2)))


@pytest.mark.parametrize("mode", ["direct", "roll_last"])
def test_clerf_positive_same_pose_other_identity_same_transform(synth_base, mode):
    from edgepose.data.augment import crop_sample
    from edgepose.methods.data import ClerfPairs, GeometricAugment

    pairs = ClerfPairs(synth_base, GeometricAugment(), positive_mode=mode, identities=20, seed=0)
    rng = np.random.default_rng(3)
    for i in range(len(pairs)):
        anchor = synth_base.source.get(i)
        pos, extra = pairs.positive(i, anchor)
        assert pos.extra["identity"] != anchor.extra["identity"]
        if mode == "direct":
            assert extra == 0.0
        # the positive's label after its own (roll-last) rotation is the anchor's pose
        R_pos0 = geometry.rotate_label(pos.R, extra) if extra else pos.R
        assert geometry.geodesic_distance(R_pos0, anchor.R) < 1.0
        crop_a, R_a, crop_p, R_p, (angle, flip) = pairs.pair(i, rng)
        assert geometry.geodesic_distance(R_a, R_p) < 1.0  # same geometric transform on both
        want = geometry.rotate_label(anchor.R, angle)
        want = geometry.flip_label(want) if flip else want
        np.testing.assert_allclose(R_a, want, atol=1e-9)


def test_clerf_pairs_item_tensors(synth_base):
    from edgepose.methods.data import ClerfPairs, GeometricAugment

    item = ClerfPairs(synth_base, GeometricAugment(), identities=20)[0]
    assert item["image"].shape == item["image_pos"].shape == (3, 48, 48)
    assert geometry.geodesic_distance(item["R"].double().numpy(), item["R_pos"].double().numpy()) < 1.0


# ------------------------------------------------------------------ end to end through edgepose-train

def _cfg(tmp_path, method: str, options: dict | None = None, head: str = "6d", loss: dict | None = None):
    from edgepose.train.config import DataConfig, MethodConfig, ModelConfig, TrainConfig, LogConfig

    synth = {"format": "synth", "n": 6, "seed": 1, "split": "train", "n_identities": 10, "pose_range": "full",
             "size": 64, "ssaa": 1}
    bins = {"pitch": {"lo": -90, "hi": 90, "width": 10}, "yaw": {"lo": -180, "hi": 180, "width": 10, "wrap": True},
            "roll": {"lo": -180, "hi": 180, "width": 10, "wrap": True}}
    return TrainConfig(
        data=DataConfig(train=synth, val=dict(synth, n=4, split="val", seed=2), augment={"flip_p": 0.5}),
        model=ModelConfig(name="resnet18", head=head, input_size=32, bins=bins if "bins" in head else None),
        loss=loss or {"geodesic": 1.0}, method=MethodConfig(method, options or {}),
        log=LogConfig(tensorboard=False), epochs=2, batch_size=3, workers=0, device="cpu",
        output=str(tmp_path / method), max_iters_per_epoch=1)


@pytest.mark.parametrize("method,options,head,loss", [
    ("clerf", {"pretrain_epochs": 1, "positive_mode": "roll_last", "encoder": "frozen"}, "6d", None),
    ("pcl", {"pretrain_epochs": 1, "pose_negatives": 2, "recon_size": 16}, "6d", None),
    ("hmtl", {"pretrain_epochs": 1, "permutations": 10}, "6d+bins", {"geodesic": 1.0, "ldl": 0.5}),
    ("ldl", {}, "6d+bins", {"geodesic": 1.0, "ldl": 0.5}),
])
def test_methods_train_end_to_end(synth_base, tmp_path, method, options, head, loss):
    import edgepose.methods  # noqa: F401
    from edgepose.models.pose_model import PoseModel
    from edgepose.train import Trainer

    res = Trainer(_cfg(tmp_path, method, options, head, loss)).fit()
    assert np.isfinite(res["train_loss"]) and np.isfinite(res["val_ge"])
    model = PoseModel.from_checkpoint(res["last"])  # the deployable model, nothing method-specific
    R = model.eval()(torch.zeros(1, 3, 32, 32))["R"]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3), atol=1e-4)


def test_clerf_mlp_head_trains_and_reloads(synth_base, tmp_path):
    """CLERF's stage-2 MLP head (``head_hidden``) trains through edgepose-train (1 Circle-loss step,
    1 pose step), lands in the deployable PoseModel and its metadata, and reloads exactly."""
    import edgepose.methods  # noqa: F401
    from edgepose.metadata import load_metadata
    from edgepose.models.pose_model import PoseModel
    from edgepose.train import Trainer

    cfg = _cfg(tmp_path, "clerf", {"pretrain_epochs": 1, "head_hidden": [16]})
    res = Trainer(cfg).fit()
    assert np.isfinite(res["train_loss"]) and np.isfinite(res["val_ge"])
    assert load_metadata(res["last"]).model_kwargs["head_hidden"] == [16]
    model = PoseModel.from_checkpoint(res["last"])
    assert model.head.hidden[0].out_features == 16
    assert model.head.hidden[1].running_mean.abs().sum() > 0  # the pose stage ran through the MLP
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    R = model(x)["R"]
    assert torch.allclose(R @ R.transpose(1, 2), torch.eye(3).expand(2, 3, 3), atol=1e-4)
    assert torch.equal(R, PoseModel.from_checkpoint(res["last"])(x)["R"])


def test_head_hidden_option_errors(tmp_path):
    from dataclasses import replace

    from edgepose.methods.clerf import ClerfMethod
    from edgepose.methods.pcl import PCLMethod

    cfg = _cfg(tmp_path, "clerf", {"pretrain_epochs": 1, "head_hidden": [16]})
    clash = replace(cfg, model=replace(cfg.model, kwargs={"head_hidden": [32]}))
    with pytest.raises(ConfigError, match="contradicts"):
        ClerfMethod(clash, clash.method.options)
    same = replace(cfg, model=replace(cfg.model, kwargs={"head_hidden": [16]}))
    ClerfMethod(same, same.method.options)  # saying it twice, identically, is fine
    pcl = _cfg(tmp_path, "pcl", {"pretrain_epochs": 1})
    pcl = replace(pcl, model=replace(pcl.model, kwargs={"head_hidden": [16]}))
    with pytest.raises(ConfigError, match="linear probe"):
        PCLMethod(pcl, pcl.method.options)


def test_pcl_probe_fold_is_exact():
    from edgepose.methods.pcl import fold_probe
    from edgepose.models import create_model

    pm = create_model("resnet18", head="6d+bins", input_size=32).eval()
    bn = torch.nn.BatchNorm1d(pm.num_features, affine=False)
    bn.running_mean.normal_()
    bn.running_var.uniform_(0.5, 2.0)
    bn.eval()
    f = torch.randn(5, pm.num_features)
    want = pm.forward_head(bn(f))
    got = fold_probe(pm, bn).forward_head(f)
    assert torch.allclose(want["sixd"], got["sixd"], atol=1e-4)
    assert torch.allclose(want["logits"]["yaw"], got["logits"]["yaw"], atol=1e-4)


@pytest.mark.parametrize("method,options,head,loss,match", [
    ("ldl", {}, "6d", None, "binned head"),
    ("ldl", {}, "6d+bins", {"geodesic": 1.0}, "loss.ldl"),
    ("clerf", {"pretrain_epochs": 2}, "6d", None, "pretrain_epochs"),
    ("clerf", {"positive_mode": "gan"}, "6d", None, "positive_mode"),
    ("clerf", {"encoder": "half"}, "6d", None, "encoder"),
    ("clerf", {"head_hidden": [0]}, "6d", None, "head_hidden"),
    ("clerf", {"head_hidden": [16]}, "bins", None, "6D head"),
    ("pcl", {"temprature": 0.1}, "6d", None, "unknown key"),
    ("hmtl", {"jigsaw_weight": -1}, "6d", None, "jigsaw_weight"),
])
def test_bad_method_options_are_user_errors(tmp_path, method, options, head, loss, match):
    from edgepose.errors import UserError
    from edgepose.methods.method import get_method

    if method != "ldl" and "pretrain_epochs" not in options:
        options = {**options, "pretrain_epochs": 1}
    cfg = _cfg(tmp_path, method, options, head, loss)
    with pytest.raises((ConfigError, UserError), match=match):
        get_method(method)(cfg, cfg.method.options)


# ------------------------------------------------------------------ fixed-budget fairness and shared renders

@pytest.mark.parametrize("on_positives", [False, True])
def test_clerf_pose_stage_uses_anchors_only_unless_asked(tmp_path, on_positives):
    """A fixed-budget row must not see twice the images per step: by default CLERF's pose stage
    regresses the anchors only; ``pose_on_positives`` adds the positives with their own labels."""
    from edgepose.methods.clerf import ClerfMethod

    cfg = _cfg(tmp_path, "clerf", {"pretrain_epochs": 1, "pose_on_positives": on_positives})
    m = ClerfMethod(cfg, cfg.method.options)
    n = 3
    Rs = torch.from_numpy(np.stack([geometry.euler_to_matrix([10.0 * i, 20.0, -5.0]) for i in range(n)])).float()
    Rp = torch.from_numpy(np.stack([geometry.euler_to_matrix([-30.0, 5.0 * i, 40.0]) for i in range(n)])).float()
    batch = {"image": torch.zeros(n, 3, 32, 32), "image_pos": torch.ones(n, 3, 32, 32), "R": Rs, "R_pos": Rp,
             "euler": torch.zeros(n, 3)}
    x, b = m.pose_batch(batch)
    assert x.shape[0] == b["R"].shape[0] == b["euler"].shape[0] == (2 * n if on_positives else n)
    assert torch.equal(x[:n], batch["image"]) and torch.equal(b["R"][:n], Rs)
    if on_positives:
        assert torch.equal(x[n:], batch["image_pos"]) and torch.equal(b["R"][n:], Rp)
        want = np.stack([geometry.matrix_to_euler(r) for r in Rp.double().numpy()])
        np.testing.assert_allclose(b["euler"][n:].numpy(), want, atol=1e-3)


def test_memo_readers_share_renders_only_for_identical_options():
    from edgepose.methods.data import MemoSynthReader

    kw = dict(split="train", n_identities=10, pose_range="full", size=64, ssaa=1)
    a, b = MemoSynthReader(3, seed=11, **kw), MemoSynthReader(3, seed=11, **kw)
    assert a._cache is b._cache  # the table's rows render the same set once
    assert MemoSynthReader(3, seed=12, **kw)._cache is not a._cache
    assert MemoSynthReader(3, seed=11, **{**kw, "size": 48})._cache is not a._cache
    assert MemoSynthReader(4, seed=11, **kw)._cache is not a._cache
    assert MemoSynthReader(3, seed=11, memo=False, **kw)._cache is not a._cache


def test_table_pools_rotations_by_sample_count_and_keeps_row_order():
    from edgepose.methods.table import ROWS, _pooled, markdown

    m = lambda ge, n: {"metrics": {"ge": ge, "mae": ge / 2, "maev": ge / 3, "n": n}}  # noqa: E731
    pooled = _pooled({"a": m(10.0, 100), "b": m(40.0, 300)}, ["a", "b"])
    assert pooled["ge"] == pytest.approx(32.5) and pooled["mae"] == pytest.approx(16.25)
    row = lambda ge, aflw: {"train_s": 120.0, "synth": {  # noqa: E731
        "original": {"ge": ge, "mae": 1.0, "maev": 2.0}, "rotated": {"ge": ge + 1, "mae": 1.0, "maev": 2.0},
        "flip": {"ge": ge + 2, "mae": 1.0, "maev": 2.0}}, **({"aflw2000": {"mae": aflw}} if aflw else {})}
    md = markdown({"pcl": row(50.0, None), "baseline": row(90.0, 40.0)})
    lines = md.strip().splitlines()
    assert len(lines) == 4 and all(ln.count("|") == 13 for ln in lines)
    assert lines[2].startswith("| baseline | 90.0 ") and lines[3].startswith("| pcl | 50.0 ")  # ROWS order
    assert lines[2].endswith("| 40.0 | 2.0 |") and "| n/a |" in lines[3]
    assert ROWS.index("baseline") < ROWS.index("pcl")


def test_pcl_decoder_width_option_shapes_and_bad_values(tmp_path):
    from edgepose.methods.pcl import PCLMethod, ReconDecoder
    from edgepose.preprocess import CropPolicy, PreprocessSpec

    cfg = _cfg(tmp_path, "pcl", {"pretrain_epochs": 1, "recon_size": 16, "recon_channels": 8})
    m = PCLMethod(cfg, cfg.method.options)
    dec = m.build(cfg.model, PreprocessSpec(input_size=32, crop=CropPolicy(scale=1.2))).extra["decoder"]
    assert dec.ch == 8 and dec(torch.randn(2, m.opt.branch_dim)).shape == (2, 3, 16, 16)
    with pytest.raises(ValueError, match="recon_channels"):
        ReconDecoder(16, 16, 0)
    with pytest.raises(ValueError, match="recon_size"):
        ReconDecoder(16, 24, 8)
