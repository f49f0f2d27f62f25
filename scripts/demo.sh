#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), then runs the offline demo:
# a synthetic driver video with known poses -> face detection + the shipped default pose model ->
# DMS (Euro NCAP 2023 preset) -> annotated mp4, JSONL, DMS events and accuracy vs ground truth in
# ./edgepose-demo/ (docs/demo.md).  No network, no GPU.  Extra arguments go to `edgepose demo`,
# e.g. `bash scripts/demo.sh --source my_drive.mp4` or `--seconds 10`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/edgepose demo "$@"
