#!/usr/bin/env bash
# `make demo`: a local Mosquitto, the simulated van and the supervisor, until Ctrl-C.
# Ports and paths: MCW_MQTT_PORT (broker, default 1883), MCW_GX_PORT (simulated Victron GX,
# default 5020), MCW_PANEL_PORT (crew panel, default 8080), MCW_RUN_DIR (pty, sockets, logs, SQLite; default /tmp/mcw-demo).
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
export MCW_PANEL_PORT=$(pick_port MCW_PANEL_PORT 8080)
export MCW_RUN_DIR=${MCW_RUN_DIR:-/tmp/mcw-demo}
mkdir -p "$MCW_RUN_DIR"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo; echo "stopping the demo..."
  # the supervisor first, so it can drive its outputs to their safe states
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill -TERM "${pids[$i]}" 2>/dev/null || true; wait "${pids[$i]}" 2>/dev/null || true; done
  echo "stopped."
}
trap cleanup INT TERM EXIT

wait_for() {  # $1 description, $2.. command that succeeds when ready
  local what=$1; shift
  for _ in $(seq 1 150); do "$@" 2>/dev/null && return 0; sleep 0.1; done
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
pids+=($!)
wait_for "mosquitto on port $MCW_MQTT_PORT" bash -c "exec 3<>/dev/tcp/127.0.0.1/$MCW_MQTT_PORT"

setsid "$BIN/mcw-sim" --config "$CONFIG" >"$MCW_RUN_DIR/sim.log" 2>&1 &
pids+=($!)
wait_for "the simulated van" test -S "$MCW_RUN_DIR/gpio.sock"

setsid "$BIN/mcw-supervisor" --config "$CONFIG" >"$MCW_RUN_DIR/supervisor.log" 2>&1 &
pids+=($!)

cat <<TXT

  MCW demo is running: broker 127.0.0.1:$MCW_MQTT_PORT, simulated Victron GX on 127.0.0.1:$MCW_GX_PORT,
  RS-485 bus on the pty $MCW_RUN_DIR/ttyRS485. Logs in $MCW_RUN_DIR/.

  Crew panel:           http://127.0.0.1:$MCW_PANEL_PORT/   (PIN crew 1234, technician 4321)
  Watch the van:        mosquitto_sub -h 127.0.0.1 -p $MCW_MQTT_PORT -t 'mcw/#' -v
  Technician view:      MCW_MQTT_PORT=$MCW_MQTT_PORT $BIN/mcwctl status --config $CONFIG
  Switch a circuit:     mosquitto_pub -h 127.0.0.1 -p $MCW_MQTT_PORT -t mcw/v1/demo/cmd/crew/power/circuit \\
                          -m '{"id":"demo-1","args":{"circuit":"exterior_lights","on":true}}'

  Ctrl-C stops everything.
TXT
wait "${pids[-1]}"
