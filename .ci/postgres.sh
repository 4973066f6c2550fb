# A throwaway PostgreSQL server for the test suite; sourced by .ci/run (bash).
#
#   pg_start  installs Debian's postgresql when no initdb/pg_ctl is found, initdbs a cluster in a
#             temporary folder (trust auth, reachable on 127.0.0.1 only, its unix socket in that
#             folder too), starts it on a free port, creates the database vitsearch_test and exports
#             VITSEARCH_TEST_POSTGRES_URL. On any failure it prints one line and returns 1: the
#             PostgreSQL tests then start their own server or skip (tests/conftest.py).
#   pg_stop   stops that server and removes the folder; safe to call when nothing was started.
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

PG_TMP=""
PG_BIN=""
PG_AS=()

pg_say() { echo "PostgreSQL: $*"; }

# Run a server program as its user, from inside the cluster folder (that user may not enter the caller's).
pg_as() { (cd "$PG_TMP" && "${PG_AS[@]}" "$@"); }

pg_find_bin() {
    local d
    # Debian keeps the server programs per major version; the newest wins, then whatever PATH has.
    for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV) "$(dirname "$(command -v pg_ctl 2>/dev/null || echo /x/x)")"; do
        if [[ -x "$d/initdb" && -x "$d/pg_ctl" ]]; then
            PG_BIN=$d
            return 0
        fi
    done
    return 1
}

pg_install() {
    pg_say "initdb/pg_ctl not found: installing Debian's postgresql"
    if ! apt_install postgresql; then
        pg_say "apt-get install postgresql failed ($APT_WHY); the PostgreSQL tests will skip"
        return 1
    fi
}

# The line of a log that says what went wrong: its first FATAL or ERROR, else its last line.
pg_why() { grep -m 1 -E 'FATAL|ERROR|PANIC' "$1" 2>/dev/null || tail -n 1 "$1" 2>/dev/null; }

pg_free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

pg_start() {
    local started=$SECONDS port
    if ! pg_find_bin; then
        pg_install || return 1
        pg_find_bin || {
            pg_say "no initdb/pg_ctl after installing postgresql; the PostgreSQL tests will skip"
            return 1
        }
    fi
    PG_TMP=$(mktemp -d -t vitsearch-pg.XXXXXX)
    if [[ $(id -u) == 0 ]]; then
        id -u postgres >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin postgres
        chown postgres: "$PG_TMP"
        PG_AS=(runuser -u postgres --)
    fi
    if ! pg_as "$PG_BIN/initdb" -D "$PG_TMP/data" -U postgres -A trust -E UTF8 --locale=C --no-sync \
        >"$PG_TMP/initdb.log" 2>&1; then
        pg_say "initdb failed ($(pg_why "$PG_TMP/initdb.log")); the PostgreSQL tests will skip"
        pg_stop
        return 1
    fi
    port=$(pg_free_port)
    # A test server: no durability, so no fsync.
    if ! pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/server.log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
        start >/dev/null 2>&1; then
        pg_say "the server did not start ($(pg_why "$PG_TMP/server.log")); the PostgreSQL tests will skip"
        pg_stop
        return 1
    fi
    if ! "$PG_BIN/psql" -qAt -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE vitsearch_test" \
        >"$PG_TMP/psql.log" 2>&1; then
        pg_say "CREATE DATABASE failed ($(pg_why "$PG_TMP/psql.log")); the PostgreSQL tests will skip"
        pg_stop
        return 1
    fi
    export VITSEARCH_TEST_POSTGRES_URL="postgresql+psycopg2://postgres@127.0.0.1:$port/vitsearch_test"
    pg_say "$("$PG_BIN/postgres" --version | sed 's/.*) //') on 127.0.0.1:$port, ready in $((SECONDS - started)) s" \
        "(VITSEARCH_TEST_POSTGRES_URL=$VITSEARCH_TEST_POSTGRES_URL)"
}

pg_stop() {
    [[ -n $PG_TMP ]] || return 0
    if [[ -f $PG_TMP/data/postmaster.pid ]]; then
        pg_as "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$PG_TMP"
    PG_TMP=""
}
