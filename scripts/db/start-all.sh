#!/usr/bin/env bash
# Start (install if needed) the private MariaDB and PostgreSQL test servers and
# print shell `export` lines for their URLs on stdout:
#
#   eval "$(scripts/db/start-all.sh)"            # or, failure-safe:
#   out="$(scripts/db/start-all.sh)" && eval "$out"
#
# Prints: export CCS_TEST_MYSQL_URL='mysql://ccs:ccs@127.0.0.1:13306/ccs'
#         export CCS_TEST_POSTGRES_URL='postgres://ccs:ccs@127.0.0.1:15432/ccs'
# Progress and errors go to stderr. On failure it exits non-zero and prints
# only `false` on stdout, so that `eval "$(...)"` fails too (under set -e).
# `start-all.sh stop` stops both servers; `start-all.sh status` reports both.
#
# Env: CCS_DB_DIR, CCS_MARIADB_PORT, CCS_POSTGRES_PORT, CCS_PG_BINDIR,
#      CCS_DB_WAIT_SECS - see mariadb.sh / postgres.sh.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

case "${1:-start}" in
  start) ;;
  stop|status)
    rc=0
    "$here/mariadb.sh" "$1" >&2 || rc=$?
    "$here/postgres.sh" "$1" >&2 || rc=$?
    exit "$rc" ;;
  *) echo "usage: $0 [start|stop|status]" >&2; exit 2 ;;
esac

# Sequential on purpose: both may need apt, which takes a global lock.
failed=()
"$here/mariadb.sh" start >&2 || failed+=(mariadb)
"$here/postgres.sh" start >&2 || failed+=(postgres)

if [ "${#failed[@]}" -gt 0 ]; then
  echo "[start-all] ERROR: failed to start: ${failed[*]}" >&2
  echo false
  exit 1
fi

printf "export CCS_TEST_MYSQL_URL='%s'\n" "$("$here/mariadb.sh" url)"
printf "export CCS_TEST_POSTGRES_URL='%s'\n" "$("$here/postgres.sh" url)"
