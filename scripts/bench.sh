#!/usr/bin/env bash
# Runs the job-pipeline benchmarks and prints their tables (Markdown; see
# docs/benchmarks.md for the method and a recorded run):
#   1. ingestion — POST /webhook/execute at 64 clients vs plain INSERT commits;
#   2. queue — drain by 1/2/4 `ccs worker` processes vs bare apalis workers,
#      enqueue-to-start latency, and the plan of apalis-mysql's fetch query.
# Starts MariaDB and PostgreSQL (scripts/db/start-all.sh), builds the release
# binaries (ccs, ccs-test-agent, bare-apalis-worker, the bench targets) into
# target/release, runs both benches, and keeps a copy of the output in
# target/bench/<time>.md.
# Takes about 6 minutes after the build on 2 cores.
#
# Env: CCS_BENCH_BACKENDS  backends to measure (default sqlite,mysql,postgres)
#      CCS_BENCH_REQUESTS  ingestion requests per backend and path (3000)
#      CCS_BENCH_JOBS      jobs per queue drain (1000)
#      CARGO_BUILD_JOBS    parallel compile jobs (default 1: the machine is shared)
#      CARGO_TARGET_DIR    as usual
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"

out="$(scripts/db/start-all.sh)" && eval "$out"

echo "[bench] building (-j $CARGO_BUILD_JOBS) …" >&2
# The `bench` profile is `release` (it inherits it). `ccs` is built together
# with ccs-bench so that both resolve the same dependency features and share
# one compiled ccs library; the test agent apart, for the same reason (its
# serde_json features differ).
cargo build --profile bench -p ccs-test-agent
cargo build --profile bench -p ccs -p ccs-bench --bins
cargo bench -p ccs-bench --no-run

target_dir="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target_dir/bench"
log="$target_dir/bench/$(date -u +%Y%m%dT%H%M%SZ).md"
{
  echo "# ccs benchmarks, $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo
  cargo bench -q -p ccs-bench --bench ingestion
  echo
  cargo bench -q -p ccs-bench --bench queue
} | tee "$log"
echo "[bench] output kept in $log" >&2
