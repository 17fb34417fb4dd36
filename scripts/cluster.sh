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
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
STATE="$ROOT/.cluster"
mkdir -p "$STATE"
# shellcheck source=versions.env
source versions.env
LIB_NAME=cluster LIB_LOG_DIR="$STATE"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
# shellcheck source=scripts/supervise.sh
source scripts/supervise.sh

HOOKD_BIN="$ROOT/bin/hookd"
UI_BIN="$ROOT/bin/temporal-ui-$TEMPORAL_UI_VERSION"
JAEGER_BIN="$ROOT/bin/jaeger-$JAEGER_VERSION"
for b in "$HOOKD_BIN" "$ROOT/bin/temporal" "$ROOT/bin/mailpit" "$UI_BIN" "$JAEGER_BIN" \
  "$ROOT/bin/temporal-server-$TEMPORAL_SERVER_VERSION" "$ROOT/bin/temporal-sql-$TEMPORAL_SERVER_VERSION"; do
  [[ -x "$b" ]] || die "$b not found; run 'make cluster'"
done
for p in 7233 8233 8025 1025 4317 4318 16686 8080 8081 9091 9092; do
  ! port_open "$p" || die "port $p is in use (a 'make dev' still running?); stop it first"
done

supervise_traps

export HOOKD_RETENTION="${HOOKD_RETENTION:-720h}"
scripts/ensure-postgres.sh hookd_cluster

say "starting the Temporal server (log $STATE/temporal.log)"
supervise temporal "$STATE/temporal.log" scripts/temporal-server.sh "$STATE/temporal" 7233 temporal
TEMPORAL_PID=$LAST_PID
wait_for temporal "$TEMPORAL_PID" 300 grep -q "temporal-server: ready" "$STATE/temporal.log"

say "starting the Temporal Web UI (log $STATE/ui.log)"
mkdir -p "$STATE/ui/config"
cat >"$STATE/ui/config/production.yaml" <<EOF
temporalGrpcAddress: 127.0.0.1:7233
host: 127.0.0.1
port: 8233
enableUi: true
defaultNamespace: default
cors:
  cookieInsecure: true
EOF
supervise temporal-ui "$STATE/ui.log" "$UI_BIN" --root "$STATE/ui" --config config --env production start
wait_for temporal-ui "$LAST_PID" 60 port_open 8233

say "starting Mailpit (log $STATE/mailpit.log)"
supervise mailpit "$STATE/mailpit.log" "$ROOT/bin/mailpit" --listen 127.0.0.1:8025 --smtp 127.0.0.1:1025 --disable-version-check
wait_for mailpit "$LAST_PID" 30 port_open 1025

say "starting Jaeger (log $STATE/jaeger.log)"
supervise jaeger "$STATE/jaeger.log" "$JAEGER_BIN"
wait_for jaeger "$LAST_PID" 60 port_open 4318
export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:4318}"

export HOOKD_DATABASE_URL="${HOOKD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hookd_cluster?sslmode=disable}"
export HOOKD_TEMPORAL_ADDRESS=127.0.0.1:7233
export HOOKD_TEMPORAL_UI_URL="${HOOKD_TEMPORAL_UI_URL:-http://127.0.0.1:8233}"
export HOOKD_SMTP_ADDR=127.0.0.1:1025
export HOOKD_OPERATOR_KEY="${HOOKD_OPERATOR_KEY:-dev-operator-key}"
export HOOKD_PUBLIC_URL="${HOOKD_PUBLIC_URL:-http://127.0.0.1:8080}"
export HOOKD_ALLOW_PRIVATE_TARGETS="${HOOKD_ALLOW_PRIVATE_TARGETS:-true}"
encryption_key "$STATE/encryption-key" "$HOOKD_BIN"

say "running migrations"
"$HOOKD_BIN" migrate
for i in 1 2; do
  say "starting worker $i (log $STATE/worker-$i.log, metrics http://127.0.0.1:909$i/metrics)"
  HOOKD_METRICS_ADDR=127.0.0.1:909$i supervise "worker-$i" "$STATE/worker-$i.log" "$HOOKD_BIN" worker
done
for i in 0 1; do
  say "starting api $((i + 1)) (log $STATE/api-$((i + 1)).log, http://127.0.0.1:808$i)"
  HOOKD_HTTP_ADDR=127.0.0.1:808$i supervise "api-$((i + 1))" "$STATE/api-$((i + 1)).log" "$HOOKD_BIN" api
  wait_for "api $((i + 1))" "$LAST_PID" 60 curl -fsS "http://127.0.0.1:808$i/readyz"
done

cat <<EOF

  hookd cluster (production topology)
  ---------------------------------------------------------------
  API             http://127.0.0.1:8080  and  http://127.0.0.1:8081
  Worker metrics  http://127.0.0.1:9091/metrics, http://127.0.0.1:9092/metrics
  Temporal        127.0.0.1:7233 (server $TEMPORAL_SERVER_VERSION on PostgreSQL)
  Temporal Web UI $HOOKD_TEMPORAL_UI_URL
  Mailpit inbox   http://127.0.0.1:8025
  Traces          $OTEL_EXPORTER_OTLP_ENDPOINT (Jaeger; bin/hookd trace <event id>)
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
