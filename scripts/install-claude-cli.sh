#!/usr/bin/env bash
# Installs the Claude Code CLI version ccs is tested with, from PyPI's
# `claude-agent-sdk` wheel (which bundles the CLI binary as
# `claude_agent_sdk/_bundled/claude`), checking the wheel's sha256.
#
#   scripts/install-claude-cli.sh [DEST]     # default DEST: .ccs-tools/claude
#
# Idempotent: when DEST already is the pinned version it does nothing. Prints
# the installed binary's path on stdout (everything else goes to stderr), so
#   CCS_AGENT_COMMAND="$(scripts/install-claude-cli.sh)"
# works. Needs python3 with pip (pip downloads the wheel; python's zipfile
# extracts the one file).
#
# To move to a newer CLI: change the three pins below together (the wheel's
# sha256 is on its PyPI page, or `sha256sum` of the downloaded wheel), run
# the real-CLI tests (`cargo test --test real_cli`), and update README.md.
set -euo pipefail

SDK_VERSION="0.2.189"
CLI_VERSION="2.1.332"
WHEEL="claude_agent_sdk-${SDK_VERSION}-py3-none-manylinux_2_17_x86_64.whl"
WHEEL_SHA256="b26a6a30a4e2cb025a6f5c95e1ce4469b38fcc51015c392f627bea7c948d67ad"

cd "$(dirname "$0")/.."
dest="${1:-.ccs-tools/claude}"

installed_version() {
  [ -x "$1" ] || return 1
  "$1" --version 2>/dev/null | awk '{print $1}'
}

if [ "$(installed_version "$dest" || true)" = "$CLI_VERSION" ]; then
  echo "$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")"
  exit 0
fi

if [ "$(uname -m)" != "x86_64" ]; then
  echo "error: the pinned wheel is for x86_64 Linux; this is $(uname -m)" >&2
  exit 1
fi

python=python3
command -v "$python" >/dev/null 2>&1 || {
  echo "error: python3 is needed to fetch the CLI (apt-get install python3 python3-pip)" >&2
  exit 1
}
if ! "$python" -m pip --version >/dev/null 2>&1; then
  echo "error: pip is needed to fetch the CLI (apt-get install python3-pip)" >&2
  exit 1
fi

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "downloading claude-agent-sdk ${SDK_VERSION} (Claude Code ${CLI_VERSION}, ~180 MB)" >&2
"$python" -m pip download --quiet --no-deps --only-binary=:all: \
  --platform manylinux_2_17_x86_64 --python-version 3.12 \
  "claude-agent-sdk==${SDK_VERSION}" -d "$tmp" >&2

if [ ! -f "$tmp/$WHEEL" ]; then
  echo "error: pip did not fetch $WHEEL (got: $(ls "$tmp"))" >&2
  exit 1
fi
got="$(sha256sum "$tmp/$WHEEL" | awk '{print $1}')"
if [ "$got" != "$WHEEL_SHA256" ]; then
  echo "error: $WHEEL has sha256 $got, expected $WHEEL_SHA256" >&2
  exit 1
fi

"$python" - "$tmp/$WHEEL" "$tmp/claude" "$CLI_VERSION" <<'EOF'
import sys, zipfile
wheel, out, want = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    version = z.read("claude_agent_sdk/_cli_version.py").decode()
    if f'"{want}"' not in version:
        sys.exit(f"error: the wheel bundles another CLI version: {version.strip()}")
    with z.open("claude_agent_sdk/_bundled/claude") as src, open(out, "wb") as dst:
        while chunk := src.read(1 << 20):
            dst.write(chunk)
EOF
chmod 0755 "$tmp/claude"

got_version="$(installed_version "$tmp/claude" || true)"
if [ "$got_version" != "$CLI_VERSION" ]; then
  echo "error: the extracted CLI says version '$got_version', expected $CLI_VERSION" >&2
  exit 1
fi

mkdir -p "$(dirname "$dest")"
# Atomic replace: a concurrent run never sees a half-written binary.
mv "$tmp/claude" "$dest.partial.$$"
mv "$dest.partial.$$" "$dest"
echo "installed Claude Code ${CLI_VERSION} at $dest" >&2
echo "$(cd "$(dirname "$dest")" && pwd)/$(basename "$dest")"
