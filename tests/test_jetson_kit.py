"""Jetson kit on the CPU: setup script dry-run, Dockerfile, systemd unit, DeepStream config, power parsing."""
from __future__ import annotations

import configparser
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from edgepose.errors import ModelError
from edgepose.jetson.deepstream import SgieOptions, sgie_config, single_scale_factor, write_sgie_config
from edgepose.jetson.power import parse_jetson_clocks_show, parse_nvpmodel_query, read_power_state
from edgepose.metadata import ArtifactMetadata, save_sidecar
from edgepose.preprocess import PreprocessSpec

JETSON = Path(__file__).resolve().parents[1] / "jetson"
SCRIPT = JETSON / "setup_jetson.sh"
R36 = "# R36 (release), REVISION: 4.0, GCID: 37537400, BOARD: generic, EABI: aarch64, DATE: Fri Sep 13 04:36:44 UTC 2024"
R363 = "# R36 (release), REVISION: 3.0, GCID: 36191598, BOARD: generic, EABI: aarch64, DATE: Mon May  6 17:34:21 UTC 2024"
R38 = "# R38 (release), REVISION: 2.0, GCID: 40000000, BOARD: generic, EABI: aarch64, DATE: Mon Aug 25 00:00:00 UTC 2025"
R35 = "# R35 (release), REVISION: 5.0, GCID: 35550185, BOARD: t186ref, EABI: aarch64, DATE: Tue Feb 20 04:46:31 UTC 2024"


# --- setup script ----------------------------------------------------------------------------

