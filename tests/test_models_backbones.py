"""Backbones: torchvision-compatible structure, parameter counts, ImageNet weight loading, RepVGG fusion."""
from __future__ import annotations

import pytest
import torch

from edgepose.errors import ModelError
from edgepose.models import create_model, list_models
from edgepose.models.registry import create_backbone

OURS = ["resnet18", "resnet50", "mobilenetv3_small", "mobilenetv3_large", "repvgg_a0", "repvgg_b0", "repvgg_b1g2",
        "mobilenet_v2", "efficientnet_lite0"]


def n_params(m: torch.nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())


def test_all_backbones_registered():
    assert set(OURS) <= set(list_models())
    assert list_models("repvgg*") == ["repvgg_a0", "repvgg_b0", "repvgg_b1g2"]


# torchvision's published counts (num_params in the *_Weights metadata of torchvision/models/*.py),
# with the 1000-class classifier.
@pytest.mark.parametrize("name,count", [("resnet18", 11_689_512), ("resnet50", 25_557_032),
                                        ("mobilenetv3_small", 2_542_856), ("mobilenetv3_large", 5_483_032),
                                        ("mobilenet_v2", 3_504_872)])
def test_param_counts_match_torchvision(name, count):
    assert n_params(create_backbone(name, num_classes=1000)) == count


@pytest.mark.parametrize("name,keys", [
    ("resnet18", {"conv1.weight": (64, 3, 7, 7), "bn1.running_mean": (64,), "layer1.0.conv1.weight": (64, 64, 3, 3),
                  "layer2.0.downsample.0.weight": (128, 64, 1, 1), "layer2.0.downsample.1.weight": (128,),
                  "layer4.1.bn2.running_var": (512,), "fc.weight": (1000, 512), "fc.bias": (1000,)}),
    ("resnet50", {"layer1.0.conv3.weight": (256, 64, 1, 1), "layer1.0.downsample.0.weight": (256, 64, 1, 1),
                  "layer3.5.conv2.weight": (256, 256, 3, 3), "layer4.2.bn3.weight": (2048,),
                  "fc.weight": (1000, 2048)}),
    ("mobilenetv3_small", {"features.0.0.weight": (16, 3, 3, 3), "features.0.1.running_var": (16,),
                           "features.1.block.0.0.weight": (16, 1, 3, 3), "features.1.block.1.fc1.weight": (8, 16, 1, 1),
                           "features.1.block.2.0.weight": (16, 16, 1, 1), "features.12.0.weight": (576, 96, 1, 1),
                           "classifier.0.weight": (1024, 576), "classifier.3.weight": (1000, 1024)}),
    ("mobilenetv3_large", {"features.4.block.2.fc1.weight": (24, 72, 1, 1), "features.16.0.weight": (960, 160, 1, 1),
                           "classifier.0.weight": (1280, 960), "classifier.3.bias": (1000,)}),
    ("repvgg_a0", {"stage0.rbr_dense.conv.weight": (48, 3, 3, 3), "stage0.rbr_1x1.bn.running_mean": (48,),
                   "stage1.1.rbr_identity.weight": (48,), "stage4.0.rbr_dense.conv.weight": (1280, 192, 3, 3),
                   "linear.weight": (1000, 1280)}),
    ("mobilenet_v2", {"features.0.0.weight": (32, 3, 3, 3), "features.1.conv.0.0.weight": (32, 1, 3, 3),
                      "features.1.conv.1.weight": (16, 32, 1, 1), "features.1.conv.2.running_var": (16,),
                      "features.2.conv.0.0.weight": (96, 16, 1, 1), "features.2.conv.1.0.weight": (96, 1, 3, 3),
                      "features.2.conv.3.weight": (24,), "features.17.conv.2.weight": (320, 960, 1, 1),
                      "features.18.0.weight": (1280, 320, 1, 1), "classifier.1.weight": (1000, 1280)}),
    # the layout of efficientnet-lite0-57934424.pth (lukemelas names; no _se_reduce / _se_expand: Lite has no SE)
    ("efficientnet_lite0", {"_conv_stem.weight": (32, 3, 3, 3), "_bn0.running_mean": (32,),
                            "_blocks.0._depthwise_conv.weight": (32, 1, 3, 3), "_blocks.0._project_conv.weight": (16, 32, 1, 1),
                            "_blocks.1._expand_conv.weight": (96, 16, 1, 1), "_blocks.3._depthwise_conv.weight": (144, 1, 5, 5),
                            "_blocks.12._bn0.weight": (1152,), "_blocks.15._depthwise_conv.weight": (1152, 1, 3, 3),
                            "_blocks.15._project_conv.weight": (320, 1152, 1, 1), "_conv_head.weight": (1280, 320, 1, 1),
                            "_bn1.running_var": (1280,), "_fc.weight": (1000, 1280)}),
    # groups=2 on the authors' even layer indices: stage1.1 is layer 2, stage1.2 is layer 3.
    ("repvgg_b1g2", {"stage1.1.rbr_dense.conv.weight": (128, 64, 3, 3), "stage1.2.rbr_dense.conv.weight": (128, 128, 3, 3),
                     "linear.weight": (1000, 2048)}),
])
def test_state_dict_keys_and_shapes(name, keys):
    sd = create_backbone(name, num_classes=1000).state_dict()
    for k, shape in keys.items():
        assert k in sd, k
        assert tuple(sd[k].shape) == shape, k


