#!/usr/bin/env bash
# ensure-postgres.sh [DBNAME]
#
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for user
# "postgres" with trust auth, and optionally creates database DBNAME.
#
# Order of attempts:
#   1. already up and accepting postgres without a password -> nothing to do
#   2. Debian clusters exist (pg_lsclusters) -> start the ones that are down
#   3. no PostgreSQL installed -> apt-get install postgresql, start its cluster
#   4. still no trust login -> a throwaway cluster under /tmp, initdb -A trust,
#      on port ${PGPORT_FALLBACK:-5432}
#
# Prints one line saying what it did. Idempotent; fast when postgres is up.
set -euo pipefail

HOST=127.0.0.1
PORT=5432
DBNAME="${1:-}"
WAIT_SECONDS="${ENSURE_PG_TIMEOUT:-30}"

log() { printf 'ensure-postgres: %s\n' "$*"; }
die() { printf 'ensure-postgres: error: %s\n' "$*" >&2; exit 1; }

if [[ -n "$DBNAME" && ! "$DBNAME" =~ ^[A-Za-z_][A-Za-z0-9_-]*$ ]]; then
  die "invalid database name: $DBNAME"
fi

have_client() { command -v pg_isready >/dev/null 2>&1 && command -v psql >/dev/null 2>&1; }

# Newest server bin dir of the system packages, e.g. /usr/lib/postgresql/15/bin.
server_bindir() {
  local d
  d="$(find /usr/lib/postgresql -mindepth 2 -maxdepth 2 -type d -name bin 2>/dev/null | sort -V | tail -n 1)"
  [[ -n "$d" && -x "$d/postgres" && -x "$d/initdb" && -x "$d/pg_ctl" ]] || return 1
  printf '%s\n' "$d"
}

# Something answers on the port (any auth).
answers() { pg_isready -q -h "$HOST" -p "$1" >/dev/null 2>&1; }

# The server accepts "postgres" without a password.
trust_ok() {
  answers "$1" &&
    psql -X -h "$HOST" -p "$1" -U postgres -d postgres -w -Atqc 'select 1' >/dev/null 2>&1
}

wait_ready() {
  local port="$1" i
  for ((i = 0; i < WAIT_SECONDS * 4; i++)); do
    answers "$port" && return 0
    sleep 0.25
  done
  return 1
}

# Run a command as the postgres OS user when we are root (initdb refuses root).
as_postgres() {
  if [[ "$(id -u)" -ne 0 ]]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u postgres -- "$@"
  else
    su -s /bin/sh postgres -c "$(printf '%q ' "$@")"
  fi
}

# Lines "ver name status" of Debian clusters, if pg_lsclusters exists.
clusters() {
  command -v pg_lsclusters >/dev/null 2>&1 || return 0
  pg_lsclusters -h 2>/dev/null | awk '{print $1, $2, $4}'
}

start_clusters() {
  local ver name status started=""
  while read -r ver name status; do
    [[ -n "$ver" ]] || continue
    case "$status" in
      online*) ;;
      *)
        pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" start >&2 ||
          log "warning: pg_ctlcluster $ver $name start failed" >&2
        started="${started:+$started, }$ver/$name"
        ;;
    esac
  done < <(clusters)
  printf '%s\n' "$started"
}

install_postgres() {
  [[ "$(id -u)" -eq 0 ]] || die "PostgreSQL is not installed and we are not root to apt-get install it"
  command -v apt-get >/dev/null 2>&1 || die "PostgreSQL is not installed and apt-get is not available"
  {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql
  } >&2
}

# A cluster we just installed has Debian's default pg_hba (peer/scram).
# It holds nothing yet, so make it trust local and loopback connections.
trust_fresh_clusters() {
  local ver name _status hba
  while read -r ver name _status; do
    hba="/etc/postgresql/$ver/$name/pg_hba.conf"
    [[ -f "$hba" ]] || continue
    cat >"$hba" <<'EOF'
# written by hookd scripts/ensure-postgres.sh for a freshly installed dev cluster
local   all all               trust
host    all all 127.0.0.1/32  trust
host    all all ::1/128       trust
EOF
    chown postgres:postgres "$hba" 2>/dev/null || true
    pg_ctlcluster --skip-systemctl-redirect "$ver" "$name" reload >&2 || true
  done < <(clusters)
}

