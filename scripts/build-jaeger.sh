#!/usr/bin/env bash
# build-jaeger.sh VERSION OUT: build Jaeger (v2, the all-in-one `jaeger` binary) from the Go module
# proxy into OUT. `go install pkg@version` refuses it (its go.mod has a replace directive), so it
# is built from a throw-away module that repeats that directive. About 4 minutes on 2 cores.
set -euo pipefail
version="$1" out="$2"
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cd "$tmp"
cat > go.mod <<MOD
module hookd.local/jaeger

go 1.26

replace github.com/Shopify/sarama => github.com/Shopify/sarama v1.33.0
MOD
go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version"
go build -o "$out" github.com/jaegertracing/jaeger/cmd/jaeger
echo "built $out"
