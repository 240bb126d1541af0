#!/usr/bin/env bash
# Starts and stops a self-contained draven serving stack: fcgiwrap (the CGI runner) and nginx
# with its own prefix, both on loopback, everything under $RUN_DIR.
#
#   STATE_DIR=… BIN_DIR=… [PORT=8080] [SECRETS_DIR=…] [FCGI_CHILDREN=2×cores] [SWEEP_EVERY=5s] [DELIVER=path]
#   [DEMO_PROVIDER_PORT=8081] [RATE_LIMIT=50r/s] [RATE_BURST=200] [RUNNER_FILE=infra/runner/draven-runner.sh]
#   [OPENAPI_FILE=infra/openapi.yaml]
#   infra/stack.sh start|stop|status
#
# With SWEEP_EVERY, `start` also runs the `draven sweep --every` service (it delivers due
# outbox rows and keeps the store open). `stop` stops exactly the processes `start` recorded
# (by PID, checked against /proc).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
action="${1:-}"
: "${STATE_DIR:?set STATE_DIR}"
STATE_DIR="$(mkdir -p "$STATE_DIR" && cd "$STATE_DIR" && pwd)"
RUN_DIR="${RUN_DIR:-$STATE_DIR/run}"
PORT="${PORT:-8080}"
SECRETS_DIR="${SECRETS_DIR:-$STATE_DIR/secrets}"
# fcgiwrap workers: two per core. A function is CPU-bound (with the store held open its commit
# does not wait for the disk), so more processes than cores only take turns on them: on 2 cores,
# 4 workers served webhook-receive 4-8 % faster than 8, with a 25-30 % lower p99 at c = 8
# (`make bench`; README, "fcgiwrap workers"). Its response is complete when it closes stdout, so
# draven-deliver running on after it never holds a worker.
FCGI_CHILDREN="${FCGI_CHILDREN:-$(( $(nproc) * 2 ))}"
# nginx's per-address rate limit on the functions' routes (limit_req): RATE_LIMIT sustained,
# RATE_BURST answered at once above it; beyond that 429. The e2e suite and `make bench` raise it
# (their load comes from one address, 127.0.0.1).
RATE_LIMIT="${RATE_LIMIT:-50r/s}"
RATE_BURST="${RATE_BURST:-200}"
NGINX="${NGINX:-/usr/sbin/nginx}"
FCGIWRAP="${FCGIWRAP:-/usr/sbin/fcgiwrap}"
socket="$RUN_DIR/fcgiwrap.sock"
# The shell runner nginx serves as GET /runner.sh (its version line and SHA-256 go in the headers).
RUNNER_FILE="${RUNNER_FILE:-$here/runner/draven-runner.sh}"
# The OpenAPI document nginx serves as GET /api/v1/openapi.yaml.
OPENAPI_FILE="${OPENAPI_FILE:-$here/openapi.yaml}"

# Is PID file $1 naming a live process whose command line contains $2?
alive() {
  local pid
  [ -s "$1" ] || return 1
  pid="$(cat "$1" 2>/dev/null)" || return 1  # nginx removes its pid file as it exits
  [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$2"
}

stop_pid() {  # pidfile, program name, signal
  local pidfile="$1" name="$2" sig="$3" pid
  if alive "$pidfile" "$name"; then
    pid="$(cat "$pidfile")"
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 50); do alive "$pidfile" "$name" || break; sleep 0.1; done
    if alive "$pidfile" "$name"; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
  rm -f "$pidfile"
}

# The live members of process group $1 whose command line contains $2.
group_members() {
  local pid
  for pid in $(pgrep -g "$1" 2>/dev/null); do
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q -- "$2" && echo "$pid"
  done
}

# fcgiwrap -c N forks N workers; it runs as its own process group (setsid), recorded in the
# pid file, and the whole group is stopped so no worker is left behind.
stop_group() {  # pidfile, program name
  local pidfile="$1" name="$2" pgid
  [ -s "$pidfile" ] || return 0
  pgid="$(cat "$pidfile" 2>/dev/null)" || return 0
  if [ -n "$(group_members "$pgid" "$name")" ]; then
    kill -TERM -- "-$pgid" 2>/dev/null || true
    for _ in $(seq 50); do [ -z "$(group_members "$pgid" "$name")" ] && break; sleep 0.1; done
    [ -n "$(group_members "$pgid" "$name")" ] && kill -KILL -- "-$pgid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null
}