# Throwaway cluster under /tmp, trust auth, as the postgres OS user.
fallback_cluster() {
  local port="${PGPORT_FALLBACK:-5432}" bindir dir logf
  dir="/tmp/hookd-pg-$port"
  logf="/tmp/hookd-pg-$port.log"
  if trust_ok "$port"; then
    PORT="$port"
    ACTION="throwaway cluster $dir already running"
    return 0
  fi
  if answers "$port"; then
    die "a server on $HOST:$port refuses passwordless login as postgres; set PGPORT_FALLBACK to a free port"
  fi
  bindir="$(server_bindir)" || die "no PostgreSQL server binaries under /usr/lib/postgresql"
  if [[ "$(id -u)" -eq 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "no 'postgres' OS user to run initdb as"
  fi
  if [[ ! -s "$dir/PG_VERSION" ]]; then
    rm -rf "$dir"
    mkdir -p "$dir"
    [[ "$(id -u)" -ne 0 ]] || chown postgres:postgres "$dir"
    chmod 700 "$dir"
    as_postgres "$bindir/initdb" -D "$dir" -A trust -U postgres -E UTF8 --no-sync >&2
  fi
  : >"$logf"
  [[ "$(id -u)" -ne 0 ]] || chown postgres:postgres "$logf"
  as_postgres "$bindir/pg_ctl" -D "$dir" -l "$logf" -w -t "$WAIT_SECONDS" \
    -o "-p $port -k $dir -c listen_addresses=$HOST" start >&2 ||
    die "throwaway cluster failed to start; see $logf"
  PORT="$port"
  ACTION="started throwaway trust cluster in $dir (log $logf)"
}

ensure_db() {
  local port="$1" db="$2" exists
  exists="$(psql -X -h "$HOST" -p "$port" -U postgres -d postgres -w -Atq -v db="$db" \
    <<<"select 1 from pg_database where datname = :'db';")"
  [[ "$exists" == 1 ]] && return 1
  # A concurrent run may create it first; only fail if it still doesn't exist.
  if ! psql -X -h "$HOST" -p "$port" -U postgres -d postgres -w -q -v ON_ERROR_STOP=1 -v db="$db" \
    <<<'create database :"db";' >/dev/null 2>&1; then
    exists="$(psql -X -h "$HOST" -p "$port" -U postgres -d postgres -w -Atq -v db="$db" \
      <<<"select 1 from pg_database where datname = :'db';")"
    [[ "$exists" == 1 ]] || die "could not create database $db"
    return 1
  fi
  return 0
}

ACTION=""
if have_client && trust_ok "$PORT"; then
  ACTION="already running"
else
  installed=""
  if ! have_client || ! server_bindir >/dev/null; then
    install_postgres
    installed=1
    have_client || die "apt-get install postgresql did not provide psql/pg_isready"
  fi
  started="$(start_clusters)"
  if [[ -n "$installed" ]]; then
    trust_fresh_clusters
  fi
  if [[ -n "$started" || -n "$installed" ]]; then
    wait_ready "$PORT" || true
  fi
  if trust_ok "$PORT"; then
    ACTION="${installed:+installed postgresql, }${started:+started cluster $started}"
    ACTION="${ACTION%, }"
    [[ -n "$ACTION" ]] || ACTION="already running"
  else
    fallback_cluster
    ACTION="${installed:+installed postgresql, }${started:+cluster $started did not accept trust login, }$ACTION"
  fi
fi

trust_ok "$PORT" || die "postgres on $HOST:$PORT still not accepting trust logins"

DBMSG=""
if [[ -n "$DBNAME" ]]; then
  if ensure_db "$PORT" "$DBNAME"; then
    DBMSG="; created database $DBNAME"
  else
    DBMSG="; database $DBNAME exists"
  fi
fi

log "$ACTION on $HOST:$PORT$DBMSG"
