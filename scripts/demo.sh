#!/usr/bin/env bash
# The main job: installs what is missing (scripts/setup.sh), then runs the offline demo
# (interim: train on the AFLW2000 fixtures + evaluate; see `edgepose demo --help`).
# Extra arguments go to `edgepose demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export EDGEPOSE_TEST_DATA=${EDGEPOSE_TEST_DATA:-$(cd .. && pwd)/shared/data}
exec .venv/bin/edgepose demo "$@"
