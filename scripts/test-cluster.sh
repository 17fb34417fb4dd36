#!/usr/bin/env bash
# test-cluster.sh (`make test-cluster`, `make test-cluster-faults`): the integration tests against
# a real Temporal server on PostgreSQL (fresh databases each run) instead of the dev server.
# Arguments go to `go test` (e.g. -run TestScaleOutSurvivesKills).
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="$PWD/.cluster-test"
rm -rf "$STATE"
mkdir -p "$STATE"
LIB_NAME=test-cluster LIB_LOG_DIR="$STATE"
# shellcheck source=scripts/lib.sh
source scripts/lib.sh
trap stop_all EXIT
trap 'stop_all; exit 130' INT
trap 'stop_all; exit 143' TERM

port="${HOOKD_TEST_CLUSTER_PORT:-17233}"
for db in hookd_test_temporal hookd_test_temporal_visibility; do
  PGOPTIONS="-c client_min_messages=warning" psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)"
done
say "starting the Temporal server on 127.0.0.1:$port (log $STATE/temporal.log)"
HOOKD_RETENTION=24h start_bg "$STATE/temporal.log" scripts/temporal-server.sh "$STATE/temporal" "$port" hookd_test_temporal
wait_for temporal "$LAST_PID" 300 grep -q "temporal-server: ready" "$STATE/temporal.log"

export HOOKD_TEST_TEMPORAL_ADDRESS="127.0.0.1:$port"
export HOOKD_TEMPORAL_CLI="$PWD/bin/temporal"
go test -race -count=1 -timeout 25m "$@" ./integration
