#!/usr/bin/env bash
# Builds the agent image with the real Claude Code CLI, `ccs-claude:<CLI
# version>` (or $CCS_CLAUDE_IMAGE), with no registry: debootstrap makes a
# minimal Debian rootfs (variant minbase) from Debian's mirror, with
# ca-certificates and git; the pinned CLI (scripts/install-claude-cli.sh) is
# copied to /usr/local/bin/claude; user `agent` (uid/gid 1000, home
# /home/agent) and /workspace are made; apt's caches, docs, man pages and
# locales are removed; `tar | docker import` makes the image with
# ENTRYPOINT/USER/WORKDIR/ENV set by `--change`.
#
#   scripts/build-claude-image.sh          # prints the image's tag on stdout
#
# Idempotent: when the tag exists it does nothing (`docker rmi` it to
# rebuild). Projects name it in container.yaml (`baseImage:
# ccs-claude:2.1.332`), or the worker takes it as --agent-image with
# --agent-command claude.
#
# Reads: CCS_CLAUDE_IMAGE (default ccs-claude:<CLI version>);
#        CCS_DEBIAN_SUITE (default bookworm);
#        CCS_DEBIAN_MIRROR (default http://deb.debian.org/debian).
# Needs: root (debootstrap chroots), docker, debootstrap (installed here
#        with apt-get when missing), python3 with pip (the CLI's install).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
suite="${CCS_DEBIAN_SUITE:-bookworm}"
mirror="${CCS_DEBIAN_MIRROR:-http://deb.debian.org/debian}"

log() { printf '[claude-image] %s\n' "$*" >&2; }

cli="$("$repo/scripts/install-claude-cli.sh")"
version="$("$cli" --version | awk '{print $1}')"
image="${CCS_CLAUDE_IMAGE:-ccs-claude:$version}"

if docker image inspect "$image" >/dev/null 2>&1; then
  log "$image exists"
  echo "$image"
  exit 0
fi

if [ "$(id -u)" != 0 ]; then
  log "ERROR: debootstrap needs root"
  exit 1
fi
if ! command -v debootstrap >/dev/null; then
  log "installing debootstrap"
  apt-get install -y -qq debootstrap >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; }
fi

work="$(mktemp -d)"
rootfs="$work/rootfs"
cleanup() {
  # debootstrap mounts /proc and /sys in the rootfs; a failed run may leave them.
  for m in proc sys; do
    if mountpoint -q "$rootfs/$m" 2>/dev/null; then umount -l "$rootfs/$m" || true; fi
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

log "debootstrap $suite (minbase) from $mirror"
debootstrap --variant=minbase --include=ca-certificates,git \
  "$suite" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
  { tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

install -m 0755 "$cli" "$rootfs/usr/local/bin/claude"
chroot "$rootfs" groupadd --gid 1000 agent
chroot "$rootfs" useradd --uid 1000 --gid 1000 --create-home \
  --home-dir /home/agent --shell /bin/bash agent
install -d -m 0755 -o 1000 -g 1000 "$rootfs/workspace"
# Every library the CLI links must be in the rootfs.
if chroot "$rootfs" ldd /usr/local/bin/claude | grep -q 'not found'; then
  chroot "$rootfs" ldd /usr/local/bin/claude >&2
  log "ERROR: the CLI misses a library in the rootfs"
  exit 1
fi
chroot "$rootfs" /usr/local/bin/claude --version >/dev/null

# Small: no apt caches or lists, docs, man pages, locales, logs.
rm -rf "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/* \
  "$rootfs"/usr/share/locale/* "$rootfs"/var/log/* "$rootfs"/var/cache/debconf/*-old \
  "$rootfs"/tmp/* "$rootfs"/var/tmp/*
# No fixed resolver or hostname from the build host (Docker supplies them).
: >"$rootfs/etc/resolv.conf"
: >"$rootfs/etc/hostname"

log "importing $image"
tar --numeric-owner --one-file-system -C "$rootfs" -c . | docker import \
  --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV HOME=/home/agent' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'USER 1000:1000' \
  --change 'WORKDIR /workspace' \
  --change 'ENTRYPOINT ["/usr/local/bin/claude"]' \
  --change "LABEL ccs.claude-cli=$version" \
  - "$image" >/dev/null
log "built $image ($(docker image inspect --format '{{.Size}}' "$image") bytes)"
echo "$image"