def dry_run(tmp_path, release: str | None, *args: str) -> subprocess.CompletedProcess:
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True, exist_ok=True)
    if release is not None:
        (root / "etc" / "nv_tegra_release").write_text(release + "\n")
    env = dict(os.environ, EDGEPOSE_JETSON_ROOT=str(root), HOME=str(tmp_path))
    return subprocess.run(["bash", str(SCRIPT), "--dry-run", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def commands(out: str) -> list[str]:
    return [ln[2:] for ln in out.splitlines() if ln.startswith("+ ")]


def test_setup_plan_jetpack6(tmp_path):
    r = dry_run(tmp_path, R36, "--venv", str(tmp_path / "venv"))
    assert r.returncode == 0, r.stderr
    assert "L4T: 36.4.0  JetPack: 6" in r.stdout
    cmds = commands(r.stdout)
    apt = next(c for c in cmds if "apt-get install" in c)
    for pkg in ("python3-libnvinfer", "python3-gi", "gstreamer1.0-plugins-good", "gir1.2-gst-rtsp-server-1.0"):
        assert pkg in apt
    venv = next(c for c in cmds if " -m venv " in c)
    assert venv.startswith("python3.10 ") and "--system-site-packages" in venv
    assert any("--no-deps -e" in c for c in cmds)  # edgepose without the torch CPU wheel
    deps = next(c for c in cmds if "opencv-python-headless" in c)
    assert "torch" not in deps and "numpy\\>=1.24\\,\\<2" in deps
    pycuda = next(c for c in cmds if "pycuda" in c and "install" in c)
    assert "CUDA_ROOT=/usr/local/cuda" in pycuda and "/usr/local/cuda/bin" in pycuda
    assert not (tmp_path / "venv").exists()  # dry run: nothing executed


def test_setup_plan_jetpack7_differs(tmp_path):
    six = commands(dry_run(tmp_path / "a", R36).stdout)
    r = dry_run(tmp_path / "b", R38)
    assert r.returncode == 0, r.stderr
    seven = commands(r.stdout)
    assert "JetPack: 7" in r.stdout
    assert next(c for c in seven if " -m venv " in c).startswith("python3.12 ")
    assert "python3.12-venv" in next(c for c in seven if "apt-get install" in c)
    assert "python3.12-venv" not in next(c for c in six if "apt-get install" in c)
    deps7 = next(c for c in seven if "opencv-python-headless" in c)
    assert "\\<2" not in deps7.split("opencv")[0]  # numpy 2 allowed on JetPack 7
    assert set(six) != set(seven)


@pytest.mark.parametrize("release,args,match", [
    (None, (), "not a Jetson"),
    (R35, (), "JetPack 5"),
    (R363, (), "JetPack 6.0"),
    (R36, ("--jetpack", "x"), "needs a number"),
    (R36, ("--bogus",), "unknown option"),
])
def test_setup_refusals(tmp_path, release, args, match):
    r = dry_run(tmp_path, release, *args)
    assert r.returncode == 2
    assert match in r.stderr
    assert not commands(r.stdout)


def test_setup_force_on_non_jetson(tmp_path):
    r = dry_run(tmp_path, None, "--force")
    assert r.returncode == 2 and "--jetpack" in r.stderr  # forced, but the JetPack must be named
    r = dry_run(tmp_path, None, "--force", "--jetpack", "6", "--no-apt")
    assert r.returncode == 0, r.stderr
    cmds = commands(r.stdout)
    assert not any("apt-get" in c for c in cmds) and any(" -m venv " in c for c in cmds)


def test_cli_setup_dry_run(tmp_path, monkeypatch, capfd):
    from edgepose.cli.main import main

    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "nv_tegra_release").write_text(R36 + "\n")
    monkeypatch.setenv("EDGEPOSE_JETSON_ROOT", str(root))
    assert main(["jetson", "setup", "--", "--dry-run", "--no-apt"]) == 0
    assert "JetPack: 6" in capfd.readouterr().out


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck not installed")
def test_shellcheck():
    subprocess.run(["shellcheck", "-S", "warning", str(SCRIPT)], check=True)


# --- Dockerfile and systemd -----------------------------------------------------------------

def test_dockerfile():
    text = (JETSON / "Dockerfile").read_text()
    assert "FROM nvcr.io/nvidia/l4t-jetpack:${L4T_TAG}" in text and "ARG L4T_TAG=r36." in text
    assert "setup_jetson.sh --force --jetpack 6" in text


def test_systemd_unit():
    cp = configparser.ConfigParser(interpolation=None, strict=False)
    cp.optionxform = str
    cp.read(JETSON / "systemd" / "edgepose-dms.service")
    svc = cp["Service"]
    assert svc["Restart"] == "always" and svc["User"] == "edgepose" and svc["KillSignal"] == "SIGINT"
    assert svc["EnvironmentFile"] == "/etc/edgepose/edgepose-dms.env"
    cmd = svc["ExecStart"]
    for part in ("edgepose run ${EDGEPOSE_SOURCE}", "--model ${EDGEPOSE_MODEL}", "--dms ${EDGEPOSE_DMS}",
                 "--jsonl ${EDGEPOSE_JSONL}", "--dms-events ${EDGEPOSE_EVENTS}"):
        assert part in cmd
    env = dict(ln.split("=", 1) for ln in (JETSON / "systemd" / "edgepose-dms.env").read_text().splitlines()
               if ln and not ln.startswith("#"))
    assert env["EDGEPOSE_SOURCE"] == "csi://0" and env["EDGEPOSE_MODEL"].endswith(".plan")
    assert env["EDGEPOSE_EVENTS"] != env["EDGEPOSE_JSONL"]  # edgepose run refuses one file for both
    from edgepose.dms.config import shipped_presets

    assert env["EDGEPOSE_DMS"] in shipped_presets()  # the default names a preset that ships
    # every flag the unit passes exists in `edgepose run`
    import argparse

    from edgepose.cli import run as run_cli

    p = argparse.ArgumentParser()
    run_cli.add_arguments(p)
    args = p.parse_args(["csi://0", "--model", "m.plan", "--dms", "d.yaml", "--jsonl", "o.jsonl", "--dms-events",
                         "e.jsonl", "--platform", "jetson", "--device", "cuda", "--quiet"])
    assert args.platform == "jetson" and args.quiet


# --- DeepStream config ----------------------------------------------------------------------

def parse_ini(text: str) -> dict:
    cp = configparser.ConfigParser()
    cp.optionxform = str
    cp.read_string(text)
    return dict(cp["property"])


def meta(order="RGB", channels=3, precision="fp16", mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225)):
    spec = PreprocessSpec(input_size=112, color_order=order, channels=channels, mean=mean, std=std)
    return ArtifactMetadata(model="mobilenetv3_small", preprocess=spec, precision=precision, format="onnx")