def test_efficientnet_lite0_has_no_squeeze_excite_and_b0_block_table():
    sd = create_backbone("efficientnet_lite0", num_classes=1000).state_dict()
    assert not any("_se_" in k for k in sd)
    assert len({k.split(".")[1] for k in sd if k.startswith("_blocks.")}) == 16  # B0's 1+2+2+3+3+4+1 blocks
    assert n_params(create_backbone("efficientnet_lite0", num_classes=1000)) == 4_652_008  # TF's "4.7 M"


@pytest.mark.parametrize("name", OURS)
def test_pose_backbone_has_no_classifier(name):
    bb = create_backbone(name)
    assert not any(k.startswith(("fc.", "classifier.", "linear.", "_fc.")) for k in bb.state_dict())


# docs/backbones.md ("The zoo") counts backbone + Linear(C, 6) head, deploy form: A0 7.04 M, B0 13.07 M, B1g2 39.32 M
# (train-time B1g2 43.75 M).
@pytest.mark.parametrize("name,deploy_m,train_m", [("repvgg_a0", 7.04, None), ("repvgg_b0", 13.07, None),
                                                   ("repvgg_b1g2", 39.32, 43.75)])
def test_repvgg_param_counts_vs_notes(name, deploy_m, train_m):
    m = create_model(name, head="6d", input_size=64)
    if train_m is not None:
        assert round(n_params(m) / 1e6, 2) == train_m
    m.eval().reparameterize()
    assert m.is_deploy
    assert round(n_params(m) / 1e6, 2) == deploy_m
    assert not any("rbr_dense" in k or "rbr_1x1" in k or "rbr_identity" in k for k in m.state_dict())


def _randomize_bn(model: torch.nn.Module, gen: torch.Generator) -> None:
    for mod in model.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            c = mod.num_features
            mod.running_mean.copy_(torch.randn(c, generator=gen) * 0.2)
            mod.running_var.copy_(torch.rand(c, generator=gen) * 0.8 + 0.4)
            mod.weight.data.copy_(torch.rand(c, generator=gen) * 0.8 + 0.6)
            mod.bias.data.copy_(torch.randn(c, generator=gen) * 0.2)


@pytest.mark.parametrize("name", ["repvgg_a0", "repvgg_b0", "repvgg_b1g2"])
def test_repvgg_reparameterize_is_equivalent(name):
    gen = torch.Generator().manual_seed(0)
    m = create_model(name, head="6d+bins", input_size=64)
    _randomize_bn(m, gen)
    m.eval()
    x = torch.randn(2, 3, 64, 64, generator=gen)
    with torch.no_grad():
        before = m(x)
        m.reparameterize()
        after = m(x)
    f0, f1 = before["features"], after["features"]
    assert (f1 - f0).abs().max() <= 1e-4 * f0.abs().max() + 1e-5
    assert torch.allclose(before["R"], after["R"], atol=1e-4)
    m.reparameterize()  # idempotent
    with torch.no_grad():
        assert torch.equal(m(x)["features"], f1)


