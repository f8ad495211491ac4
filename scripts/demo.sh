#!/usr/bin/env bash
# `make demo`: a local Mosquitto, the simulated van and the supervisor, until Ctrl-C.
# Ports and paths: MCW_MQTT_PORT (broker, default 1883), MCW_GX_PORT (simulated Victron GX,
# default 5020), MCW_ROUTER_PORT (simulated LTE router, default 5021), MCW_PANEL_PORT (crew panel, default 8080), MCW_RUN_DIR (pty, sockets, logs,
# SQLite; default: a new /tmp/mcw-demo.XXXXXX for each demo). A run directory named by hand is
# refused while another demo lives in it, and cleaned of a dead one's leftovers.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin
CONFIG=config/demo.toml

port_free() { ! (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
free_port() { "$BIN/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pick_port() {  # $1 variable name, $2 default: keep an explicit choice, else avoid a busy default
  local name=$1 def=$2
  if [ -n "${!name:-}" ]; then echo "${!name}"; return; fi
  if port_free "$def"; then echo "$def"; else free_port; fi
}

export MCW_MQTT_PORT=$(pick_port MCW_MQTT_PORT 1883)
export MCW_GX_PORT=$(pick_port MCW_GX_PORT 5020)
export MCW_ROUTER_PORT=$(pick_port MCW_ROUTER_PORT 5021)
export MCW_PANEL_PORT=$(pick_port MCW_PANEL_PORT 8080)
running() {  # a live process (a zombie, ended but not yet reaped, is not)
  [ -r "/proc/$1/status" ] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"
}

if [ -z "${MCW_RUN_DIR:-}" ]; then
  MCW_RUN_DIR=$(mktemp -d /tmp/mcw-demo.XXXXXX)
else
  mkdir -p "$MCW_RUN_DIR"
  if [ -f "$MCW_RUN_DIR/demo.pid" ]; then
    other=$(cat "$MCW_RUN_DIR/demo.pid")
    alive=""
    for pid in $other $(cat "$MCW_RUN_DIR/children" 2>/dev/null); do
      running "$pid" && alive="$alive $pid"
    done
    if [ -n "$alive" ]; then
      echo "demo: $MCW_RUN_DIR belongs to a demo that still runs (pids$alive); stop it or" \
        "pick another MCW_RUN_DIR" >&2
      exit 1
    fi
    echo "demo: cleaning what a dead demo (pid $other) left in $MCW_RUN_DIR"
  fi
  rm -f "$MCW_RUN_DIR/gpio.sock" "$MCW_RUN_DIR/ttyRS485" "$MCW_RUN_DIR/ttyRS485.sim" \
    "$MCW_RUN_DIR/children"
fi
export MCW_RUN_DIR
echo $$ > "$MCW_RUN_DIR/demo.pid"
: > "$MCW_RUN_DIR/children"
# If this script is killed outright (no trap runs), a reaper still stops what it started.
(
  trap '' INT TERM
  while running $$; do sleep 1; done
  for pid in $(tac "$MCW_RUN_DIR/children" 2>/dev/null); do kill -TERM -- "-$pid" 2>/dev/null; done
) </dev/null >/dev/null 2>&1 &

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping the demo..."
  # the supervisor first, so it can drive its outputs to their safe states; each child is the
  # leader of its own process group (setsid), and the whole group goes: nothing is left over
  for ((i=${#pids[@]}-1; i>=0; i--)); do
    kill -TERM -- "-${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  rm -f "$MCW_RUN_DIR/demo.pid" "$MCW_RUN_DIR/gpio.sock" "$MCW_RUN_DIR/children"
  echo "stopped (logs in $MCW_RUN_DIR)."
}
trap cleanup INT TERM EXIT

wait_for() {  # $1 description, $2.. command that succeeds when ready (while our children live)
  local what=$1; shift
  for _ in $(seq 1 150); do
    "$@" 2>/dev/null && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  echo "demo: $what did not come up; see $MCW_RUN_DIR/*.log" >&2; exit 1
}

cat > "$MCW_RUN_DIR/mosquitto.conf" <<CONF
listener $MCW_MQTT_PORT 127.0.0.1
allow_anonymous true
persistence false
set_tcp_nodelay true
# a command flood is answered ("busy" beyond the supervisor's intake), not dropped here
max_queued_messages 10000
CONF
if [ "$(id -u)" = 0 ]; then echo "user root" >> "$MCW_RUN_DIR/mosquitto.conf"; fi
# Each child runs in its own session (setsid): Ctrl-C reaches only this script, whose trap
# stops them in order - the supervisor first (safe states, "offline"), the broker last.
setsid mosquitto -c "$MCW_RUN_DIR/mosquitto.conf" >"$MCW_RUN_DIR/mosquitto.log" 2>&1 &
pids+=($!); echo $! >> "$MCW_RUN_DIR/children"
wait_for "mosquitto on port $MCW_MQTT_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$MCW_MQTT_PORT"

setsid "$BIN/mcw-sim" --config "$CONFIG" >"$MCW_RUN_DIR/sim.log" 2>&1 &
pids+=($!); echo $! >> "$MCW_RUN_DIR/children"
wait_for "the simulated van" test -S "$MCW_RUN_DIR/gpio.sock"

# HQ's end of the path supervision, on the same broker (the demo has no HQ): the van's
# pings are answered, so comms/hq/state is "up" and the router watchdog has nothing to do;
# HQ's alarm desk logs the van's events and answers a panic with its receipt
setsid "$BIN/mcw-hq-echo" --port "$MCW_MQTT_PORT" --db "$MCW_RUN_DIR/hq-desk.db" \
  >"$MCW_RUN_DIR/hq-echo.log" 2>&1 &
pids+=($!); echo $! >> "$MCW_RUN_DIR/children"

setsid "$BIN/mcw-supervisor" --config "$CONFIG" >"$MCW_RUN_DIR/supervisor.log" 2>&1 &
pids+=($!); echo $! >> "$MCW_RUN_DIR/children"

cat <<TXT

  MCW demo is running: broker 127.0.0.1:$MCW_MQTT_PORT, simulated Victron GX on 127.0.0.1:$MCW_GX_PORT,
  simulated LTE router on 127.0.0.1:$MCW_ROUTER_PORT, RS-485 bus on the pty $MCW_RUN_DIR/ttyRS485,
  HQ's echo and alarm desk (mcw-hq-echo) on the same broker. Logs in $MCW_RUN_DIR/.

  Crew panel:           http://127.0.0.1:$MCW_PANEL_PORT/   (PIN crew 1234, technician 4321)
  Watch the van:        mosquitto_sub -h 127.0.0.1 -p $MCW_MQTT_PORT -t 'mcw/#' -v
  Technician view:      MCW_MQTT_PORT=$MCW_MQTT_PORT $BIN/mcwctl status --config $CONFIG
  HQ's fleet view:      $BIN/mcwctl fleet --port $MCW_MQTT_PORT   (fleet ack demo: acknowledge a panic)
  Switch a circuit:     mosquitto_pub -h 127.0.0.1 -p $MCW_MQTT_PORT -t mcw/v1/demo/cmd/crew/power/circuit \\
                          -m '{"id":"demo-1","args":{"circuit":"exterior_lights","on":true}}'

  Ctrl-C stops everything.
TXT
wait "${pids[-1]}"
