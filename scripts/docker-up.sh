#!/usr/bin/env bash
# Bring up a Docker engine with buildx, qemu binfmt (arm64) and a local registry on a bare
# Debian 12 machine. Idempotent: every step is skipped when its result is already there.
#   scripts/docker-up.sh            engine + buildx + binfmt + registry on 127.0.0.1:5000
#   TF2AIF_STATE=/root/dv           where packages, logs and registry data live
set -euo pipefail
STATE=${TF2AIF_STATE:-/root/dv}
mkdir -p "$STATE"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

install_packages() {
  if command -v dockerd >/dev/null && docker buildx version 2>/dev/null | grep -q " 0\.29\." \
     && command -v docker-registry >/dev/null && command -v mmdebstrap >/dev/null; then
    return
  fi
  # bookworm's docker.io (20.10) is too old for the containerd image store: take the engine,
  # CLI plugin and containerd from trixie through a private sources list; the system stays bookworm.
  $SUDO apt-get update -qq
  local mirror lists="$STATE/apt-trixie"
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  mirror=${mirror:-http://deb.debian.org/debian}
  mkdir -p "$lists/lists/partial" "$STATE/debs"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$lists/sources.list"
  local opts=(-o "Dir::Etc::SourceList=$lists/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$lists/lists")
  $SUDO apt-get "${opts[@]}" update -qq
  (cd "$STATE/debs" && rm -f ./*.deb && apt-get "${opts[@]}" download docker.io docker-cli containerd docker-buildx)
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "$STATE"/debs/*.deb qemu-user-static binfmt-support mmdebstrap arch-test docker-registry iptables >/dev/null
  # buildx 0.13 exports every linked target (multi-GB base images) even with type=cacheonly;
  # sid's 0.29 keeps them in the cache. It needs only libc6 >= 2.34.
  local sid="$STATE/apt-sid"
  mkdir -p "$sid/lists/partial" "$STATE/debs-sid"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror sid main" > "$sid/sources.list"
  local sid_opts=(-o "Dir::Etc::SourceList=$sid/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$sid/lists")
  $SUDO apt-get "${sid_opts[@]}" update -qq
  (cd "$STATE/debs-sid" && rm -f ./*.deb && apt-get "${sid_opts[@]}" download docker-buildx)
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$STATE"/debs-sid/docker-buildx_*.deb >/dev/null
}

start_engine() {
  docker info >/dev/null 2>&1 && return
  $SUDO mkdir -p /etc/docker
  [ -f /etc/docker/daemon.json ] || echo '{"features":{"containerd-snapshotter":true}}' | $SUDO tee /etc/docker/daemon.json >/dev/null
  $SUDO systemctl stop docker >/dev/null 2>&1 || true   # the package may try to start it; we own it here
  nohup $SUDO dockerd > "$STATE/dockerd.log" 2>&1 &
  for _ in $(seq 1 150); do docker info >/dev/null 2>&1 && return; sleep 0.2; done
  echo "dockerd did not come up; see $STATE/dockerd.log" >&2; tail -20 "$STATE/dockerd.log" >&2; exit 1
}

QEMU_AARCH64=/usr/local/lib/tf2aif/qemu-aarch64
AARCH64_MAGIC='\x7fELF\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00'
AARCH64_MASK='\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff'

install_qemu10() {
  # bookworm's qemu-user 7.2 crashes LiteRT (ai-edge-litert) on arm64; trixie's qemu 10 runs it.
  # Take only the static aarch64 emulator out of trixie's qemu-user package.
  [ -x "$QEMU_AARCH64" ] && return
  local opts=(-o "Dir::Etc::SourceList=$STATE/apt-trixie/sources.list" -o Dir::Etc::SourceParts=/dev/null -o "Dir::State::Lists=$STATE/apt-trixie/lists")
  mkdir -p "$STATE/qemu"
  (cd "$STATE/qemu" && rm -f ./*.deb && apt-get "${opts[@]}" download qemu-user >/dev/null 2>&1)
  rm -rf "$STATE/qemu/x" && dpkg -x "$STATE"/qemu/qemu-user_*.deb "$STATE/qemu/x"
  $SUDO install -D -m 755 "$STATE/qemu/x/usr/bin/qemu-aarch64" "$QEMU_AARCH64"
}

enable_binfmt() {
  [ -f /proc/sys/fs/binfmt_misc/status ] || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
  $SUDO update-binfmts --enable >/dev/null 2>&1 || true
  install_qemu10
  local entry=/proc/sys/fs/binfmt_misc/qemu-aarch64
  if ! grep -q "$QEMU_AARCH64" "$entry" 2>/dev/null; then
    [ -f "$entry" ] && echo -1 | $SUDO tee "$entry" >/dev/null
    # F: the kernel opens the emulator now, so it works inside containers' mount namespaces.
    printf '%s' ":qemu-aarch64:M::$AARCH64_MAGIC:$AARCH64_MASK:$QEMU_AARCH64:PF" | $SUDO tee /proc/sys/fs/binfmt_misc/register >/dev/null
  fi
  grep -q "$QEMU_AARCH64" "$entry" || { echo "qemu-aarch64 binfmt is not registered" >&2; exit 1; }
}

start_registry() {
  curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && return
  cat > "$STATE/registry.yml" <<YML
version: 0.1
storage: {filesystem: {rootdirectory: $STATE/registry-data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:5000}
YML
  nohup docker-registry serve "$STATE/registry.yml" > "$STATE/registry.log" 2>&1 &
  for _ in $(seq 1 100); do curl -fsS http://127.0.0.1:5000/v2/ >/dev/null 2>&1 && return; sleep 0.1; done
  echo "registry did not come up; see $STATE/registry.log" >&2; exit 1
}

install_packages
start_engine
enable_binfmt
start_registry
cat /usr/local/share/ca-certificates/*.crt > "$STATE/proxy-ca.pem" 2>/dev/null || : > "$STATE/proxy-ca.pem"
echo "docker $(docker version -f '{{.Server.Version}}'), $(docker buildx version | cut -d' ' -f1-2), registry 127.0.0.1:5000"
