#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts (installing if missing) the
# private MariaDB and PostgreSQL servers on loopback, builds the test agent
# image when Docker is reachable, installs the pinned Claude Code CLI
# (scripts/install-claude-cli.sh) and builds its agent image
# (scripts/build-claude-image.sh), then runs every test of the workspace
# against SQLite, MariaDB, PostgreSQL, Docker and the real CLI.
#
# Env: CI=true makes a missing backend, Docker or the CLI a failure instead of a
# skip (CCS_REQUIRE_ALL_BACKENDS=1, CCS_REQUIRE_DOCKER=1). Extra arguments
# go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${CI:-}" = "true" ]; then
  export CCS_REQUIRE_ALL_BACKENDS=1 CCS_REQUIRE_DOCKER=1
fi

eval "$(scripts/db/start-all.sh)"
export CCS_TEST_MYSQL_URL CCS_TEST_POSTGRES_URL

if [ -x scripts/build-test-agent-image.sh ]; then
  if docker info >/dev/null 2>&1; then
    scripts/build-test-agent-image.sh >&2
  elif [ "${CCS_REQUIRE_DOCKER:-}" = "1" ]; then
    echo "error: Docker is required (CCS_REQUIRE_DOCKER=1) but not reachable" >&2
    exit 1
  else
    echo "warning: Docker not reachable; Docker runner tests will be skipped" >&2
  fi
fi

# The pinned Claude Code CLI for tests/real_cli.rs (which, with CI=true,
# fail when it is missing).
if CCS_CLAUDE_CLI="$(scripts/install-claude-cli.sh)"; then
  export CCS_CLAUDE_CLI
elif [ "${CI:-}" = "true" ]; then
  echo "error: could not install the Claude Code CLI (scripts/install-claude-cli.sh)" >&2
  exit 1
else
  echo "warning: no Claude Code CLI; the real-CLI tests will be skipped" >&2
fi

# The real CLI's agent image (debootstrap'd Debian, no registry) for the
# Docker test of tests/real_cli.rs; with CI=true a failed build fails.
if docker info >/dev/null 2>&1; then
  if ! scripts/build-claude-image.sh >&2; then
    if [ "${CI:-}" = "true" ]; then
      echo "error: could not build the real-CLI image (scripts/build-claude-image.sh)" >&2
      exit 1
    fi
    echo "warning: no real-CLI image; its Docker test will be skipped" >&2
  fi
fi

# promtool (Debian's `prometheus` package) checks /metrics in tests/cli.rs;
# with CI=true a missing promtool fails that test (.ci/run installs it).
if ! command -v promtool >/dev/null 2>&1; then
  echo "warning: no promtool (apt-get install prometheus); the /metrics lint is skipped" >&2
fi

cargo test --workspace "$@"

# The dashboard in headless Chromium (with CI=true a missing browser fails).
scripts/browser-test.sh
