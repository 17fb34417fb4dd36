#!/usr/bin/env bash
# cluster.sh (`make cluster`): hookd's production topology on one machine, in the foreground.
#
#   PostgreSQL 127.0.0.1:5432         databases hookd_cluster, temporal, temporal_visibility
#   Temporal server 127.0.0.1:7233    bin/temporal-server-*, PostgreSQL persistence + SQL visibility
#   Temporal Web UI 127.0.0.1:8233    bin/temporal-ui-* (ui-server) pointed at the server
#   Mailpit 127.0.0.1:8025, SMTP 1025
#   Jaeger OTLP 127.0.0.1:4318        bin/jaeger-*: every process's traces (query API :16686)
#   hookd worker x2                   /metrics on 127.0.0.1:9091, :9092
#   hookd api x2                      127.0.0.1:8080, :8081 (/metrics on each)
#
# The versions come from versions.env (shared with docker-compose.yml). The Temporal schema is
# created or upgraded and namespace "default" gets hookd's search attributes and a retention equal
# to HOOKD_RETENTION (scripts/temporal-server.sh). Ctrl-C (or SIGTERM) stops everything.
# Every process runs under a supervisor (scripts/supervise.sh): one that exits is started again
# with exponential backoff (1 s doubling to 30 s, reset after a minute up; HOOKD_RESTART_*_MS),
# each restart logged with its exit status, while the others keep serving.
# Logs, pid files and state: .cluster/. Every HOOKD_* variable already set is respected.
#
# Shape (HOOKD_CLUSTER_SHAPE): separate (the default) runs `hookd api` and `hookd worker`;
# combined runs each API as `hookd api -worker`, so the workflow an API starts for an event goes
# eagerly to the worker in the same process (no wait in the task queue), beside the plain workers
# for what the task queue hands out (wide fan-outs, retries, replays). HOOKD_CLUSTER_APIS and HOOKD_CLUSTER_WORKERS (default 2 each) count them.
# For a second cluster beside this one (the soak test, integration/soak_test.go, runs one):
# HOOKD_CLUSTER_STATE (default .cluster), HOOKD_CLUSTER_PORT_OFFSET (added to every port),
# HOOKD_CLUSTER_EXTRAS (default "ui mailpit jaeger"; without mailpit, set HOOKD_SMTP_ADDR),
# HOOKD_CLUSTER_DB (hookd's database, default hookd_cluster; HOOKD_DATABASE_URL wins),
# HOOKD_CLUSTER_TEMPORAL_DB (the Temporal server's, default temporal), HOOKD_CLUSTER_BIN (the
# hookd binary, default bin/hookd); HOOKD_PG_HOST/HOOKD_PG_PORT reach PostgreSQL for the server.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
STATE="${HOOKD_CLUSTER_STATE:-$ROOT/.cluster}"
mkdir -p "$STATE"
# shellcheck source=versions.env
source versions.env
LIB_NAME=cluster LIB_LOG_DIR="$STATE"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
# shellcheck source=scripts/supervise.sh
source scripts/supervise.sh

HOOKD_BIN="${HOOKD_CLUSTER_BIN:-$ROOT/bin/hookd}"
UI_BIN="$ROOT/bin/temporal-ui-$TEMPORAL_UI_VERSION"
JAEGER_BIN="$ROOT/bin/jaeger-$JAEGER_VERSION"
SHAPE="${HOOKD_CLUSTER_SHAPE:-separate}"
APIS="${HOOKD_CLUSTER_APIS:-2}"
WORKERS="${HOOKD_CLUSTER_WORKERS:-2}"
OFF="${HOOKD_CLUSTER_PORT_OFFSET:-0}"
EXTRAS=" ${HOOKD_CLUSTER_EXTRAS-ui mailpit jaeger} "
CLUSTER_DB="${HOOKD_CLUSTER_DB:-hookd_cluster}"
TEMPORAL_DB="${HOOKD_CLUSTER_TEMPORAL_DB:-temporal}"
case "$SHAPE" in
combined) API_CMD=(api -worker) ;;
separate) API_CMD=(api) ;;
*) die "HOOKD_CLUSTER_SHAPE=$SHAPE: want combined or separate" ;;
esac
[[ "$APIS" =~ ^[1-9]$ && "$WORKERS" =~ ^[0-9]$ && "$OFF" =~ ^[0-9]+$ ]] ||
  die "HOOKD_CLUSTER_APIS (1-9), HOOKD_CLUSTER_WORKERS (0-9) and HOOKD_CLUSTER_PORT_OFFSET must be numbers"
