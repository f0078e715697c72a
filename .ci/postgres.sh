# Sourced by .ci/run. start_postgres installs Debian's PostgreSQL when it is missing, starts a
# throwaway cluster on 127.0.0.1 (a free port, password authentication, data in a temporary
# folder) and exports AUTOML_TEST_POSTGRES_URL for the tests; stop_postgres removes it again.
# Any failure stops .ci/run (set -e): the PostgreSQL tests must run in CI, not skip.

_pg_as_owner() {
    # initdb refuses to run as root; CI runs as root, a developer maybe not.
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start_postgres() {
    if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
        echo "installing PostgreSQL from Debian"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    fi
    PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    PG_DIR=$(mktemp -d /tmp/automl-ci-postgres.XXXXXX)
    local password port
    password=$(python3 -c 'import secrets; print(secrets.token_hex(16))')
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    printf '%s\n' "$password" > "$PG_DIR/password"
    if [ "$(id -u)" = 0 ]; then chown -R postgres: "$PG_DIR"; fi
    _pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U automl --pwfile="$PG_DIR/password" \
        --auth=scram-sha-256 >/dev/null
    rm "$PG_DIR/password"
    # fsync off: a cluster that lives for one test run need not survive a power cut.
    _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_DIR -c fsync=off -c max_connections=200" \
        start >/dev/null || { cat "$PG_DIR/server.log" >&2; return 1; }
    export AUTOML_TEST_POSTGRES_URL="postgresql+psycopg://automl:$password@127.0.0.1:$port/postgres"
    echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{print $3}') running on 127.0.0.1:$port"
}

stop_postgres() {
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR/data" ]; then
        _pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null || true
        rm -rf "$PG_DIR"
    fi
}
