#!/usr/bin/env bash
# Throwaway MariaDB for benchmarks: datadir DIR/data, 127.0.0.1:33061, user bench/bench, db "bench",
# durability off (like tests/infra/postgres.sh's fsync=off).
# Usage: mariadb.sh start|stop [DIR]   (DIR default: $MARIADB_STATE_DIR or ${TMPDIR:-/tmp}/tracker-mariadb)
# As root the server runs as user mysql, so DIR's parents must be traversable by it (/tmp is).
# Installs mariadb-server with apt-get on first start. start prints KEY=VALUE lines (also saved to DIR/env).
set -euo pipefail
CMD=${1:-}; DIR=${2:-${MARIADB_STATE_DIR:-${TMPDIR:-/tmp}/tracker-mariadb}}
DIR=$(realpath -m "$DIR")   # absolute: paths end up in the server's options
HOST=127.0.0.1; PORT=${MARIADB_PORT:-33061}; WAIT=${MARIADB_WAIT:-30}
DATA=$DIR/data; SOCK=$DIR/mariadb.sock; DB=bench; USER_=bench; PASSWORD=bench
log() { echo "mariadb: $*" >&2; }
# alive: pid in mariadb.pid is running, not a zombie, and is a mariadbd (guards against a stale file + reused pid)
alive() {
  local p st; p=$(cat "$DIR/mariadb.pid" 2>/dev/null) && [ -n "$p" ] || return 1
  st=$(cat "/proc/$p/stat" 2>/dev/null) || return 1; st=${st##*) }
  [ "${st%% *}" != Z ] && grep -qa mariadbd "/proc/$p/cmdline"
}
# present: the pid exists and is not a zombie. Right after the launch the pid may still be the
# forked shell that has not exec'd the server yet, so the start-up loop must not ask for its name.
present() {
  local p st; p=$(cat "$DIR/mariadb.pid" 2>/dev/null) && [ -n "$p" ] || return 1
  st=$(cat "/proc/$p/stat" 2>/dev/null) || return 1; st=${st##*) }
  [ "${st%% *}" != Z ]
}
as_root_sql() { mariadb --no-defaults -S "$SOCK" -u root -N -B -e "$1"; }
# ready: the server answers a query over TCP as the benchmark user
ready() { mariadb --no-defaults -h "$HOST" -P "$PORT" -u "$USER_" -p"$PASSWORD" -N -B -e "SELECT 1" >/dev/null 2>&1; }

stop() {
  if alive; then
    pid=$(cat "$DIR/mariadb.pid"); kill -TERM "$pid"   # SIGTERM = normal shutdown
    for _ in $(seq 100); do alive || break; sleep 0.1; done
    alive && { log "pid $pid still up after 10s, SIGKILL"; kill -KILL "$pid"; }
    log "stopped mariadb (pid $pid)"
  fi
  rm -f "$DIR/mariadb.pid"
}

start() {
  if ! command -v mariadbd >/dev/null || ! command -v mariadb-install-db >/dev/null; then
    log "installing mariadb-server (apt-get)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >&2 && apt-get install -y -qq --no-install-recommends mariadb-server mariadb-client >&2
  fi
  mkdir -p "$DIR"
  local run_as=()
  if [ "$(id -u)" = 0 ]; then chown mysql: "$DIR"; run_as=(--user=mysql); fi
  if [ ! -d "$DATA/mysql" ]; then
    rm -rf "$DATA"
    mariadb-install-db --no-defaults "${run_as[@]}" --datadir="$DATA" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/install-db.log" 2>&1 ||
      { log "mariadb-install-db failed; log follows"; cat "$DIR/install-db.log" >&2; exit 1; }
  fi
  if alive; then
    log "already running (pid $(cat "$DIR/mariadb.pid"))"
  else
    # setsid: the server outlives this script and ignores the caller's terminal signals.
    setsid mariadbd --no-defaults "${run_as[@]}" --datadir="$DATA" --socket="$SOCK" --port="$PORT" \
      --bind-address="$HOST" --skip-name-resolve --pid-file="$DIR/server.pid" --log-error="$DIR/server.log" \
      --skip-log-bin --innodb-flush-log-at-trx-commit=0 --innodb-doublewrite=0 --sync-binlog=0 \
      --innodb-buffer-pool-size=128M --max-connections=200 </dev/null >/dev/null 2>&1 &
    echo $! > "$DIR/mariadb.pid"
  fi
  for _ in $(seq $((WAIT * 5))); do
    present || { log "mariadbd exited; log follows"; tail -n 30 "$DIR/server.log" >&2; stop; exit 1; }
    as_root_sql "SELECT 1" >/dev/null 2>&1 && break
    sleep 0.2
  done
  as_root_sql "SELECT 1" >/dev/null 2>&1 ||
    { log "not ready on $SOCK after ${WAIT}s; log follows"; tail -n 30 "$DIR/server.log" >&2; stop; exit 1; }
  as_root_sql "CREATE DATABASE IF NOT EXISTS $DB;
    CREATE USER IF NOT EXISTS '$USER_'@'$HOST' IDENTIFIED BY '$PASSWORD';
    CREATE USER IF NOT EXISTS '$USER_'@'localhost' IDENTIFIED BY '$PASSWORD';
    GRANT ALL ON *.* TO '$USER_'@'$HOST'; GRANT ALL ON *.* TO '$USER_'@'localhost';"
  ready || { log "user $USER_ cannot connect to $HOST:$PORT; log follows"; tail -n 30 "$DIR/server.log" >&2; exit 1; }
  cat > "$DIR/env" <<EOF
MARIADB_HOST=$HOST
MARIADB_PORT=$PORT
MARIADB_USER=$USER_
MARIADB_PASSWORD=$PASSWORD
MARIADB_DATABASE=$DB
MARIADB_SOCKET=$SOCK
EOF
  cat "$DIR/env"
}

case "$CMD" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop [DIR]" >&2; exit 2 ;;
esac
