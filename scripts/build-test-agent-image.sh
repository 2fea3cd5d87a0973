#!/usr/bin/env bash
# Builds the test agent image `ccs-test-agent:latest` (or $CCS_TEST_AGENT_IMAGE)
# with no registry: `FROM scratch` plus the statically linked test agent, a
# static busybox as /bin/sh and the usual tools (a workflow's validation gate
# runs the project's test command with `sh -c` in the agent's image), a
# minimal /etc/passwd and /etc/group (user `agent`, uid/gid 1000), /tmp and
# /home/agent. The Docker runner's tests and benchmark run it.
#
# Reads: CCS_TEST_AGENT_IMAGE (default ccs-test-agent:latest);
#        CARGO_TARGET_DIR (default <repo>/target) - the static build goes to
#        $CARGO_TARGET_DIR/static so its RUSTFLAGS leave the main build alone;
#        CARGO_BUILD_JOBS (default: cargo's).
# Needs: cargo with the x86_64-unknown-linux-gnu target, docker, a static
#        busybox (Debian's busybox-static; installed here with apt-get when
#        missing and running as root).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
image="${CCS_TEST_AGENT_IMAGE:-ccs-test-agent:latest}"
target_dir="${CARGO_TARGET_DIR:-$repo/target}/static"
triple=x86_64-unknown-linux-gnu

log() { printf '[test-agent-image] %s\n' "$*" >&2; }

log "building the static test agent (target dir $target_dir)"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --manifest-path "$repo/Cargo.toml" --release -p ccs-test-agent \
  --target "$triple" --target-dir "$target_dir"
binary="$target_dir/$triple/release/ccs-test-agent"
# A static(-pie) binary names no shared library.
if ldd "$binary" 2>&1 | grep -q '=>'; then
  log "ERROR: $binary is dynamically linked"
  exit 1
fi

busybox="$(command -v busybox || true)"
if [ -z "$busybox" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  log "installing busybox-static"
  apt-get install -y -qq busybox-static >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq busybox-static >/dev/null; }
  busybox="$(command -v busybox || true)"
fi
if [ -z "$busybox" ] || ldd "$busybox" 2>&1 | grep -q '=>'; then
  log "ERROR: a static busybox is needed (apt-get install busybox-static)"
  exit 1
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/etc" "$context/rootfs/bin" \
  "$context/rootfs/tmp" "$context/rootfs/home/agent" "$context/rootfs/workspace"
cp "$binary" "$context/rootfs/usr/local/bin/ccs-test-agent"
cp "$busybox" "$context/rootfs/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -s busybox "$context/rootfs/bin/$applet"
done
cat >"$context/rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/sbin/nologin
agent:x:1000:1000:agent:/home/agent:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
PASSWD
cat >"$context/rootfs/etc/group" <<'GROUP'
root:x:0:
agent:x:1000:
nogroup:x:65534:
GROUP
cat >"$context/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/bin HOME=/home/agent LANG=C.UTF-8
USER 1000:1000
WORKDIR /workspace
ENTRYPOINT ["/usr/local/bin/ccs-test-agent"]
DOCKERFILE
# Ownership and modes as the image needs them, whoever runs the build.
chmod 1777 "$context/rootfs/tmp"
chmod 0755 "$context/rootfs/home/agent" "$context/rootfs/workspace"

log "building image $image"
# The classic builder needs nothing but the daemon (no buildx, no registry).
DOCKER_BUILDKIT=0 docker build --quiet --label ccs.test-agent=true \
  --tag "$image" "$context" >/dev/null
log "built $image"
echo "$image"
