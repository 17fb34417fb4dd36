#!/usr/bin/env bash
# shellcheck disable=SC2317  # functions run from traps / indirectly
# dev.sh: run hookd's whole local stack in the foreground.
#
#   PostgreSQL (127.0.0.1:5432, db hookd)   via scripts/ensure-postgres.sh
#   Temporal dev server (7233, UI 8233)     bin/temporal server start-dev
#   Mailpit (UI/API 8025, SMTP 1025)        bin/mailpit
#   Jaeger (OTLP 4317/4318, API 16686)      bin/jaeger-<version>: hookd's traces
#   hookd migrate, then hookd dev (API + worker in one process)
#
# Ctrl-C (or SIGTERM) stops hookd and whatever this script started.
# Temporal/Mailpit already listening on their ports are reused, not restarted.
# Every HOOKD_* variable already set in the environment is respected.
# Knobs: DEV_TEMPORAL_PORT (7233) DEV_TEMPORAL_UI_PORT (8233)
#        DEV_MAILPIT_HTTP_PORT (8025) DEV_MAILPIT_SMTP_PORT (1025)
#        DEV_TEMPORAL_BIN DEV_MAILPIT_BIN DEV_HOOKD_BIN (default bin/*)
# Logs: .dev/temporal.log, .dev/mailpit.log, .dev/jaeger.log. Temporal state: .dev/temporal.db,
# opened with a write-ahead log and synchronous=normal (as testenv.SQLitePragmas: about twice the
# dev server's throughput; a power cut can lose its last commits, a crash of the process cannot).
# Encryption key (HOOKD_ENCRYPTION_KEY, unless set): made once into .dev/encryption-key and kept;
# the dev database's secrets cannot be read without it.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT="$PWD"
DEV_DIR="$ROOT/.dev"
mkdir -p "$DEV_DIR"

DEV_TEMPORAL_BIN="${DEV_TEMPORAL_BIN:-$ROOT/bin/temporal}"
DEV_MAILPIT_BIN="${DEV_MAILPIT_BIN:-$ROOT/bin/mailpit}"
DEV_HOOKD_BIN="${DEV_HOOKD_BIN:-$ROOT/bin/hookd}"
DEV_JAEGER_BIN="${DEV_JAEGER_BIN:-$ROOT/bin/jaeger-$(sed -n 's/^JAEGER_VERSION=//p' versions.env)}"

DEV_TEMPORAL_PORT="${DEV_TEMPORAL_PORT:-7233}"
DEV_TEMPORAL_UI_PORT="${DEV_TEMPORAL_UI_PORT:-8233}"
DEV_MAILPIT_HTTP_PORT="${DEV_MAILPIT_HTTP_PORT:-8025}"
DEV_MAILPIT_SMTP_PORT="${DEV_MAILPIT_SMTP_PORT:-1025}"

LIB_NAME=dev LIB_LOG_DIR="$DEV_DIR"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh

for b in "$DEV_TEMPORAL_BIN" "$DEV_MAILPIT_BIN" "$DEV_JAEGER_BIN" "$DEV_HOOKD_BIN"; do
  [[ -x "$b" ]] || die "$b not found; run 'make tools build' (or 'make dev')"
done

