#!/usr/bin/env bash
# Start a throwaway PostgreSQL server for the archive tests and print the line that points the
# tests at it; use it as:   eval "$(bash .ci/postgres.sh)"
#
# Installs the server from Debian's packages when it is missing, then runs it from a private
# data directory on a free localhost port with trust authentication (nothing else can reach
# it), as the postgres user because initdb refuses root. A second call reuses the running
# server. Progress goes to stderr; stdout carries only the export line.
set -euo pipefail

log() { echo "postgres.sh: $*" >&2; }

if ! compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null; then
    log "installing PostgreSQL from Debian's packages"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2
    apt-get install -y -qq postgresql >&2
fi
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
dir=${TMPDIR:-/tmp}/evolve-ci-postgres

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

if [ -f "$dir/port" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
    port=$(cat "$dir/port")
    log "reusing the server in $dir on port $port"
else
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --locale=C --encoding=UTF8 >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    port=55432
    while port_in_use "$port"; do port=$((port + 1)); done
    # fsync off: a scratch server; the tests check transactions, not surviving power loss.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off" start >&2 \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "$port" | as_owner tee "$dir/port" >/dev/null
    log "started PostgreSQL $("$bin/postgres" --version | awk '{print $3}') in $dir on port $port"
fi
echo "export EVOLVE_TEST_POSTGRES_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
