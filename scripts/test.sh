#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs the test suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k geometry`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export EDGEPOSE_TEST_DATA=${EDGEPOSE_TEST_DATA:-$(cd .. && pwd)/shared/data}
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
