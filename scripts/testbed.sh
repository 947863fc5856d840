#!/usr/bin/env bash
# The test bed: Debian packages, Docker engine A (default socket) and engine B
# (unix:///run/docker-b.sock), and the local test images busybox:latest and
# registry:2 (built from Debian packages because no public registry is reachable).
# Idempotent and quiet when everything is in place.
#
#   scripts/testbed.sh            install, start engines, build images
#   scripts/testbed.sh engines    only start the engines
#   scripts/testbed.sh images HOST [busybox|registry ...]
#                                 build the test images (default: both) on the
#                                 engine at HOST, e.g. a test's scratch engine
set -euo pipefail

ENGINE_B_SOCK=/run/docker-b.sock
ENGINE_B_BRIDGE=docker-b
APT_PACKAGES=(docker.io docker-registry busybox-static rsync iproute2 openssl)

log() { echo "testbed: $*"; }

need_root() {
  if [ "$(id -u)" != 0 ]; then
    echo "testbed: must run as root (it installs packages and starts dockerd)" >&2
    exit 1
  fi
}

install_packages() {
  local missing=()
  for p in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# wait_for HOST SECONDS: poll until the engine at HOST answers.
wait_for() {
  local host=$1 secs=$2 i
  for ((i = 0; i < secs * 4; i++)); do
    docker -H "$host" info >/dev/null 2>&1 && return 0
    sleep 0.25
  done
  echo "testbed: engine at $host did not answer within ${secs}s; see its log in /var/log/" >&2
  return 1
}

start_engine_a() {
  if docker -H unix:///var/run/docker.sock info >/dev/null 2>&1; then
    ip link show docker0 >/dev/null 2>&1 && return 0
    log "engine A lost its bridge docker0; restarting it"
    kill "$(cat /var/run/docker.pid)"
    while [ -e /var/run/docker.pid ]; do sleep 0.25; done
  fi
  log "starting engine A on /var/run/docker.sock"
  rm -f /var/run/docker.pid
  setsid nohup /usr/sbin/dockerd >/var/log/dockerd.log 2>&1 </dev/null &
  wait_for unix:///var/run/docker.sock 60
}

start_engine_b() {
  docker -H "unix://$ENGINE_B_SOCK" info >/dev/null 2>&1 && return 0
  log "starting engine B on $ENGINE_B_SOCK"
  rm -f /run/docker-b.pid
  # Engine B gets a bridge of its own: a dockerd started with --bridge=none
  # deletes the interface docker0, which engine A's containers need.
  if ! ip link show "$ENGINE_B_BRIDGE" >/dev/null 2>&1; then
    ip link add "$ENGINE_B_BRIDGE" type bridge
    ip addr add 172.31.255.1/24 dev "$ENGINE_B_BRIDGE"
    ip link set "$ENGINE_B_BRIDGE" up
  fi
  setsid nohup /usr/sbin/dockerd -H "unix://$ENGINE_B_SOCK" \
    --data-root /var/lib/docker-b --exec-root /run/docker-b \
    --pidfile /run/docker-b.pid --bridge="$ENGINE_B_BRIDGE" --iptables=false \
    >/var/log/dockerd-b.log 2>&1 </dev/null &
  wait_for "unix://$ENGINE_B_SOCK" 60
}

# busybox:latest from Debian's busybox-static.
build_busybox() {
  local host=$1 root
  docker -H "$host" image inspect busybox:latest >/dev/null 2>&1 && return 0
  log "building busybox:latest on $host"
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,etc,root,tmp,home,var}
  chmod 1777 "$root/tmp"
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
  done
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' 'daemon:x:1:1:daemon:/usr/sbin:/bin/false' \
    'www-data:x:33:33:www-data:/var/www:/bin/false' 'nobody:x:65534:65534:nobody:/home:/bin/false' \
    > "$root/etc/passwd"
  printf '%s\n' 'root:x:0:' 'daemon:x:1:' 'www-data:x:33:' 'users:x:100:' 'nogroup:x:65534:' \
    > "$root/etc/group"
  tar -C "$root" -c . | docker -H "$host" import \
    --change 'CMD ["sh"]' --change 'ENV PATH=/bin' - busybox:latest >/dev/null
  rm -rf "$root"
}

# registry:2 from Debian's docker-registry (distribution 2.8.2, statically
# linked against libc only).
build_registry() {
  local host=$1 root lib
  docker -H "$host" image inspect registry:2 >/dev/null 2>&1 && return 0
  log "building registry:2 on $host"
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,etc/docker/registry,etc/ssl/certs,var/lib/registry,tmp}
  chmod 1777 "$root/tmp"
  cp /usr/bin/docker-registry "$root/bin/registry"
  for lib in $(ldd /usr/bin/docker-registry | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    cp -L "$lib" "$root$lib"
  done
  cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
  cat > "$root/etc/docker/registry/config.yml" <<'YML'
version: 0.1
log:
  fields:
    service: registry
storage:
  cache:
    blobdescriptor: inmemory
  filesystem:
    rootdirectory: /var/lib/registry
http:
  addr: :5000
  headers:
    X-Content-Type-Options: [nosniff]
health:
  storagedriver:
    enabled: true
    interval: 10s
    threshold: 3
YML
  printf '%s\n' 'root:x:0:0:root:/root:/bin/sh' > "$root/etc/passwd"
  tar -C "$root" -c . | docker -H "$host" import \
    --change 'ENTRYPOINT ["/bin/registry","serve"]' \
    --change 'CMD ["/etc/docker/registry/config.yml"]' \
    --change 'EXPOSE 5000' --change 'VOLUME ["/var/lib/registry"]' \
    - registry:2 >/dev/null
  rm -rf "$root"
}

main() {
  need_root
  case "${1:-all}" in
    engines)
      start_engine_a
      start_engine_b
      ;;
    all)
      install_packages
      start_engine_a
      start_engine_b
      for h in unix:///var/run/docker.sock "unix://$ENGINE_B_SOCK"; do
        build_busybox "$h"
        build_registry "$h"
      done
      ;;
    images)
      [ -n "${2:-}" ] || { echo "usage: $0 images HOST [busybox|registry ...]" >&2; exit 2; }
      local host=$2 image
      shift 2
      [ $# -gt 0 ] || set -- busybox registry
      for image in "$@"; do
        case "$image" in
          busybox) build_busybox "$host" ;;
          registry) build_registry "$host" ;;
          *) echo "testbed: unknown image $image (busybox or registry)" >&2; exit 2 ;;
        esac
      done
      ;;
    *)
      echo "usage: $0 [all|engines|images HOST [busybox|registry ...]]" >&2
      exit 2
      ;;
  esac
}

main "$@"