# ---------------------------------------------------------------- cleanup
HOOKD_PID=""
CLEANED=""
cleanup() {
  [[ -z "$CLEANED" ]] || return 0
  CLEANED=1
  trap - INT TERM
  if [[ -n "$HOOKD_PID" ]]; then
    say "stopping hookd"
    stop_group "$HOOKD_PID" TERM 15
    wait "$HOOKD_PID" 2>/dev/null || true
  fi
  stop_all
  [[ ${#PGIDS[@]} -eq 0 ]] || say "stopped temporal/mailpit/jaeger"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM

# ---------------------------------------------------------------- postgres
scripts/ensure-postgres.sh hookd

# ---------------------------------------------------------------- temporal
temporal_healthy() {
  "$DEV_TEMPORAL_BIN" operator cluster health --address "127.0.0.1:$DEV_TEMPORAL_PORT" --command-timeout 2s
}
if port_open "$DEV_TEMPORAL_PORT"; then
  say "port $DEV_TEMPORAL_PORT already in use: reusing the Temporal server there"
  wait_for temporal "" 30 temporal_healthy
else
  say "starting Temporal dev server (log $DEV_DIR/temporal.log)"
  start_bg "$DEV_DIR/temporal.log" "$DEV_TEMPORAL_BIN" server start-dev \
    --ip 127.0.0.1 --port "$DEV_TEMPORAL_PORT" --ui-port "$DEV_TEMPORAL_UI_PORT" \
    --db-filename "$DEV_DIR/temporal.db" --log-level warn \
    --sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal \
    --dynamic-config-value matching.numTaskqueueReadPartitions=1 \
    --dynamic-config-value matching.numTaskqueueWritePartitions=1 \
    --search-attribute HookdEventType=Keyword \
    --search-attribute HookdTopic=Keyword \
    --search-attribute HookdSubscriptionId=Keyword \
    --search-attribute HookdDeliveryStatus=Keyword \
    --search-attribute HookdEventId=Keyword
  wait_for temporal "$LAST_PID" 60 temporal_healthy
fi

# ---------------------------------------------------------------- mailpit
if port_open "$DEV_MAILPIT_SMTP_PORT"; then
  say "port $DEV_MAILPIT_SMTP_PORT already in use: reusing the SMTP server there"
else
  say "starting Mailpit (log $DEV_DIR/mailpit.log)"
  start_bg "$DEV_DIR/mailpit.log" "$DEV_MAILPIT_BIN" \
    --listen "127.0.0.1:$DEV_MAILPIT_HTTP_PORT" --smtp "127.0.0.1:$DEV_MAILPIT_SMTP_PORT" \
    --disable-version-check
  wait_for mailpit "$LAST_PID" 30 port_open "$DEV_MAILPIT_SMTP_PORT"
  wait_for mailpit "$LAST_PID" 30 port_open "$DEV_MAILPIT_HTTP_PORT"
fi

# ---------------------------------------------------------------- jaeger
# Jaeger's all-in-one keeps traces in memory and listens on its own fixed ports (OTLP 4317 gRPC,
# 4318 HTTP; query API 16686).
if port_open 4318; then
  say "port 4318 already in use: sending traces to the OTLP collector there"
else
  say "starting Jaeger (log $DEV_DIR/jaeger.log)"
  start_bg "$DEV_DIR/jaeger.log" "$DEV_JAEGER_BIN"
  wait_for jaeger "$LAST_PID" 60 port_open 4318
  wait_for jaeger "$LAST_PID" 60 port_open 16686
fi
export OTEL_EXPORTER_OTLP_ENDPOINT="${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:4318}"
export OTEL_SERVICE_NAME="${OTEL_SERVICE_NAME:-hookd}"

# ---------------------------------------------------------------- hookd
export HOOKD_DATABASE_URL="${HOOKD_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/hookd?sslmode=disable}"
export HOOKD_TEMPORAL_ADDRESS="${HOOKD_TEMPORAL_ADDRESS:-127.0.0.1:$DEV_TEMPORAL_PORT}"
export HOOKD_SMTP_ADDR="${HOOKD_SMTP_ADDR:-127.0.0.1:$DEV_MAILPIT_SMTP_PORT}"
export HOOKD_HTTP_ADDR="${HOOKD_HTTP_ADDR:-127.0.0.1:8080}"
export HOOKD_OPERATOR_KEY="${HOOKD_OPERATOR_KEY:-dev-operator-key}"
export HOOKD_TEMPORAL_UI_URL="${HOOKD_TEMPORAL_UI_URL:-http://127.0.0.1:$DEV_TEMPORAL_UI_PORT}"
export HOOKD_ALLOW_PRIVATE_TARGETS="${HOOKD_ALLOW_PRIVATE_TARGETS:-true}"
# New goroutines start with the stack size the last GC saw on average, not the minimum: hookd
# starts one per attempt (and net/http and the Temporal SDK per connection and task), each grown
# through net/http's stack otherwise; about a tenth of hookd's CPU per delivery (issue 27). Only an
# environment setting: the runtime accepts no //go:debug directive for it.
case ",${GODEBUG:-}," in
  *,adaptivestackstart=*) ;;
  *) export GODEBUG="${GODEBUG:+$GODEBUG,}adaptivestackstart=1" ;;
esac

# Secrets are stored encrypted under HOOKD_ENCRYPTION_KEY. The dev key is made once and kept, so
# the secrets already in the dev database stay readable across runs.
encryption_key "$DEV_DIR/encryption-key" "$DEV_HOOKD_BIN"

say "running migrations"
"$DEV_HOOKD_BIN" migrate

cat <<EOF

  hookd dev stack
  ---------------------------------------------------------------
  API             http://$HOOKD_HTTP_ADDR
  Temporal Web UI $HOOKD_TEMPORAL_UI_URL
  Mail (e-mails)  curl http://127.0.0.1:$DEV_MAILPIT_HTTP_PORT/api/v1/messages   (SMTP $HOOKD_SMTP_ADDR;
                  Mailpit's API: this build has no web inbox page)
  Traces          $OTEL_EXPORTER_OTLP_ENDPOINT (Jaeger; read them: HOOKD_API_KEY=<app key> bin/hookd trace <event id>)
  Operator key    $HOOKD_OPERATOR_KEY
  Database        $HOOKD_DATABASE_URL
  Encryption key  $KEY_SHOWN
  Logs            $DEV_DIR/temporal.log, $DEV_DIR/mailpit.log, $DEV_DIR/jaeger.log
  Ctrl-C stops everything this script started.
  ---------------------------------------------------------------

EOF

# hookd runs in its own process group so that the traps above decide how it
# is stopped (SIGTERM, then SIGKILL after 15s); its output stays on this terminal.
setsid "$DEV_HOOKD_BIN" dev </dev/null &
HOOKD_PID="$!"
set +e
wait "$HOOKD_PID"
rc=$?
set -e
HOOKD_PID=""
say "hookd exited with status $rc"
exit "$rc"