[[ "$SHAPE" == combined || "$WORKERS" -ge 1 ]] || die "the separate shape needs a worker"
has() { [[ "$EXTRAS" == *" $1 "* ]]; }
port() { echo $(($1 + OFF)); }
TEMPORAL_PORT=$(port 7233)
need=("$HOOKD_BIN" "$ROOT/bin/temporal" "$ROOT/bin/temporal-server-$TEMPORAL_SERVER_VERSION" "$ROOT/bin/temporal-sql-$TEMPORAL_SERVER_VERSION")
ports=("$TEMPORAL_PORT")
if has ui; then need+=("$UI_BIN"); ports+=("$(port 8233)"); fi
if has mailpit; then need+=("$ROOT/bin/mailpit"); ports+=("$(port 8025)" "$(port 1025)"); fi
if has jaeger; then need+=("$JAEGER_BIN"); ports+=(4317 4318 16686); fi
for ((i = 0; i < APIS; i++)); do ports+=("$(port $((8080 + i)))"); done
for ((i = 1; i <= WORKERS; i++)); do ports+=("$(port $((9090 + i)))"); done
for b in "${need[@]}"; do
  [[ -x "$b" ]] || die "$b not found; run 'make cluster'"
done
for p in "${ports[@]}"; do
  ! port_open "$p" || die "port $p is in use (a 'make dev' still running?); stop it first"
done

supervise_traps

export HOOKD_RETENTION="${HOOKD_RETENTION:-720h}"
scripts/ensure-postgres.sh "$CLUSTER_DB"

say "starting the Temporal server (log $STATE/temporal.log)"
supervise temporal "$STATE/temporal.log" scripts/temporal-server.sh "$STATE/temporal" "$TEMPORAL_PORT" "$TEMPORAL_DB"
TEMPORAL_PID=$LAST_PID
wait_for temporal "$TEMPORAL_PID" 300 grep -q "temporal-server: ready" "$STATE/temporal.log"

if has ui; then
say "starting the Temporal Web UI (log $STATE/ui.log)"
mkdir -p "$STATE/ui/config"
cat >"$STATE/ui/config/production.yaml" <<EOF
temporalGrpcAddress: 127.0.0.1:$TEMPORAL_PORT
host: 127.0.0.1
port: $(port 8233)
enableUi: true
defaultNamespace: default
cors:
  cookieInsecure: true
EOF
supervise temporal-ui "$STATE/ui.log" "$UI_BIN" --root "$STATE/ui" --config config --env production start
wait_for temporal-ui "$LAST_PID" 60 port_open "$(port 8233)"
export HOOKD_TEMPORAL_UI_URL="${HOOKD_TEMPORAL_UI_URL:-http://127.0.0.1:$(port 8233)}"
fi

if has mailpit; then
  say "starting Mailpit (log $STATE/mailpit.log)"
  supervise mailpit "$STATE/mailpit.log" "$ROOT/bin/mailpit" --listen "127.0.0.1:$(port 8025)" --smtp "127.0.0.1:$(port 1025)" --disable-version-check
  wait_for mailpit "$LAST_PID" 30 port_open "$(port 1025)"
  export HOOKD_SMTP_ADDR="127.0.0.1:$(port 1025)"
