#!/usr/bin/env bash
# The dashboard in a real headless Chromium (tests/browser/test_dashboard.py):
# builds ccs and the test agent, installs Selenium into a virtualenv under
# target/, and runs the script against `ccs up` on SQLite. Screenshots of
# every page go to docs/screenshots/ (CCS_SCREENSHOTS to change).
#
# Needs Debian's `chromium` and `chromium-driver` (.ci/run installs them).
# With CI=true a missing browser fails; otherwise it is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
  if [ "${CI:-}" = "true" ]; then
    echo "error: chromium and chromium-driver are required (apt-get install chromium chromium-driver)" >&2
    exit 1
  fi
  echo "warning: no chromium/chromedriver; the browser tests are skipped" >&2
  exit 0
fi

cargo build -q -p ccs -p ccs-test-agent
target="${CARGO_TARGET_DIR:-target}"
venv="$target/browser-venv"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install -q 'selenium>=4.20,<5'

export CCS_BIN="$target/debug/ccs" CCS_TEST_AGENT="$target/debug/ccs-test-agent"
export CCS_SCREENSHOTS="${CCS_SCREENSHOTS:-docs/screenshots}"
"$venv/bin/python" tests/browser/test_dashboard.py
