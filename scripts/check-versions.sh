#!/usr/bin/env bash
# check-versions.sh: every ${KEY:-default} in docker-compose.yml whose KEY is pinned in
# versions.env must default to the pinned value, so `make cluster` and `docker compose up` run the
# same versions.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
checked=0
while IFS='=' read -r key value; do
  [[ "$key" =~ ^[A-Z_]+$ ]] || continue
  while read -r found; do
    [[ -n "$found" ]] || continue
    checked=$((checked + 1))
    if [[ "$found" != "$value" ]]; then
      echo "check-versions: docker-compose.yml defaults $key to $found, versions.env pins $value" >&2
      bad=1
    fi
  done < <(grep -o "\${$key:-[^}]*}" docker-compose.yml | sed "s/^\${$key:-//; s/}\$//")
done < versions.env
[[ $checked -gt 0 ]] || { echo "check-versions: docker-compose.yml uses no pinned version" >&2; exit 1; }
[[ $bad -eq 0 ]] && echo "check-versions: docker-compose.yml matches versions.env ($checked pins)"
exit $bad