fi

if has jaeger; then
  say "starting Jaeger (log $STATE/jaeger.log)"
  supervise jaeger "$STATE/jaeger.log" "$JAEGER_BIN"
  wait_for jaeger "$LAST_PID" 60 port_open 4318
  export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:4318}"
fi

export HOOKD_DATABASE_URL="${HOOKD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$CLUSTER_DB?sslmode=disable}"
export HOOKD_TEMPORAL_ADDRESS="127.0.0.1:$TEMPORAL_PORT"
export HOOKD_OPERATOR_KEY="${HOOKD_OPERATOR_KEY:-dev-operator-key}"
# Goroutines start at the average stack size: each attempt is a goroutine that grows its stack through
# net/http (hookd CPU per delivery -10 % in the bench; README Performance). Exported after the engine
# started, so only hookd's processes get it.
export GODEBUG="${GODEBUG:+$GODEBUG,}adaptivestackstart=1"
export HOOKD_PUBLIC_URL="${HOOKD_PUBLIC_URL:-http://127.0.0.1:$(port 8080)}"
export HOOKD_ALLOW_PRIVATE_TARGETS="${HOOKD_ALLOW_PRIVATE_TARGETS:-true}"
encryption_key "$STATE/encryption-key" "$HOOKD_BIN"

say "running migrations"
"$HOOKD_BIN" migrate
api_urls=() worker_urls=()
for ((i = 1; i <= WORKERS; i++)); do
  worker_urls+=("http://127.0.0.1:$(port $((9090 + i)))/metrics")
  say "starting worker $i (log $STATE/worker-$i.log, metrics ${worker_urls[-1]})"
  HOOKD_METRICS_ADDR="127.0.0.1:$(port $((9090 + i)))" supervise "worker-$i" "$STATE/worker-$i.log" "$HOOKD_BIN" worker
done
for ((i = 1; i <= APIS; i++)); do
  api_urls+=("http://127.0.0.1:$(port $((8079 + i)))")
  say "starting api $i (hookd ${API_CMD[*]}; log $STATE/api-$i.log, ${api_urls[-1]})"
  HOOKD_HTTP_ADDR="127.0.0.1:$(port $((8079 + i)))" supervise "api-$i" "$STATE/api-$i.log" "$HOOKD_BIN" "${API_CMD[@]}"
  wait_for "api $i" "$LAST_PID" 60 curl -fsS "${api_urls[-1]}/readyz"
done

cat <<EOF

  hookd cluster (production topology, shape $SHAPE)
  ---------------------------------------------------------------
  API             ${api_urls[*]}  (hookd ${API_CMD[*]})
  Worker metrics  ${worker_urls[*]:-(no plain workers)}
  Temporal        $HOOKD_TEMPORAL_ADDRESS (server $TEMPORAL_SERVER_VERSION on PostgreSQL)
  Temporal Web UI ${HOOKD_TEMPORAL_UI_URL:-(not started)}
  Mailpit inbox   $(has mailpit && echo "http://127.0.0.1:$(port 8025)" || echo "(not started; SMTP ${HOOKD_SMTP_ADDR:-unset})")
  Traces          ${OTEL_EXPORTER_OTLP_ENDPOINT:-(off)}$(has jaeger && echo " (Jaeger; bin/hookd trace <event id>)")
  Operator key    $HOOKD_OPERATOR_KEY
  Database        $HOOKD_DATABASE_URL
  Encryption key  $KEY_SHOWN
  Logs, pids      $STATE/*.log, $STATE/*.pid
  A process that exits is started again (backoff, logged here); Ctrl-C stops everything.
  ---------------------------------------------------------------

EOF
# Runs until Ctrl-C or SIGTERM; the supervisors restart what exits.
set +e
supervise_forever
say "every supervisor is gone; see the logs in $STATE"
exit 1
