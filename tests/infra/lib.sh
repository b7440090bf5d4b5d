# Shared by the service scripts of tests/infra (sourced, never run): logging, pid checks, launching
# in a session of its own, bounded waits, stopping with a grace period, installs, KEY=VALUE output.
# A script sets SVC (its name in log lines), DIR and CMD, defines start and stop, then calls dispatch.
# Every wait is bounded; a failed start prints the service's log and stops what it started.

log() { echo "$SVC: $*" >&2; }

# present PIDFILE: its pid exists and is not a zombie. Right after a launch the pid may still be the
# forked shell that has not exec'd the server yet, so start-up waits must not ask for its name.
present() {
  local p st; p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] || return 1
  st=$(cat "/proc/$p/stat" 2>/dev/null) || return 1; st=${st##*) }
  [ "${st%% *}" != Z ]
}

# alive PIDFILE NAME: present, and its command line contains NAME (guards against a stale file + reused pid)
alive() { present "$1" && grep -qa "$2" "/proc/$(cat "$1")/cmdline"; }

# launch PIDFILE LOGFILE CMD...: run CMD in a session of its own, output to LOGFILE, its pid into PIDFILE
launch() {
  local pidf=$1 logf=$2; shift 2
  setsid "$@" >"$logf" 2>&1 </dev/null &
  echo $! > "$pidf"
}

# refuse_busy_port HOST PORT: exit when something already listens there (it would pass a readiness probe)
refuse_busy_port() {
  if (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; then log "port $1:$2 is already in use"; exit 1; fi
}

# die MESSAGE LOGFILE...: say why, show the end of the logs, stop what was started, exit 1
die() {
  local why=$1; shift
  log "$why; log follows"; tail -n 40 "$@" >&2 || true
  stop; exit 1
}

# wait_ready PIDFILE SECONDS WHAT LOGFILE CMD...: poll CMD every 0.2 s until it succeeds; die if the
# process in PIDFILE exits first or SECONDS pass
wait_ready() {
  local pidf=$1 secs=$2 what=$3 logf=$4; shift 4
  for _ in $(seq $((secs * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    present "$pidf" || die "$what exited before it was ready" "$logf"
    sleep 0.2
  done
  "$@" >/dev/null 2>&1 || die "$what not ready after ${secs}s" "$logf"
}

# stop_pid PIDFILE NAME [SIGNAL] [GRACE_S] [LAST]: send SIGNAL (default TERM) to the process if it is
# alive, then LAST (default KILL) if it is still up after GRACE_S (default 5) s; forget the pid file
stop_pid() {
  local pidf=$1 name=$2 sig=${3:-TERM} grace=${4:-5} last=${5:-KILL} p
  if alive "$pidf" "$name"; then
    p=$(cat "$pidf"); kill -"$sig" "$p"
    for _ in $(seq $((grace * 10))); do alive "$pidf" "$name" || break; sleep 0.1; done
    alive "$pidf" "$name" && { log "$name (pid $p) still up after ${grace}s: SIG$last"; kill -"$last" "$p"; }
    log "stopped $name (pid $p)"
  fi
  rm -f "$pidf"
}

# pip_ensure IMPORTS SPEC...: pip-install the SPECs with $PY unless it can import IMPORTS ("a, b.c")
pip_ensure() {
  local imports=$1; shift
  "$PY" -c "import $imports" 2>/dev/null && return 0
  log "installing $* (pip)"
  "$PY" -m pip install -q "$@" >&2
}

# apt_ensure PACKAGE...: install the packages with apt-get (the caller checks whether they are missing)
apt_ensure() {
  log "installing $* (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends "$@" >&2
}

# write_env: save the KEY=VALUE lines on stdin as DIR/env and print them (what start returns to callers)
write_env() { cat > "$DIR/env"; cat "$DIR/env"; }

# dispatch ARGS: run start or stop as CMD says ("ARGS" completes the usage line)
dispatch() {
  case "$CMD" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop $1" >&2; exit 2 ;;
  esac
}