def test_single_scale_factor():
    k, err = single_scale_factor(1 / 255, (0.229, 0.224, 0.225))
    scales = [1 / 255 / s for s in (0.229, 0.224, 0.225)]
    rel = [abs(k / s - 1) for s in scales]
    assert max(rel) == pytest.approx(err) and 0.005 < err < 0.02
    # minimax: no other single factor has a smaller worst relative error
    for other in np.linspace(min(scales), max(scales), 41):
        assert max(abs(other / s - 1) for s in scales) >= err - 1e-12
    k2, err2 = single_scale_factor(1 / 255, (0.5, 0.5, 0.5))
    assert err2 == 0 and k2 == pytest.approx(1 / 255 / 0.5)


@pytest.mark.parametrize("order,fmt", [("RGB", "0"), ("BGR", "1")])
def test_sgie_values_from_metadata(tmp_path, order, fmt):
    m = meta(order)
    prop = parse_ini(sgie_config(tmp_path / "pose.onnx", m, SgieOptions(batch_size=8, min_face=40)))
    assert prop["network-type"] == "100" and prop["output-tensor-meta"] == "1" and prop["process-mode"] == "2"
    assert prop["gie-unique-id"] == "2" and prop["operate-on-gie-id"] == "1"
    assert prop["model-color-format"] == fmt and prop["network-mode"] == "2"
    assert prop["batch-size"] == "8" and prop["input-object-min-width"] == prop["input-object-min-height"] == "40"
    assert prop["infer-dims"] == "3;112;112"
    offsets = [float(v) for v in prop["offsets"].split(";")]
    assert np.allclose(offsets, np.array(m.preprocess.mean) * 255, atol=1e-3)
    k, _ = single_scale_factor(m.preprocess.pixel_scale, m.preprocess.std)
    assert float(prop["net-scale-factor"]) == pytest.approx(k, rel=1e-8)
    assert prop["onnx-file"].endswith("pose.onnx") and prop["model-engine-file"].endswith(".engine")
    assert prop["output-blob-names"] == "rotation;euler"
    # nvinfer's y = k (x - offset) approximates edgepose's normalisation within the stated error
    x = np.arange(256, dtype=np.float64)[:, None]
    ours = (x * m.preprocess.pixel_scale - np.array(m.preprocess.mean)) / np.array(m.preprocess.std)
    theirs = float(prop["net-scale-factor"]) * (x - np.array(offsets))
    _, err = single_scale_factor(m.preprocess.pixel_scale, m.preprocess.std)
    assert np.all(np.abs(theirs - ours) <= err * np.abs(ours) + 1e-4)


def test_sgie_gray_int8_dla_engine(tmp_path):
    m = meta("GRAY", channels=1, precision="int8-tensorrt", mean=(0.5,), std=(0.25,))
    prop = parse_ini(sgie_config(tmp_path / "pose.int8.plan", m, SgieOptions(dla_core=1)))
    assert prop["model-color-format"] == "2" and prop["network-mode"] == "1" and prop["infer-dims"] == "1;112;112"
    assert prop["offsets"] == "127.5" and float(prop["net-scale-factor"]) == pytest.approx(1 / 255 / 0.25)
    assert prop["model-engine-file"].endswith("pose.int8.plan") and "onnx-file" not in prop
    assert prop["enable-dla"] == "1" and prop["use-dla-core"] == "1"
    assert parse_ini(sgie_config(tmp_path / "p.onnx", meta(precision="fp32"), SgieOptions()))["network-mode"] == "0"


