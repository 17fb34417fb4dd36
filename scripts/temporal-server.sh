#!/usr/bin/env bash
# Runs a real Temporal server (bin/temporal-server-<version>, built from the module pinned in versions.env) on PostgreSQL with
# SQL visibility, in the foreground, after creating or upgrading its schema (idempotent). Once it
# answers, namespace "default" gets hookd's search attributes and a retention matching
# HOOKD_RETENTION. Used by `make cluster` and `make test-cluster`.
#
#   scripts/temporal-server.sh DIR [PORT] [DB_PREFIX]
#
# DIR holds the generated config and the log; PORT is the frontend's gRPC port (default 7233; the
# other services use PORT+1.., PORT-300.. for membership); DB_PREFIX names the two databases
# (default temporal: temporal, temporal_visibility). PostgreSQL: HOOKD_PG_HOST/PORT/USER (default
# 127.0.0.1:5432, postgres, trust). HOOKD_TEMPORAL_PARTITIONS: task-queue partitions (read and
# write; default 4, the server's own default). HOOKD_TEMPORAL_PG_CONNS: connections each of the
# server's services may open to its main database (default 20; the soak, sharing PostgreSQL's
# max_connections with other tests, uses fewer).
# HOOKD_TEMPORAL_SHARDS: history shards (default 4). Fixed when the cluster's databases are
# created: a server started with another count on existing databases refuses to start.
set -euo pipefail
cd "$(dirname "$0")/.."
source versions.env

dir=${1:?usage: scripts/temporal-server.sh DIR [PORT] [DB_PREFIX]}
port=${2:-7233}
prefix=${3:-temporal}
pg_host=${HOOKD_PG_HOST:-127.0.0.1}
pg_port=${HOOKD_PG_PORT:-5432}
pg_user=${HOOKD_PG_USER:-postgres}
retention=${HOOKD_RETENTION:-720h}
partitions=${HOOKD_TEMPORAL_PARTITIONS:-4}
conns=${HOOKD_TEMPORAL_PG_CONNS:-20}
shards=${HOOKD_TEMPORAL_SHARDS:-4}
bin=$PWD/bin
mkdir -p "$dir/config/dynamicconfig"
dir=$(cd "$dir" && pwd)

# The schema ships with the server's module source (in the module cache; downloaded if missing).
src=$(go mod download -json "go.temporal.io/server@v${TEMPORAL_SERVER_VERSION}" | sed -n 's/.*"Dir": "\(.*\)".*/\1/p')
[ -d "$src/schema/postgresql/v12" ] || { echo "temporal-server: no schema in $src" >&2; exit 1; }

psql_() { psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -v ON_ERROR_STOP=1 -Atq "$@"; }
sqltool() { "$bin/temporal-sql-$TEMPORAL_SERVER_VERSION" --plugin postgres12 --ep "$pg_host" -p "$pg_port" -u "$pg_user" --db "$1" "${@:2}" >>"$dir/schema.log" 2>&1 ||
  { echo "temporal-server: schema step failed: $*; see $dir/schema.log" >&2; return 1; }; }
for db in "$prefix" "${prefix}_visibility"; do
  kind=temporal
  [ "$db" = "$prefix" ] || kind=visibility
  if [ -z "$(psql_ -d postgres -c "SELECT 1 FROM pg_database WHERE datname = '$db'")" ]; then
    sqltool "$db" create-database
  fi
  if [ -z "$(psql_ -d "$db" -c "SELECT to_regclass('schema_version')")" ]; then
    sqltool "$db" setup-schema -v 0.0
  fi
  # Applies only the versions not applied yet: this is also how a server upgrade migrates.
  sqltool "$db" update-schema -d "$src/schema/postgresql/v12/$kind/versioned"
done

cat > "$dir/config/dynamicconfig/hookd.yaml" <<EOF
limit.maxIDLength:
  - value: 255
    constraints: {}
matching.numTaskqueueReadPartitions:
  - value: $partitions
    constraints: {}
matching.numTaskqueueWritePartitions:
  - value: $partitions
    constraints: {}
EOF
cat > "$dir/config/production.yaml" <<EOF
log:
  stdout: true
  level: warn
persistence:
  defaultStore: default
  visibilityStore: visibility
  numHistoryShards: $shards
  datastores:
    default:
      sql:
        pluginName: postgres12
        databaseName: $prefix
        connectAddr: "$pg_host:$pg_port"
        connectProtocol: tcp
        user: $pg_user
        maxConns: $conns
        maxIdleConns: $conns
        maxConnLifetime: 1h
    visibility:
      sql:
        pluginName: postgres12
        databaseName: ${prefix}_visibility
        connectAddr: "$pg_host:$pg_port"
        connectProtocol: tcp
        user: $pg_user
        maxConns: 4
        maxIdleConns: 4
        maxConnLifetime: 1h
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
  metrics:
    prometheus:
      framework: tally
      timerType: histogram
      listenAddress: "127.0.0.1:$((port + 767))"
services:
  frontend:
    rpc: { grpcPort: $port, membershipPort: $((port - 300)), bindOnLocalHost: true, httpPort: $((port + 10)) }
  history:
    rpc: { grpcPort: $((port + 1)), membershipPort: $((port - 299)), bindOnLocalHost: true }
  matching:
    rpc: { grpcPort: $((port + 2)), membershipPort: $((port - 298)), bindOnLocalHost: true }
  worker:
    rpc: { grpcPort: $((port + 6)), membershipPort: $((port - 294)), bindOnLocalHost: true }
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: "127.0.0.1:$port"
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: "$dir/config/dynamicconfig/hookd.yaml"
  pollInterval: 10s
EOF

"$bin/temporal-server-$TEMPORAL_SERVER_VERSION" --root "$dir" --config config --env production start >"$dir/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null' EXIT INT TERM
addr=127.0.0.1:$port
for _ in $(seq 120); do
  "$bin/temporal" operator cluster health --address "$addr" >/dev/null 2>&1 && break
  kill -0 $server 2>/dev/null || { echo "temporal-server: exited; see $dir/server.log" >&2; tail -20 "$dir/server.log" >&2; exit 1; }
  sleep 1
done
"$bin/temporal" operator cluster health --address "$addr" >/dev/null
if "$bin/temporal" operator namespace describe --address "$addr" --namespace default >/dev/null 2>&1; then
  "$bin/temporal" operator namespace update --address "$addr" --namespace default --retention "$retention" >/dev/null
else
  "$bin/temporal" operator namespace create --address "$addr" --namespace default --retention "$retention" >/dev/null
fi
# A new namespace takes a few seconds to reach every service's cache.
for _ in $(seq 60); do
  "$bin/temporal" operator search-attribute list --address "$addr" --namespace default >/dev/null 2>&1 && break
  sleep 1
done
for sa in HookdEventType HookdTopic HookdSubscriptionId HookdDeliveryStatus HookdEventId; do
  if ! "$bin/temporal" operator search-attribute list --address "$addr" --namespace default | grep -qw "$sa"; then
    "$bin/temporal" operator search-attribute create --address "$addr" --namespace default --name "$sa" --type Keyword >/dev/null
  fi
done
echo "temporal-server: ready on $addr (PostgreSQL databases $prefix, ${prefix}_visibility; namespace default, retention $retention; log $dir/server.log)"
wait $server
