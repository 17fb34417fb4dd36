# shellcheck shell=bash
# shellcheck disable=SC2317  # functions run from traps / indirectly
# Process helpers shared by dev.sh and cluster.sh: start programs in process groups of their own
# with their output in log files, wait for them to answer, and stop them all on exit.
# Set LIB_NAME (message prefix) and LIB_LOG_DIR before sourcing.

PGIDS=()    # process groups started, in order
LAST_PID=""

say() { printf '%s: %s\n' "$LIB_NAME" "$*"; }
die() { printf '%s: error: %s\n' "$LIB_NAME" "$*" >&2; exit 1; }

# stop_group PGID SIGNAL SECONDS: signal a process group, wait, then SIGKILL it.
stop_group() {
  local pgid="$1" sig="$2" secs="$3" i
  kill -0 -- "-$pgid" 2>/dev/null || return 0
  kill "-$sig" -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    kill -0 -- "-$pgid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# stop_all stops every group started, newest first.
stop_all() {
  local i
  for ((i = ${#PGIDS[@]} - 1; i >= 0; i--)); do
    stop_group "${PGIDS[i]}" TERM 15
  done
}

# start_bg LOG CMD...: start CMD in its own session/process group, output to LOG. In a
# non-interactive shell the background child is not a group leader, so setsid execs in place and
# $! is both the pid and the process group id.
start_bg() {
  local logf="$1"
  shift
  setsid "$@" >>"$logf" 2>&1 </dev/null &
  PGIDS+=("$!")
  LAST_PID="$!"
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# wait_for NAME PID SECONDS CMD...: poll CMD until it succeeds or PID dies.
wait_for() {
  local name="$1" pid="$2" secs="$3" i
  shift 3
  for ((i = 0; i < secs * 4; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      die "$name exited during startup; see its log in $LIB_LOG_DIR"
    fi
    sleep 0.25
  done
  die "$name not ready after ${secs}s; see its log in $LIB_LOG_DIR"
}

# encryption_key FILE HOOKD_BIN: export HOOKD_ENCRYPTION_KEY, made once into FILE and kept (the
# secrets in the database cannot be read without it), unless the environment sets it.
encryption_key() {
  local file="$1" hookd="$2"
  KEY_SHOWN="(from the environment)"
  if [[ -z "${HOOKD_ENCRYPTION_KEY:-}" ]]; then
    if [[ ! -s "$file" ]]; then
      say "generating an encryption key into $file"
      (umask 077 && "$hookd" gen-encryption-key -id "$(basename "$(dirname "$file")" | tr -dc 'a-z')1" >"$file.tmp")
      mv "$file.tmp" "$file"
    fi
    HOOKD_ENCRYPTION_KEY="$(<"$file")"
    KEY_SHOWN="$file"
  fi
  export HOOKD_ENCRYPTION_KEY
}
