#!/usr/bin/env bash
# Container overhead: how long from the moment a worker claims a job to the
# agent's first stdout line, with the Docker runner — beside `docker run --rm`
# of the same image measured in the same run (and, for reference, the process
# runner). Prints a Markdown table (p50, p99, ratio); docs/benchmarks.md
# ("Container overhead") records a run and explains the method.
#
# ccs side: `ccs up --runner docker` on SQLite, one execution at a time
# (`@result=ok`), CCS_BENCH_RUNS of them after one warm-up; the latency of a
# run is the `at` of its first agent log line (the `system`/`init` line)
# minus the execution's `startedAt` (set when the worker claims it). Both are
# written by the worker, so the API's polling does not count.
# Baseline: `docker run --rm IMAGE -p … --output-format stream-json
# --verbose`, from spawning the CLI to its first stdout line.
#
# Env: CCS_BENCH_RUNS     runs per variant (default 20)
#      CCS_TEST_AGENT_IMAGE  the image (default ccs-test-agent:latest; built
#                         by scripts/build-test-agent-image.sh if missing)
#      CARGO_BUILD_JOBS   parallel compile jobs (default 1: the machine is shared)
#      CARGO_TARGET_DIR   as usual
# Needs: docker, python3, curl.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
export CARGO_BUILD_JOBS="${CARGO_BUILD_JOBS:-1}"
runs="${CCS_BENCH_RUNS:-20}"
image="${CCS_TEST_AGENT_IMAGE:-ccs-test-agent:latest}"
target_dir="${CARGO_TARGET_DIR:-$root/target}"

log() { printf '[bench-container] %s\n' "$*" >&2; }

if ! docker image inspect "$image" >/dev/null 2>&1; then
  CCS_TEST_AGENT_IMAGE="$image" scripts/build-test-agent-image.sh >/dev/null
fi
log "building ccs and the test agent (release, -j $CARGO_BUILD_JOBS)"
cargo build --release -p ccs -p ccs-test-agent --bins >&2
ccs="$target_dir/release/ccs"
agent="$target_dir/release/ccs-test-agent"

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/project"
echo "a benchmark project" >"$work/project/README.md"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# start_ccs NAME ARGS… : `ccs up` in its own data dir; sets URL and KEY.
start_ccs() {
  local name="$1"; shift
  local port; port="$(free_port)"
  local dir="$work/$name"
  mkdir -p "$dir"
  "$ccs" up --data-dir "$dir" --listen "127.0.0.1:$port" --worker-listen 127.0.0.1:0 \
    --concurrency 1 --poll-interval 20ms "$@" >"$dir/out.log" 2>"$dir/err.log" &
  pids+=("$!")
  URL="http://127.0.0.1:$port"
  for _ in $(seq 1 200); do
    KEY="$(sed -n 's/^admin api key: //p' "$dir/out.log")"
    if [ -n "$KEY" ] && curl -fs "$URL/healthz" >/dev/null; then break; fi
    sleep 0.1
  done
  [ -n "$KEY" ] || { cat "$dir/err.log" >&2; log "ccs did not start"; exit 1; }
  CCS_DATA_DIR="$dir" "$ccs" project add --name bench --path "$work/project" >/dev/null
}

# measure_ccs LABEL: one warm-up, then $runs executions; prints latencies (ms).
measure_ccs() {
  python3 - "$URL" "$KEY" "$runs" <<'PY'
import json, sys, time, urllib.request
from datetime import datetime
url, key, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def call(method, path, body=None):
    req = urllib.request.Request(url + path, method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.loads(r.read() or b"null")
def ms(t):
    return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp() * 1000
out = []
for i in range(runs + 1):
    eid = call("POST", "/webhook/execute", {"project": "bench", "prompt": "@result=ok", "source": "custom"})["executionId"]
    while True:
        e = call("GET", f"/api/v1/executions/{eid}")
        if e["status"] not in ("queued", "running"):
            break
        time.sleep(0.02)
    if e["status"] != "succeeded":
        sys.exit(f"execution {eid} ended {e['status']}: {e.get('error')}")
    logs = call("GET", f"/api/v1/executions/{eid}/logs")["logs"]
    first = next(l for l in logs if l["kind"] != "ccs")
    if i > 0:  # the first run is a warm-up
        out.append(ms(first["at"]) - ms(e["startedAt"]))
print(" ".join(f"{v:.1f}" for v in out))
PY
}

# measure_docker_run: $runs `docker run --rm` to the first stdout line (ms).
measure_docker_run() {
  python3 - "$image" "$runs" <<'PY'
import subprocess, sys, time
image, runs = sys.argv[1], int(sys.argv[2])
cmd = ["docker", "run", "--rm", image, "-p", "@result=ok", "--output-format", "stream-json", "--verbose"]
out = []
for i in range(runs + 1):
    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    p.stdout.readline()
    took = (time.monotonic() - start) * 1000
    p.stdout.read(); p.wait()
    if i > 0:
        out.append(took)
print(" ".join(f"{v:.1f}" for v in out))
PY
}

log "docker run --rm $image × $runs"
baseline="$(measure_docker_run)"

log "ccs up --runner docker × $runs"
start_ccs docker --runner docker --agent-command ccs-test-agent --agent-image "$image"
docker_ccs="$(measure_ccs)"

log "ccs up --runner process × $runs (reference)"
start_ccs process --runner process --agent-command "$agent"
process_ccs="$(measure_ccs)"

python3 - "$runs" "$baseline" "$docker_ccs" "$process_ccs" "$(docker version --format '{{.Server.Version}}')" "$(nproc)" <<'PY'
import sys
runs = sys.argv[1]
def pct(values, p):
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100 * len(v) + 0.5)) - 1))
    return v[k]
rows = [("`docker run --rm` (baseline)", sys.argv[2]),
        ("ccs, Docker runner: claim → first line", sys.argv[3]),
        ("ccs, process runner: claim → first line (reference)", sys.argv[4])]
base = [float(x) for x in sys.argv[2].split()]
print(f"Container overhead — {runs} runs each, Docker {sys.argv[5]}, {sys.argv[6]} cores\n")
print("| path | p50 ms | p99 ms | p50 ratio to baseline | p99 ratio |")
print("|---|---:|---:|---:|---:|")
for name, text in rows:
    v = [float(x) for x in text.split()]
    p50, p99 = pct(v, 50), pct(v, 99)
    print(f"| {name} | {p50:.0f} | {p99:.0f} | {p50 / pct(base, 50):.2f} | {p99 / pct(base, 99):.2f} |")
PY
