#!/usr/bin/env bash
# The whole test suite, as CI runs it: starts (installing if missing) the
# private MariaDB and PostgreSQL servers on loopback, builds the test agent
# image when Docker is reachable, then runs every test of the workspace
# against SQLite, MariaDB, PostgreSQL and Docker.
#
# Env: CI=true makes a missing backend or Docker a failure instead of a
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

cargo test --workspace "$@"
