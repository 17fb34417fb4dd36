# shellcheck shell=bash
# shellcheck disable=SC2317  # functions run from traps / indirectly
# supervise.sh: keeps `make cluster`'s processes running, as systemd's Restart=always with a
# growing RestartSec would, or a Kubernetes Deployment. Source scripts/lib.sh first.
#
#   supervise_traps             on exit, Ctrl-C (SIGINT) or SIGTERM: stop everything, then exit
#   supervise NAME LOG CMD...   start CMD under a supervisor
#   supervise_forever           wait until a signal (the traps stop everything)
#
# Each CMD runs in a process group of its own (setsid), output appended to LOG, its pid in
# $LIB_LOG_DIR/NAME.pid. When it exits without being asked to, whatever is left of its process
# group is stopped (a killed scripts/temporal-server.sh leaves its server behind otherwise), the
# exit is logged with its status, and CMD starts again after a delay that doubles from
# HOOKD_RESTART_MIN_MS (default 1000) up to HOOKD_RESTART_MAX_MS (default 30000); a process that
# stayed up HOOKD_RESTART_RESET_MS (default 60000) starts the next delay from the minimum again.
# Every exit counts as unexpected: each of these programs is meant to run until it is stopped.
# The other processes are not touched. A supervisor stops its process on SIGTERM (TERM to the
# group, SIGKILL after 15 s) and exits.

SUPERVISORS=() # supervisor pids, in start order
SUPERVISED=()  # their names

# _now_ms: wall-clock milliseconds.
_now_ms() { local t="${EPOCHREALTIME/./}"; echo $((t / 1000)); }

# _ms SECONDS-AS-MS: 1500 -> 1.5s
_ms() { printf '%d.%03ds' $(($1 / 1000)) $(($1 % 1000)) | sed 's/\.\?0*s$/s/'; }

# _exit_text STATUS: "exit status 3" or "killed by SIGKILL".
_exit_text() {
  if (($1 > 128)) && kill -l "$(($1 - 128))" >/dev/null 2>&1; then
    echo "killed by SIG$(kill -l "$(($1 - 128))")"
  else
    echo "exit status $1"
  fi
}

# _group_live PGID: does a process of the group still run? Zombies do not count: one left to init
# can wait a second or more to be reaped, and holds nothing.
_group_live() {
  ps -e -o pgid= -o stat= 2>/dev/null | awk -v g="$1" '$1 == g && $2 !~ /^Z/ { f = 1 } END { exit !f }'
}

# _stop_group PGID SIGNAL SECONDS: signal a process group, wait, then SIGKILL what is left.
_stop_group() {
  local pgid="$1" sig="$2" secs="$3" i
  _group_live "$pgid" || return 0
  kill "-$sig" -- "-$pgid" 2>/dev/null || true
  for ((i = 0; i < secs * 10; i++)); do
    _group_live "$pgid" || return 0
    sleep 0.1
  done
  kill -KILL -- "-$pgid" 2>/dev/null || true
}

