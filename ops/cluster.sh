#!/usr/bin/env bash
# The production shape on one machine, all on 127.0.0.1 (README "Production shape"):
#   PostgreSQL primary      127.0.0.1:$CLUSTER_PG_PORT       (Debian's server binaries)
#   streaming replica       127.0.0.1:$CLUSTER_REPLICA_PORT  (pg_basebackup -R)
#   two gunicorn servers    127.0.0.1:$CLUSTER_APP1_PORT, :$CLUSTER_APP2_PORT (2 workers each)
#   HAProxy                 127.0.0.1:$CLUSTER_PROXY_PORT    (health-checks /healthz)
# Usage: ops/cluster.sh start | stop | status | restart-app N | kill-app N | restart-primary
# Everything lives under $CLUSTER_DIR (var/cluster), PostgreSQL's folders under $CLUSTER_PG_DIR
# (as root: ~postgres/oncoboard-cluster-PORT); processes are stopped by their PID files
# (PostgreSQL's by pg_ctl, which reads its own). `ops/cluster.sh destroy` also removes the data.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

CLUSTER_DIR=${CLUSTER_DIR:-$ROOT/var/cluster}
CLUSTER_PG_PORT=${CLUSTER_PG_PORT:-55432}
CLUSTER_REPLICA_PORT=${CLUSTER_REPLICA_PORT:-55433}
CLUSTER_APP1_PORT=${CLUSTER_APP1_PORT:-8101}
CLUSTER_APP2_PORT=${CLUSTER_APP2_PORT:-8102}
CLUSTER_PROXY_PORT=${CLUSTER_PROXY_PORT:-8100}
CLUSTER_WORKERS=${CLUSTER_WORKERS:-2}
CLUSTER_DB=${CLUSTER_DB:-oncoboard}
PY=${PY:-$ROOT/.venv/bin/python}
GUNICORN=${GUNICORN:-$ROOT/.venv/bin/gunicorn}

RUN=$CLUSTER_DIR/run
LOG=$CLUSTER_DIR/log
# PostgreSQL's folders. As root the servers run as `postgres`, which may not reach into the
# checkout (a home folder of mode 700): then they live in postgres's own home.
if [ "$(id -u)" -eq 0 ]; then
    pg_home=$(getent passwd postgres | cut -d: -f6 || true)
    # Before Debian's package is installed: the home it gives the `postgres` user.
    PGROOT=${CLUSTER_PG_DIR:-${pg_home:-/var/lib/postgresql}/oncoboard-cluster-$CLUSTER_PG_PORT}
else
    PGROOT=${CLUSTER_PG_DIR:-$CLUSTER_DIR/pg}
fi
PRIMARY=$PGROOT/primary
REPLICA=$PGROOT/replica

OWNER_URL="postgres://postgres@127.0.0.1:$CLUSTER_PG_PORT/$CLUSTER_DB?options=-c%20role%3Doncoboard_owner"
ADMIN_URL="postgres://postgres@127.0.0.1:$CLUSTER_PG_PORT/$CLUSTER_DB"
APP_URL="postgres://oncoboard_app@127.0.0.1:$CLUSTER_PG_PORT/$CLUSTER_DB"
REPLICA_URL="postgres://oncoboard_app@127.0.0.1:$CLUSTER_REPLICA_PORT/$CLUSTER_DB"

say() { printf 'cluster: %s\n' "$*"; }