start() {
  : "${BIN_DIR:?set BIN_DIR to the directory holding the function executables}"
  BIN_DIR="$(cd "$BIN_DIR" && pwd)"
  if alive "$RUN_DIR/nginx.pid" nginx || alive "$RUN_DIR/sweep.pid" "draven sweep" || { [ -s "$RUN_DIR/fcgiwrap.pid" ] && [ -n "$(group_members "$(cat "$RUN_DIR/fcgiwrap.pid")" fcgiwrap)" ]; }; then
    echo "stack.sh: a stack is already running from $RUN_DIR (stop it first)" >&2; exit 1
  fi
  if port_in_use; then echo "stack.sh: 127.0.0.1:$PORT is already in use" >&2; exit 1; fi
  mkdir -p "$RUN_DIR/tmp" "$RUN_DIR/extra.d" "$SECRETS_DIR"
  local user_line="" runner_version runner_sha256
  runner_version="$(sed -n 's/^# draven-runner version \([0-9][0-9]*\)$/\1/p' "$RUNNER_FILE" | head -n 1)"
  runner_sha256="$(sha256sum "$RUNNER_FILE" | cut -d' ' -f1)"
  [ -n "$runner_version" ] || { echo "stack.sh: $RUNNER_FILE has no '# draven-runner version N' line" >&2; exit 1; }
  [ "$(id -u)" = 0 ] && user_line="user root root;"  # workers must reach the root-owned socket
  for f in nginx.conf draven.conf fastcgi_params.draven problems.draven function_route.draven function_answer.draven; do
    sed -e "s|@RUN_DIR@|$RUN_DIR|g" -e "s|@PORT@|$PORT|g" -e "s|@BIN_DIR@|$BIN_DIR|g" \
        -e "s|@FCGI_SOCKET@|$socket|g" -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@SECRETS_DIR@|$SECRETS_DIR|g" \
        -e "s|@USER_LINE@|$user_line|g" -e "s|@DELIVER@|${DELIVER:-$BIN_DIR/draven-deliver}|g" \
        -e "s|@RATE_LIMIT@|$RATE_LIMIT|g" -e "s|@RATE_BURST@|$RATE_BURST|g" -e "s|@RUNNER_FILE@|$RUNNER_FILE|g" \
        -e "s|@OPENAPI_FILE@|$OPENAPI_FILE|g" \
        -e "s|@RUNNER_VERSION@|$runner_version|g" -e "s|@RUNNER_SHA256@|$runner_sha256|g" "$here/nginx/$f.in" >"$RUN_DIR/$f"
  done

  # fcgiwrap passes its own environment to every CGI child: start it with an empty one, so
  # functions see only what nginx passes. setsid makes it the leader of its own process group
  # (a background job of a non-interactive shell is not a group leader, so setsid execs in
  # place and $! is fcgiwrap's pid, which is also the group id).
  rm -f "$socket"
  env -i PATH=/usr/bin:/bin setsid "$FCGIWRAP" -c "$FCGI_CHILDREN" -s "unix:$socket" \
    </dev/null >>"$RUN_DIR/fcgiwrap.log" 2>&1 &
  echo $! >"$RUN_DIR/fcgiwrap.pid"
  for _ in $(seq 100); do [ -S "$socket" ] && break; sleep 0.05; done
  if [ ! -S "$socket" ]; then
    echo "stack.sh: fcgiwrap did not create $socket" >&2; cat "$RUN_DIR/fcgiwrap.log" >&2; stop; exit 1
  fi

  if ! "$NGINX" -t -q -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf" || ! "$NGINX" -p "$RUN_DIR" -c "$RUN_DIR/nginx.conf"; then
    echo "stack.sh: nginx did not start" >&2; cat "$RUN_DIR/error.log" >&2 2>/dev/null || true; stop; exit 1
  fi
  if [ -n "${DEMO_PROVIDER_PORT:-}" ]; then  # the local stand-in CI of `make run`
    setsid python3 "$here/demo_provider.py" "$DEMO_PROVIDER_PORT" </dev/null >>"$RUN_DIR/demo-provider.log" 2>&1 &
    echo $! >"$RUN_DIR/demo-provider.pid"
    for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$DEMO_PROVIDER_PORT") 2>/dev/null && break; sleep 0.05; done
  fi
  if [ -n "${SWEEP_EVERY:-}" ]; then
    env -i PATH=/usr/bin:/bin DRAVEN_SECRETS_DIR="$SECRETS_DIR" setsid "$BIN_DIR/draven" sweep --every "$SWEEP_EVERY" \
      --state-dir "$STATE_DIR" --secrets-dir "$SECRETS_DIR" </dev/null >>"$RUN_DIR/sweep.log" 2>&1 &
    echo $! >"$RUN_DIR/sweep.pid"
  fi
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0
    sleep 0.1
  done
  echo "stack.sh: nginx is not answering on 127.0.0.1:$PORT" >&2; stop; exit 1
}

stop() {
  stop_pid "$RUN_DIR/sweep.pid" "draven sweep" TERM
  stop_pid "$RUN_DIR/demo-provider.pid" demo_provider.py TERM
  stop_pid "$RUN_DIR/nginx.pid" nginx QUIT
  stop_group "$RUN_DIR/fcgiwrap.pid" fcgiwrap
  rm -f "$socket"
}

status() {
  alive "$RUN_DIR/demo-provider.pid" demo_provider.py && echo "demo provider: running (pid $(cat "$RUN_DIR/demo-provider.pid"))"
  alive "$RUN_DIR/sweep.pid" "draven sweep" && echo "sweep: running (pid $(cat "$RUN_DIR/sweep.pid"))" || echo "sweep: stopped"
  alive "$RUN_DIR/nginx.pid" nginx && echo "nginx: running (pid $(cat "$RUN_DIR/nginx.pid"))" || echo "nginx: stopped"
  if [ -s "$RUN_DIR/fcgiwrap.pid" ] && [ -n "$(group_members "$(cat "$RUN_DIR/fcgiwrap.pid")" fcgiwrap)" ]; then
    echo "fcgiwrap: running (process group $(cat "$RUN_DIR/fcgiwrap.pid"))"
  else
    echo "fcgiwrap: stopped"
  fi
}

case "$action" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: STATE_DIR=… BIN_DIR=… $0 start|stop|status" >&2; exit 2 ;;
esac
