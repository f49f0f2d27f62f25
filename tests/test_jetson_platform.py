"""Jetson / TensorRT version gates and DLA rules (no TensorRT needed)."""
from __future__ import annotations

import pytest

from edgepose.errors import UserError
from edgepose.jetson.platform import (DlaUnsupportedError, JetsonInfo, TrtVersion, UnsupportedTensorRTError,
                                      check_dla, dla_support, jetpack_for_l4t, read_jetson_info)

AGX = "NVIDIA Jetson AGX Orin Developer Kit"
NX = "NVIDIA Jetson Orin NX Engineering Reference Developer Kit"
NANO = "NVIDIA Jetson Orin Nano Developer Kit"
THOR = "NVIDIA Jetson AGX Thor Developer Kit"


def fake_root(tmp_path, release: str | None, model: str | None):
    if release is not None:
        (tmp_path / "etc").mkdir(parents=True, exist_ok=True)
        (tmp_path / "etc" / "nv_tegra_release").write_text(release + "\n")
    if model is not None:
        (tmp_path / "proc" / "device-tree").mkdir(parents=True, exist_ok=True)
        (tmp_path / "proc" / "device-tree" / "model").write_bytes(model.encode() + b"\x00")
    return tmp_path


R36 = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024"
R38 = "# R38 (release), REVISION: 2.0, GCID: 40000000, BOARD: generic, EABI: aarch64, DATE: Mon Aug 25 00:00:00 UTC 2025"


@pytest.mark.parametrize("text,expected", [("10.3.0.30", (10, 3, 0)), ("11.4.1", (11, 4, 1)), ("11", (11, 0, 0)),
                                           ("8.6.2.3", (8, 6, 2))])
def test_version_parse(text, expected):
    v = TrtVersion.parse(text)
    assert (v.major, v.minor, v.patch) == expected
    assert v.is_trt10 == (expected[0] == 10) and v.is_trt11 == (expected[0] == 11)
    assert v.weakly_typed_available == (expected[0] <= 10)


def test_version_gate_refuses_trt8():
    with pytest.raises(UnsupportedTensorRTError, match="JetPack 6.1"):
        TrtVersion.parse("8.6.2").require_supported()
    TrtVersion.parse("10.3").require_supported()
    TrtVersion.parse("11.4.0").require_supported()
    with pytest.raises(ValueError):
        TrtVersion.parse("abc")


def test_read_jetson_info(tmp_path):
    info = read_jetson_info(fake_root(tmp_path, R36, AGX))
    assert info.is_jetson and info.l4t == "36.4.0" and info.jetpack_major == 6
    assert info.family == "agx-orin" and info.dla_cores == 2 and info.model == AGX


def test_desktop_and_env_root(tmp_path, monkeypatch):
    assert not read_jetson_info(tmp_path).is_jetson
    assert read_jetson_info(tmp_path).family == "desktop"
    monkeypatch.setenv("EDGEPOSE_JETSON_ROOT", str(fake_root(tmp_path / "j", R38, THOR)))
    info = read_jetson_info()
    assert info.jetpack_major == 7 and info.family == "thor" and info.dla_cores == 0


def test_jetpack_mapping():
    assert [jetpack_for_l4t(v) for v in ("35.5.0", "36.4.0", "38.2.0", "39.0", "32.7")] == [5, 6, 7, 7, None]


@pytest.mark.parametrize("trt,model,ok,why", [
    ("10.3.0", AGX, True, ""),
    ("10.3.0", NX, True, ""),
    ("10.3.0", NANO, False, "no DLA"),
    ("10.13.0", THOR, False, "Thor has no DLA"),
    ("11.0.0", AGX, False, "11.4.1"),
    ("11.4.0", AGX, False, "11.4.1"),
    ("11.4.1", AGX, True, ""),
    ("11.4.1", NX, False, "AGX Orin only"),
    ("11.5.0", AGX, True, ""),
])
def test_dla_matrix(tmp_path, trt, model, ok, why):
    info = read_jetson_info(fake_root(tmp_path, R36 if "Thor" not in model else R38, model))
    got, reason = dla_support(TrtVersion.parse(trt), info)
    assert got == ok
    assert why in reason


def test_dla_refused_on_desktop_and_bad_core(tmp_path):
    with pytest.raises(DlaUnsupportedError, match="only available on NVIDIA Jetson"):
        check_dla(TrtVersion.parse("10.3"), JetsonInfo(), 0)
    info = read_jetson_info(fake_root(tmp_path, R36, AGX))
    check_dla(TrtVersion.parse("10.3"), info, 1)
    with pytest.raises(DlaUnsupportedError, match="has 2 DLA core"):
        check_dla(TrtVersion.parse("10.3"), info, 2)
    assert issubclass(DlaUnsupportedError, UserError)
