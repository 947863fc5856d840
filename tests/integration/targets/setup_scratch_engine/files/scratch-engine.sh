#!/usr/bin/env bash
# A scratch Docker engine for an integration test that needs an engine of its own
# (user namespaces, TLS on TCP). It has its own socket, data root, exec root, pid
# file and bridge (never --bridge=none, which would delete engine A's docker0),
# and gets busybox:latest built by scripts/testbed.sh.
#
#   scratch-engine.sh start NAME SUBNET [dockerd options...]
#                          start it (idempotent), print its socket URL; SUBNET is
#                          the third octet of its bridge's 172.31.X.1/24
#   scratch-engine.sh stop NAME
#                          stop it and remove its data, bridge and socket
set -euo pipefail

ACTION=${1:-}
NAME=${2:?usage: $0 start|stop NAME [SUBNET dockerd options...]}
shift 2
SOCK=/run/$NAME.sock
HOST=unix://$SOCK
DATA=/var/lib/$NAME
EXEC=/run/$NAME
PIDFILE=/run/$NAME.pid
BRIDGE=${NAME:0:12}0
LOG=/var/log/dockerd-$NAME.log

answering() { docker -H "$HOST" info >/dev/null 2>&1; }

testbed() {  # scripts/testbed.sh of the collection this file is in
  local dir
  dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
  while [ "$dir" != / ]; do
    [ -x "$dir/scripts/testbed.sh" ] && { echo "$dir/scripts/testbed.sh"; return 0; }
    dir=$(dirname "$dir")
  done
  echo "scratch-engine: scripts/testbed.sh not found above $(dirname "${BASH_SOURCE[0]}")" >&2
  return 1
}

start() {
  local subnet=${1:?start needs SUBNET}
  shift
  if ! answering; then
    rm -f "$PIDFILE"
    if ! ip link show "$BRIDGE" >/dev/null 2>&1; then
      ip link add "$BRIDGE" type bridge
      ip addr add "172.31.$subnet.1/24" dev "$BRIDGE"
      ip link set "$BRIDGE" up
    fi
    setsid nohup /usr/sbin/dockerd -H "$HOST" --data-root "$DATA" --exec-root "$EXEC" --pidfile "$PIDFILE" \
      --bridge="$BRIDGE" --iptables=false "$@" >"$LOG" 2>&1 </dev/null &
    for _ in $(seq 1 240); do
      answering && break
      sleep 0.25
    done
    answering || { echo "scratch-engine: the engine did not answer within 60 s; see $LOG" >&2; exit 1; }
  fi
  local script
  script=$(testbed)
  "$script" images "$HOST" busybox >&2
  echo "$HOST"
}

unmount_below() {  # every mount at or below $1, deepest first; lazily when one stays busy
  local dir=$1 m round
  for round in 1 2 3 4 5; do
    mapfile -t mounts < <(awk -v d="$dir" '$5 == d || index($5, d "/") == 1 { print $5 }' /proc/self/mountinfo | sort -r)
    [ "${#mounts[@]}" -eq 0 ] && return 0
    for m in "${mounts[@]}"; do
      if [ "$round" -lt 5 ]; then umount "$m" 2>/dev/null || true; else umount -l "$m" || true; fi
    done
    sleep 0.2
  done
}

stop() {
  if [ -f "$PIDFILE" ]; then
    local pid
    pid=$(cat "$PIDFILE")
    docker -H "$HOST" ps -aq 2>/dev/null | xargs -r docker -H "$HOST" rm -f >/dev/null 2>&1 || true
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 120); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.25
    done
  fi
  for _ in $(seq 1 40); do  # the engine's own containerd goes down after it
    pgrep -f -- "$EXEC/" >/dev/null || break
    sleep 0.25
  done
  if ip link show "$BRIDGE" >/dev/null 2>&1; then
    ip link delete "$BRIDGE"
  fi
  unmount_below "$DATA"  # userns-remap bind-mounts DATA/UID.GID onto itself; a failed start leaves DATA mounted
  unmount_below "$EXEC"
  rm -rf "$DATA" "$EXEC" "$SOCK" "$PIDFILE"
}

case "$ACTION" in
  start) start "$@" ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop NAME [SUBNET dockerd options...]" >&2; exit 2 ;;
esac
