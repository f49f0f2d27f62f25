#!/usr/bin/env bash
# The test command: installs what is missing (scripts/setup.sh), then runs the test suite.
# By default tests marked `slow` (long training / export runs) are skipped to keep the suite
# under ~10 minutes on 2 cores; run them with `bash scripts/test.sh -m slow`, everything with
# `bash scripts/test.sh -m "slow or not slow"`.  Other arguments go to pytest (e.g. `-k geometry`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export EDGEPOSE_TEST_DATA=${EDGEPOSE_TEST_DATA:-$(cd .. && pwd)/shared/data}
# The import-layering contract (.importlinter) first: a violation fails the run before pytest.
if ! lint=$(.venv/bin/python scripts/lint_imports.py 2>&1); then
  printf '%s\n' "$lint"; exit 1
fi
printf '%s\n' "$lint" | grep -E '^Contracts:' || true
marker=(-m "not slow")
for a in "$@"; do [ "$a" = "-m" ] && marker=(); done
exec .venv/bin/python -m pytest -q -p no:cacheprovider "${marker[@]}" "$@"
