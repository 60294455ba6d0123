#!/usr/bin/env bash
# Extra Docker engines on this machine acting as independent CI runners: each its own dockerd
# (data-root, exec-root, socket, pidfile, containerd namespaces, bridge), so each has its own
# BuildKit and an empty build cache; they share only the registry on 127.0.0.1:5000.
#
#   scripts/runners.sh up N        start runners 1..N (idempotent); prints DOCKER_HOST per runner
#   scripts/runners.sh down [N]    stop runner N (default: every runner), remove its bridge
#   scripts/runners.sh reset N     stop runner N and delete its data: a fresh runner next `up`
#   scripts/runners.sh host N      print runner N's DOCKER_HOST
#   scripts/runners.sh status      one line per runner
#
# Never `--bridge=none` beside a running engine: that daemon deletes the host's docker0. Each
# runner gets a bridge of its own (tf2aifrN, 10.231.N.0/24) and runs with --iptables=false (its
# chains would clash with the first engine's), so the script adds the NAT a runner has anyway:
# MASQUERADE for its subnet and FORWARD accepts for its bridge (BuildKit's RUN steps use the
# bridge and must reach PyPI and the Debian mirror), and removes exactly those rules on `down`.
set -euo pipefail
ROOT=${TF2AIF_RUNNERS:-/tmp/tf2aif-runners}
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo

dir() { echo "$ROOT/r$1"; }
bridge() { echo "tf2aifr$1"; }
host() { echo "unix://$(dir "$1")/docker.sock"; }
pid_of() { local f; f="$(dir "$1")/docker.pid"; [ -s "$f" ] && cat "$f" || true; }
running() { local p; p=$(pid_of "$1"); [ -n "$p" ] && kill -0 "$p" 2>/dev/null; }

# nat_rules N -A|-C|-D: add, check or delete this runner's NAT and forwarding rules (only its own)
nat_rules() {
  local n=$1 op=$2 br subnet
  br=$(bridge "$n"); subnet="10.231.$n.0/24"
  $SUDO iptables -t nat "$op" POSTROUTING -s "$subnet" ! -o "$br" -j MASQUERADE -m comment --comment "tf2aif-runner-$n" &&
  $SUDO iptables "$op" FORWARD -i "$br" -j ACCEPT -m comment --comment "tf2aif-runner-$n" &&
  $SUDO iptables "$op" FORWARD -o "$br" -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT -m comment --comment "tf2aif-runner-$n"
}

check_n() {
  [[ "$1" =~ ^[1-9]$ ]] || { echo "runner number must be 1-9, got '$1'" >&2; exit 2; }
}

up_one() {
  local n=$1 d br
  d=$(dir "$n"); br=$(bridge "$n")
  if running "$n"; then echo "runner $n: up ($(host "$n"))"; return; fi
  mkdir -p "$d/data" "$d/exec"
  if ! ip link show "$br" >/dev/null 2>&1; then
    $SUDO ip link add "$br" type bridge
    $SUDO ip addr add "10.231.$n.1/24" dev "$br"
    $SUDO ip link set "$br" up
  fi
  nat_rules "$n" -C >/dev/null 2>&1 || nat_rules "$n" -I
  # its own containerd namespaces: images and snapshots of the first engine stay invisible
  nohup $SUDO dockerd --data-root "$d/data" --exec-root "$d/exec" --pidfile "$d/docker.pid" \
    -H "$(host "$n")" --containerd-namespace "tf2aif-r$n" --containerd-plugins-namespace "tf2aif-r$n-p" \
    --iptables=false --ip6tables=false --bridge "$br" > "$d/dockerd.log" 2>&1 &
  for _ in $(seq 1 150); do
    DOCKER_HOST=$(host "$n") docker info >/dev/null 2>&1 && { echo "runner $n: up ($(host "$n"))"; return; }
    sleep 0.2
  done
  echo "runner $n did not come up; see $d/dockerd.log" >&2; tail -20 "$d/dockerd.log" >&2; exit 1
}

down_one() {
  local n=$1 p
  p=$(pid_of "$n")
  if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then
    $SUDO kill "$p"
    for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
  fi
  while nat_rules "$n" -C >/dev/null 2>&1; do nat_rules "$n" -D; done
  if ip link show "$(bridge "$n")" >/dev/null 2>&1; then $SUDO ip link del "$(bridge "$n")"; fi
  echo "runner $n: down"
}

runners() { local d; for d in "$ROOT"/r[1-9]; do [ -d "$d" ] && echo "${d##*/r}"; done; }

cmd=${1:-status}
case "$cmd" in
  up)
    count=${2:-2}; check_n "$count"
    mkdir -p "$ROOT"
    for n in $(seq 1 "$count"); do up_one "$n"; done ;;
  down)
    if [ -n "${2:-}" ]; then check_n "$2"; down_one "$2"; else for n in $(runners); do down_one "$n"; done; fi ;;
  reset)
    check_n "${2:?runner number}"; down_one "$2"; $SUDO rm -rf "$(dir "$2")"; echo "runner $2: data removed" ;;
  host)
    check_n "${2:?runner number}"; host "$2" ;;
  status)
    for n in $(runners); do
      if running "$n"; then echo "runner $n: up ($(host "$n")) pid $(pid_of "$n")"; else echo "runner $n: down"; fi
    done ;;
  *) echo "usage: $0 up N | down [N] | reset N | host N | status" >&2; exit 2 ;;
esac