# _supervisor NAME LOG CMD...: the loop one supervisor runs, in a background subshell.
_supervisor() {
  local name="$1" logf="$2"
  shift 2
  local pidf="$LIB_LOG_DIR/$name.pid" min="${HOOKD_RESTART_MIN_MS:-1000}" max="${HOOKD_RESTART_MAX_MS:-30000}"
  local reset="${HOOKD_RESTART_RESET_MS:-60000}" delay child status started up restarts=0 sleeper msg
  local stopping=""
  set +e # statuses are read, not fatal, in here
  delay=$min
  # The trap only sets a flag: every wait below returns early on it and the loop stops the child.
  # (The parent repeats SIGTERM until this process is gone, so a signal landing between two
  # statements is not lost.)
  trap 'stopping=1' TERM
  trap '' INT # Ctrl-C reaches the script, whose trap stops the supervisors in order
  while [[ -z "$stopping" ]]; do
    started=$(_now_ms)
    setsid "$@" >>"$logf" 2>&1 </dev/null &
    child=$!
    echo "$child" >"$pidf"
    status=""
    while [[ -z "$stopping" ]] && kill -0 "$child" 2>/dev/null; do
      wait "$child" 2>/dev/null
      status=$? # the child's, or >128 when the trap interrupted the wait (then stopping is set)
    done
    if [[ -n "$stopping" ]]; then
      _stop_group "$child" TERM 15
      break
    fi
    # The leader is gone (wait reaped it, or it was reaped before the loop looked): take its exit
    # status if wait got it, and clear what is left of its group before starting anew.
    up=$(($(_now_ms) - started))
    [[ -n "$status" ]] || { wait "$child" 2>/dev/null; status=$?; }
    _stop_group "$child" TERM 5
    if ((up >= reset)); then delay=$min; fi
    restarts=$((restarts + 1))
    msg="$name (pid $child) exited: $(_exit_text "$status") after $(_ms "$up"); restart $restarts in $(_ms "$delay")"
    say "$msg"
    printf '%s %s: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$LIB_NAME" "$msg" >>"$logf"
    sleep "$(_ms "$delay" | tr -d s)" &
    sleeper=$!
    while [[ -z "$stopping" ]] && kill -0 "$sleeper" 2>/dev/null; do wait "$sleeper"; done
    kill "$sleeper" 2>/dev/null || true
    delay=$((delay * 2))
    if ((delay > max)); then delay=$max; fi
  done
  rm -f "$pidf"
}

# supervise NAME LOG CMD...: start CMD under a supervisor; LAST_PID is CMD's first pid (so
# wait_for fails if the first start dies, as before supervision), LAST_SUPERVISOR the supervisor's.
supervise() {
  local name="$1" pidf="$LIB_LOG_DIR/$1.pid" i
  rm -f "$pidf"
  _supervisor "$@" &
  SUPERVISORS+=("$!")
  SUPERVISED+=("$name")
  LAST_SUPERVISOR="$!"
  for ((i = 0; i < 100; i++)); do
    [[ -s "$pidf" ]] && break
    sleep 0.05
  done
  LAST_PID="$(cat "$pidf" 2>/dev/null || true)"
}

# supervise_stop PID NAME: ask one supervisor to stop its process and wait until it has (SIGKILL
# to the supervisor and the group of its last process after 20 s).
supervise_stop() {
  local sup="$1" name="$2" i pgid
  for ((i = 0; i < 200; i++)); do
    kill -0 "$sup" 2>/dev/null || break
    kill -TERM "$sup" 2>/dev/null || true
    sleep 0.1
  done
  if kill -0 "$sup" 2>/dev/null; then
    pgid="$(cat "$LIB_LOG_DIR/$name.pid" 2>/dev/null || true)"
    kill -KILL "$sup" 2>/dev/null || true
    [[ -z "$pgid" ]] || kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  wait "$sup" 2>/dev/null || true
}

# supervise_stop_all: stop every supervised process, newest first (APIs before the Temporal
# server they talk to), then what start_bg started.
supervise_stop_all() {
  local i
  for ((i = ${#SUPERVISORS[@]} - 1; i >= 0; i--)); do
    supervise_stop "${SUPERVISORS[i]}" "${SUPERVISED[i]}"
  done
  stop_all
}

# supervise_forever: block until a trapped signal ends the script. Returns if every supervisor
# is gone (only if something killed them).
supervise_forever() {
  local pid
  while :; do
    wait # returns on a trapped signal (the trap exits) or when every child is gone
    for pid in "${SUPERVISORS[@]}"; do
      if kill -0 "$pid" 2>/dev/null; then continue 2; fi
    done
    return 1
  done
}

_SUPERVISE_CLEANED=""
_supervise_cleanup() {
  [[ -z "$_SUPERVISE_CLEANED" ]] || return 0
  _SUPERVISE_CLEANED=1
  trap - INT TERM
  say "stopping"
  supervise_stop_all
}

# supervise_traps: stop every process (supervised or start_bg) when the script exits, or on
# SIGINT/SIGTERM (exit 130/143).
supervise_traps() {
  trap _supervise_cleanup EXIT
  trap '_supervise_cleanup; exit 130' INT
  trap '_supervise_cleanup; exit 143' TERM
}
