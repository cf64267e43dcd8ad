# Shared by scripts/dev and scripts/test (sourced, not run): find or install PostgreSQL and run a
# throwaway cluster whose data lives under the project, listening on loopback only.

source "$(dirname "${BASH_SOURCE[0]}")/apt.sh"

pg_bindir() {
    ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1
}

# Installs Debian's postgresql package when no server binaries are present.
pg_ensure_installed() {
    if [ -n "$(pg_bindir)" ]; then
        return 0
    fi
    echo "PostgreSQL server binaries not found; installing Debian's postgresql package..." >&2
    apt_install postgresql
    [ -n "$(pg_bindir)" ] || { echo "PostgreSQL installation failed" >&2; return 1; }
}

# Runs a PostgreSQL tool; as root, as the postgres user (initdb refuses to run as root).
pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

# pg_start DATA_DIR PORT [postgres -c settings...]: initializes DATA_DIR if empty and starts the
# server on 127.0.0.1:PORT (TCP only) unless it is already running. The scripts' ports (254xx)
# lie below Linux's ephemeral range (32768-60999), so that no outgoing loopback connection of a
# test can be holding the port when the server binds it.
pg_start() {
    local data="$1" port="$2"
    shift 2
    local bin
    bin="$(pg_bindir)"
    mkdir -p "$data"
    chmod 700 "$data"
    if [ "$(id -u)" -eq 0 ]; then
        chown postgres:postgres "$data"
        # The postgres user must be able to reach the data directory.
        local dir
        dir="$(dirname "$(realpath "$data")")"
        while [ "$dir" != "/" ]; do
            chmod o+x "$dir" 2>/dev/null || true
            dir="$(dirname "$dir")"
        done
    fi
    if [ ! -f "$data/PG_VERSION" ]; then
        pg_as_owner "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 >/dev/null
    fi
    if pg_as_owner "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
        return 0
    fi
    local opts="-p $port -c listen_addresses=127.0.0.1 -c unix_socket_directories=''"
    local setting
    for setting in "$@"; do
        opts="$opts -c $setting"
    done
    pg_as_owner "$bin/pg_ctl" -D "$data" -o "$opts" -l "$data/server.log" -w -t 60 start >/dev/null
}

# pg_stop DATA_DIR
pg_stop() {
    local bin
    bin="$(pg_bindir)"
    pg_as_owner "$bin/pg_ctl" -D "$1" -m fast -w stop >/dev/null 2>&1 || true
}

# pg_psql PORT DBNAME SQL [more psql options]
pg_psql() {
    "$(pg_bindir)/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$1" -U postgres -d "$2" "${@:4}" -c "$3"
}