def test_sgie_errors(tmp_path, capsys):
    with pytest.raises(ModelError, match="1-channel"):
        sgie_config(tmp_path / "p.onnx", meta("GRAY", channels=3, mean=(0.5,), std=(0.25,)), SgieOptions())
    with pytest.raises(ModelError, match="network-mode"):
        sgie_config(tmp_path / "p.onnx", meta(precision="int8-cpu"), SgieOptions())
    from edgepose.cli.main import main

    model = tmp_path / "pose.onnx"
    model.write_bytes(b"")  # the generator reads only the sidecar
    assert main(["jetson", "deepstream-config", str(model), "-o", str(tmp_path / "s.txt")]) == 2
    assert "no edgepose metadata" in capsys.readouterr().err
    save_sidecar(model, meta("BGR"), hash_file=False)
    assert main(["jetson", "deepstream-config", str(model), "-o", str(tmp_path / "s.txt"), "--batch-size", "4",
                 "--precision", "int8"]) == 0
    prop = parse_ini((tmp_path / "s.txt").read_text())
    assert prop["batch-size"] == "4" and prop["network-mode"] == "1" and prop["model-color-format"] == "1"
    assert main(["jetson", "deepstream-config", str(tmp_path / "missing.onnx"), "-o", str(tmp_path / "x")]) == 2
    assert write_sgie_config(model, tmp_path / "w.txt").is_file()


# --- nvpmodel / jetson_clocks -----------------------------------------------------------------

NVPMODEL_Q = """NVPM WARN: fan mode is not set!
NV Power Mode: MAXN
0
"""

CLOCKS_LOCKED = """SOC family:tegra234  Machine:NVIDIA Jetson AGX Orin Developer Kit
Online CPUs: 0-11
cpu0: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
cpu1: Online=1 Governor=schedutil MinFreq=2201600 MaxFreq=2201600 CurrentFreq=2201600 IdleStates: WFI=0 c7=0
GPU MinFreq=1300500000 MaxFreq=1300500000 CurrentFreq=1300500000
EMC MinFreq=204000000 MaxFreq=3199000000 CurrentFreq=3199000000 FreqOverride=1
DLA0_CORE MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
DLA1_CORE MinFreq=0 MaxFreq=1600000000 CurrentFreq=1600000000
FAN Dynamic Speed control=active hwmon4_pwm=76
NV Power Mode: MAXN
"""

CLOCKS_DYNAMIC = CLOCKS_LOCKED.replace("MinFreq=2201600", "MinFreq=115200").replace(
    "GPU MinFreq=1300500000", "GPU MinFreq=306000000").replace("NV Power Mode: MAXN", "NV Power Mode: 15W")


def test_parse_nvpmodel():
    assert parse_nvpmodel_query(NVPMODEL_Q) == {"mode": "MAXN", "id": 0}
    assert parse_nvpmodel_query("NV Power Mode: 15W\n1\n") == {"mode": "15W", "id": 1}
    with pytest.raises(ValueError):
        parse_nvpmodel_query("garbage")


def test_parse_jetson_clocks():
    info = parse_jetson_clocks_show(CLOCKS_LOCKED)
    assert info["soc"] == "tegra234" and info["machine"] == "NVIDIA Jetson AGX Orin Developer Kit"
    assert info["online_cpus"] == "0-11" and info["power_mode"] == "MAXN"
    assert info["cpus"]["cpu0"]["Governor"] == "schedutil" and info["cpus"]["cpu1"]["MaxFreq"] == 2201600
    assert info["engines"]["GPU"]["CurrentFreq"] == 1300500000 and "DLA1_CORE" in info["engines"]
    assert info["locked"] is True
    dyn = parse_jetson_clocks_show(CLOCKS_DYNAMIC)
    assert dyn["locked"] is False and dyn["power_mode"] == "15W"


def test_read_power_state():
    outputs = {"nvpmodel": NVPMODEL_Q, "jetson_clocks": CLOCKS_LOCKED}
    state = read_power_state(run=lambda cmd: outputs[cmd[0]], which=lambda name: f"/usr/bin/{name}")
    assert state["available"] and state["nvpmodel"]["mode"] == "MAXN" and state["jetson_clocks"]["locked"]
    failing = read_power_state(run=lambda cmd: None, which=lambda name: f"/usr/sbin/{name}")
    assert not failing["available"] and any("sudo" in e for e in failing["errors"])
    desktop = read_power_state(which=lambda name: None)
    assert not desktop["available"] and "not a Jetson" in desktop["errors"][0]