install_missing() {
    # What a fresh Debian machine lacks, as .ci/run does it.
    local need=()
    command -v haproxy >/dev/null || need+=(haproxy)
    ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || need+=(postgresql)
    if [ ${#need[@]} -gt 0 ]; then
        say "installing: ${need[*]}"
        if [ "$(id -u)" -ne 0 ]; then echo "run as root or install: ${need[*]}" >&2; exit 1; fi
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

pg_bin() {
    if [ -n "${PG_BIN:-}" ]; then echo "$PG_BIN"; return; fi
    ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1
}

# PostgreSQL refuses to run as root: as root, its commands run as the `postgres` user.
as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_ready() { "$(pg_bin)/pg_isready" -q -h 127.0.0.1 -p "$1"; }

start_postgres() {
    local bin
    bin=$(pg_bin)
    mkdir -p "$PGROOT" "$RUN" "$LOG"
    if [ "$(id -u)" -eq 0 ]; then chown postgres "$PGROOT"; fi
    if [ ! -f "$PRIMARY/PG_VERSION" ]; then
        say "initdb primary ($bin)"
        as_pg "$bin/initdb" -D "$PRIMARY" -U postgres --auth=trust -E UTF8 --no-locale >/dev/null
        cat >>"$PRIMARY/postgresql.conf" <<EOF
listen_addresses = '127.0.0.1'
port = $CLUSTER_PG_PORT
unix_socket_directories = ''
wal_level = replica
max_wal_senders = 5
wal_keep_size = '256MB'
hot_standby = on
max_connections = 100
# No statement text or row values in the server log (they hold patient data): an error logs
# its message only (no STATEMENT, DETAIL or CONTEXT lines).
log_min_error_statement = panic
log_error_verbosity = terse
EOF
        cat >"$PRIMARY/pg_hba.conf" <<EOF
host all all 127.0.0.1/32 trust
host replication all 127.0.0.1/32 trust
EOF
    fi
    if ! pg_ready "$CLUSTER_PG_PORT"; then
        as_pg "$bin/pg_ctl" -D "$PRIMARY" -l "$PGROOT/primary.log" -w -t 60 start >/dev/null
        say "primary on 127.0.0.1:$CLUSTER_PG_PORT"
    fi
    if [ ! -f "$REPLICA/PG_VERSION" ]; then
        say "pg_basebackup replica"
        as_pg "$bin/pg_basebackup" -h 127.0.0.1 -p "$CLUSTER_PG_PORT" -U postgres -D "$REPLICA" \
            -R -X stream -c fast
        echo "port = $CLUSTER_REPLICA_PORT" | as_pg tee -a "$REPLICA/postgresql.auto.conf" >/dev/null
    fi
    if ! pg_ready "$CLUSTER_REPLICA_PORT"; then
        as_pg "$bin/pg_ctl" -D "$REPLICA" -l "$PGROOT/replica.log" -w -t 60 start >/dev/null
        say "replica on 127.0.0.1:$CLUSTER_REPLICA_PORT (streaming from the primary)"
    fi
}

prepare_database() {
    local bin
    bin=$(pg_bin)
    if ! as_pg "$bin/psql" -h 127.0.0.1 -p "$CLUSTER_PG_PORT" -U postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$CLUSTER_DB'" | grep -q 1; then
        as_pg "$bin/createdb" -h 127.0.0.1 -p "$CLUSTER_PG_PORT" -U postgres "$CLUSTER_DB"
    fi
    # Least privilege as in `make db`: the owner migrates and loads, the serving role serves.
    DATABASE_URL=$ADMIN_URL "$PY" manage.py db_roles >/dev/null
    DATABASE_URL=$OWNER_URL "$PY" manage.py migrate --no-input -v0
    DATABASE_URL=$OWNER_URL "$PY" manage.py load_codelists >/dev/null
    DATABASE_URL=$OWNER_URL "$PY" manage.py load_demo >/dev/null
    DATABASE_URL=$OWNER_URL "$PY" manage.py loadtest_setup --out "$CLUSTER_DIR/loadtest.json"
    DATABASE_URL=$ADMIN_URL "$PY" manage.py db_roles >/dev/null
}

start_app() {
    local n=$1 port
    port=$([ "$n" = 1 ] && echo "$CLUSTER_APP1_PORT" || echo "$CLUSTER_APP2_PORT")
    if [ -f "$RUN/app$n.pid" ] && kill -0 "$(cat "$RUN/app$n.pid")" 2>/dev/null; then return; fi
    # No access log: paths name case ids only, but nothing here needs them.
    DATABASE_URL=$APP_URL DATABASE_REPLICA_URL=$REPLICA_URL \
        DJANGO_BEHIND_PROXY=true DJANGO_TRUSTED_PROXIES=127.0.0.1 \
        "$GUNICORN" config.wsgi --workers "$CLUSTER_WORKERS" --bind "127.0.0.1:$port" \
        --pid "$RUN/app$n.pid" --error-logfile "$LOG/app$n.log" --daemon \
        --graceful-timeout 5 --timeout 30
    for _ in $(seq 1 50); do
        [ -f "$RUN/app$n.pid" ] && curl -fsS -o /dev/null "http://127.0.0.1:$port/ping" && break
        sleep 0.2
    done
    say "app server $n on 127.0.0.1:$port ($CLUSTER_WORKERS workers, pid $(cat "$RUN/app$n.pid"))"
}

start_proxy() {
    if [ -f "$RUN/haproxy.pid" ] && kill -0 "$(cat "$RUN/haproxy.pid")" 2>/dev/null; then return; fi
    cat >"$CLUSTER_DIR/haproxy.cfg" <<EOF
global
    maxconn 512
defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    retries 2
    option redispatch 1
    # A request that found its server gone is tried on the other one.
    retry-on conn-failure empty-response
frontend web
    bind 127.0.0.1:$CLUSTER_PROXY_PORT
    option forwardfor
    default_backend apps
backend apps
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    # A busy server answers its check late: only three failed checks in a row take it out.
    # A server that is gone refuses connections at once, and its requests go to the other.
    timeout check 5s
    # A connection refused or reset marks the server down at once (a crash), without
    # waiting for three failed checks; its queued and retried requests go to the other.
    default-server inter 1s fall 3 rise 2 observe layer4 error-limit 1 on-error mark-down
    # Sync workers take one request each: the rest wait here, not in gunicorn's backlog,
    # so a health check never queues behind a burst of page requests.
    timeout queue 30s
    server app1 127.0.0.1:$CLUSTER_APP1_PORT check maxconn $CLUSTER_WORKERS
    server app2 127.0.0.1:$CLUSTER_APP2_PORT check maxconn $CLUSTER_WORKERS
EOF
    haproxy -f "$CLUSTER_DIR/haproxy.cfg" -D -p "$RUN/haproxy.pid"
    say "HAProxy on 127.0.0.1:$CLUSTER_PROXY_PORT"
}

stop_pidfile() {
    local file=$1
    [ -f "$file" ] || return 0
    local pid
    pid=$(cat "$file")
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid"
        for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    fi
    rm -f "$file"
}

stop_postgres() {
    local bin
    bin=$(pg_bin)
    for dir in "$REPLICA" "$PRIMARY"; do
        if [ -f "$dir/postmaster.pid" ]; then
            as_pg "$bin/pg_ctl" -D "$dir" -m fast -w stop >/dev/null || true
        fi
    done
}

case "${1:-start}" in
start)
    install_missing
    start_postgres
    prepare_database
    start_app 1
    start_app 2
    start_proxy
    for _ in $(seq 1 30); do
        curl -fsS -o /dev/null "http://127.0.0.1:$CLUSTER_PROXY_PORT/healthz" && break
        sleep 0.5
    done
    say "ready: http://127.0.0.1:$CLUSTER_PROXY_PORT/ ($(curl -fsS "http://127.0.0.1:$CLUSTER_PROXY_PORT/healthz"))"
    ;;
stop)
    stop_pidfile "$RUN/haproxy.pid"
    stop_pidfile "$RUN/app1.pid"
    stop_pidfile "$RUN/app2.pid"
    stop_postgres
    say "stopped"
    ;;
destroy)
    bash "$0" stop
    rm -rf "$PGROOT" "$CLUSTER_DIR"
    say "removed $PGROOT and $CLUSTER_DIR"
    ;;
kill-app)
    # A crash, not a shutdown: the proxy must route around it.
    pid=$(cat "$RUN/app$2.pid")
    pkill -KILL -P "$pid" || true
    kill -KILL "$pid"
    rm -f "$RUN/app$2.pid"
    ;;
restart-app)
    start_app "$2"
    ;;
restart-primary)
    as_pg "$(pg_bin)/pg_ctl" -D "$PRIMARY" -m "${2:-fast}" -w restart -l "$PGROOT/primary.log" >/dev/null
    ;;
status)
    for n in 1 2; do
        f=$RUN/app$n.pid
        if [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; then echo "app$n: running"; else echo "app$n: stopped"; fi
    done
    pg_ready "$CLUSTER_PG_PORT" && echo "primary: running" || echo "primary: stopped"
    pg_ready "$CLUSTER_REPLICA_PORT" && echo "replica: running" || echo "replica: stopped"
    curl -fsS "http://127.0.0.1:$CLUSTER_PROXY_PORT/healthz" 2>/dev/null && echo || echo "proxy: no answer"
    ;;
*)
    echo "usage: $0 start|stop|destroy|status|kill-app N|restart-app N|restart-primary" >&2
    exit 2
    ;;
esac