def test_reparameterize_is_noop_for_single_branch_nets():
    m = create_model("resnet18", input_size=64).eval()
    keys = list(m.state_dict())
    m.reparameterize()
    assert list(m.state_dict()) == keys and not m.is_deploy


@pytest.mark.parametrize("name", ["resnet18", "mobilenetv3_small", "repvgg_a0"])
def test_channels_last_and_odd_sizes(name):
    m = create_model(name, input_size=64).eval()
    for size in (64, 80, 97):
        x = torch.randn(2, 3, size, size)
        with torch.no_grad():
            f = m.forward_features(x)
            f_cl = m.to(memory_format=torch.channels_last).forward_features(x.to(memory_format=torch.channels_last))
            m.to(memory_format=torch.contiguous_format)
        assert f.shape == (2, m.num_features)
        # random-init eval-mode features can reach 1e4, so compare relative to their scale
        assert (f - f_cl).abs().max() <= 1e-5 * f.abs().max() + 1e-6


# ---------------------------------------------------------------- ImageNet weights from a local file

@pytest.mark.parametrize("name,classifier", [("resnet18", "fc."), ("mobilenetv3_small", "classifier."),
                                             ("repvgg_a0", "linear."), ("mobilenet_v2", "classifier."),
                                             ("efficientnet_lite0", "_fc.")])
def test_pretrained_loads_trunk_and_ignores_classifier(tmp_path, name, classifier):
    src = create_backbone(name, num_classes=1000)
    with torch.no_grad():
        for p in src.parameters():
            p.add_(torch.randn_like(p) * 0.01)
    path = tmp_path / f"{name}.pth"
    torch.save(src.state_dict(), path)
    m = create_model(name, head="6d", pretrained=str(path), input_size=64)
    ours, theirs = m.backbone.state_dict(), src.state_dict()
    trunk = [k for k in theirs if not k.startswith(classifier)]
    assert trunk and all(torch.equal(ours[k], theirs[k]) for k in trunk)
    assert m.metadata().provenance["imagenet_weights"] == path.name


def test_pretrained_accepts_wrapped_and_ddp_prefixed_dicts(tmp_path):
    src = create_backbone("resnet18", num_classes=1000)
    path = tmp_path / "wrapped.pth"
    torch.save({"state_dict": {"module." + k: v for k, v in src.state_dict().items()}, "epoch": 3}, path)
    m = create_model("resnet18", pretrained=str(path), input_size=64)
    assert torch.equal(m.backbone.conv1.weight, src.conv1.weight)


def test_pretrained_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        create_model("resnet18", pretrained=str(tmp_path / "nope.pth"))


def test_pretrained_wrong_architecture_is_a_clear_error(tmp_path):
    path = tmp_path / "r50.pth"
    torch.save(create_backbone("resnet50").state_dict(), path)
    with pytest.raises(ModelError, match="do not fit") as exc:
        create_model("resnet18", pretrained=str(path))
    assert "shape mismatch" in str(exc.value) or "unexpected keys" in str(exc.value)


def test_pretrained_not_a_state_dict(tmp_path):
    path = tmp_path / "junk.pth"
    path.write_bytes(b"this is not a torch file")
    with pytest.raises(ModelError, match="cannot read"):
        create_model("mobilenetv3_small", pretrained=str(path))


def test_repvgg_deploy_weights_load_into_deploy_form(tmp_path):
    src = create_backbone("repvgg_a0").eval()
    src.reparameterize()
    path = tmp_path / "a0_deploy.pth"
    torch.save(src.state_dict(), path)
    m = create_model("repvgg_a0", pretrained=str(path), input_size=64)
    assert m.is_deploy
    assert torch.equal(m.backbone.stage0.rbr_reparam.weight, src.stage0.rbr_reparam.weight)


def test_unknown_model_lists_available():
    with pytest.raises(ModelError, match="available: .*resnet18"):
        create_model("resnet999")
