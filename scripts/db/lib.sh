# shellcheck shell=bash
# Shared helpers for scripts/db/*.sh. Sourced, not executed.
#
# Reads: CCS_DB_DIR (default /tmp/ccs-db) - parent dir of every private DB
#        instance; CCS_DB_WAIT_SECS (default 60) - how long to wait for a
#        server to come up / shut down before failing.
# All human-readable output goes to stderr so that stdout stays clean for
# machine-readable output (urls, `export` lines).

CCS_DB_DIR="${CCS_DB_DIR:-/tmp/ccs-db}"
case "$CCS_DB_DIR" in /*) ;; *) CCS_DB_DIR="$PWD/$CCS_DB_DIR" ;; esac
CCS_DB_WAIT_SECS="${CCS_DB_WAIT_SECS:-60}"

log() { printf '[%s] %s\n' "${LOG_TAG:-db}" "$*" >&2; }
die() { printf '[%s] ERROR: %s\n' "${LOG_TAG:-db}" "$*" >&2; exit 1; }

is_root() { [ "$(id -u)" -eq 0 ]; }

# Run a command as root (directly, or via passwordless sudo).
as_root() {
  if is_root; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo -n "$@"
  else
    die "need root (or passwordless sudo) to run: $*"
  fi
}

# apt_install PKG... - install Debian/Ubuntu packages non-interactively.
# Retries once after `apt-get update` (fresh images have empty package lists).
# While installing, a temporary policy-rc.d (exit 101) keeps the packages'
# system services (mariadb on :3306, postgresql on :5432) from being started;
# an existing policy-rc.d is left alone. apt output goes to stderr.
apt_install() {
  command -v apt-get >/dev/null 2>&1 \
    || die "apt-get not found; install manually: $*"
  local policy=/usr/sbin/policy-rc.d created_policy=0 rc=0
  if [ ! -e "$policy" ]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    created_policy=1
  fi
  local -a apt=(env DEBIAN_FRONTEND=noninteractive apt-get
                -o DPkg::Lock::Timeout=300 -y -q --no-install-recommends)
  log "installing via apt: $*"
  if ! as_root "${apt[@]}" install "$@" >&2; then
    log "apt-get install failed; running apt-get update and retrying"
    as_root "${apt[@]}" update >&2 \
      && as_root "${apt[@]}" install "$@" >&2 || rc=$?
  fi
  if [ "$created_policy" -eq 1 ]; then as_root rm -f "$policy"; fi
  [ "$rc" -eq 0 ] || die "apt-get install $* failed (exit $rc)"
}

# find_exe NAME... - print the first of NAMEs found in PATH or in the usual
# sbin/libexec dirs (non-root PATHs often lack /usr/sbin).
find_exe() {
  local name d
  for name in "$@"; do
    if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return 0; fi
    for d in /usr/sbin /usr/local/sbin /sbin /usr/libexec /usr/bin /usr/local/bin; do
      if [ -x "$d/$name" ]; then echo "$d/$name"; return 0; fi
    done
  done
  return 1
}

# port_in_use PORT - true if something accepts TCP connections on 127.0.0.1:PORT.
port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# proc_alive PID - true if PID exists and is not a zombie. (Zombies matter:
# in containers whose PID 1 does not reap promptly, a killed or exited
# server lingers as <defunct> and still passes `kill -0`.)
proc_alive() {
  kill -0 "$1" 2>/dev/null || return 1
  if [ -r "/proc/$1/stat" ]; then
    local state
    state="$(sed -e 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1)" || return 1
    [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ] || return 1
  fi
  return 0
}

# pid_alive PIDFILE [COMM_REGEX] - true if the first line of PIDFILE names a
# live process (whose /proc/PID/comm matches COMM_REGEX, if given; guards
# against a stale pid file whose pid got recycled, e.g. after a reboot).
pid_alive() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(head -n1 "$1" | tr -dc '0-9')"
  [ -n "$pid" ] && proc_alive "$pid" || return 1
  if [ -n "${2:-}" ] && [ -r "/proc/$pid/comm" ]; then
    grep -Eq "$2" "/proc/$pid/comm" || return 1
  fi
  return 0
}

# pid_of PIDFILE - print the pid stored in PIDFILE.
pid_of() { head -n1 "$1" | tr -dc '0-9'; }

# take_lock DIR - serialise concurrent invocations on the same instance dir.
# The lock is held until the script exits (fd 9 is inherited by nobody else
# because servers are started with fd 9 closed).
take_lock() {
  mkdir -p "$1"
  exec 9>"$1/.lock"
  if command -v flock >/dev/null 2>&1; then
    flock -w 300 9 || die "timed out waiting for lock $1/.lock"
  fi
}

# tail_log FILE - print the end of a server log to stderr (for failures).
tail_log() {
  if [ -f "$1" ]; then
    printf -- '----- last lines of %s -----\n' "$1" >&2
    tail -n 40 "$1" >&2
    printf -- '-----\n' >&2
  fi
}
