#!/bin/sh
# Turns a vendor image into a tf2aif base: a venv at $TF2AIF_VENV on top of the vendor's own
# Python (--system-site-packages, so the vendor's TensorFlow / OpenVINO / TensorRT are reused),
# the requirements whose module the vendor image does not already provide, and user tf2aif
# (uid 10001). One copy for every base: each base_images/<folder>/Dockerfile copies it from the
# named build context tf2aif-base-common (this folder, base_images/common).
#   install.sh REQUIREMENTS_FILE
# Secrets (BuildKit, never stored in a layer): /run/secrets/ca = CA bundle for pip (an HTTPS
# proxy's CA), /run/secrets/pipconf = a pip.conf (mirror index, credentials).
set -eu
VENV=${TF2AIF_VENV:-/opt/tf2aif/venv}
REQUIREMENTS=$1

log() { echo "tf2aif-base: $*"; }

apt_install() {
  command -v apt-get >/dev/null 2>&1 || return 1
  log "apt-get install $*"
  DEBIAN_FRONTEND=noninteractive apt-get update -qq || return 1
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null || return 1
  rm -rf /var/lib/apt/lists/*
}

find_python() {
  PYTHON=$(command -v python3 || true)
  if [ -z "$PYTHON" ]; then
    # CUDA runtime images ship no Python at all.
    apt_install python3 python3-venv python3-pip ca-certificates \
      || { log "the vendor image has no python3 and no apt-get to install it"; exit 1; }
    PYTHON=$(command -v python3)
  fi
  PY_VERSION=$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
  log "vendor python: $PYTHON ($PY_VERSION)"
}

make_venv() {
  if "$PYTHON" -m venv --system-site-packages "$VENV" 2>/dev/null; then
    PIP="$VENV/bin/python -m pip"
    return
  fi
  rm -rf "$VENV"
  # Debian and Ubuntu ship ensurepip separately (python3.X-venv).
  if apt_install "python$PY_VERSION-venv" && "$PYTHON" -m venv --system-site-packages "$VENV"; then
    PIP="$VENV/bin/python -m pip"
    return
  fi
  rm -rf "$VENV"
  "$PYTHON" -m venv --without-pip --system-site-packages "$VENV"
  "$PYTHON" -m pip --version >/dev/null 2>&1 \
    || { log "cannot create a venv with pip: no ensurepip, no pip, no apt-get"; exit 1; }
  PIP="$PYTHON -m pip --python $VENV/bin/python"
}

# Keep a requirement unless its "# import: module" already imports (provided by the vendor).
select_requirements() {
  : > "$1"
  while IFS= read -r line || [ -n "$line" ]; do
    module=$(printf '%s\n' "$line" | sed -n 's/.*#[[:space:]]*import:[[:space:]]*\([A-Za-z0-9_.]*\).*/\1/p')
    if [ -n "$module" ] && "$VENV/bin/python" -c "import $module" >/dev/null 2>&1; then
      log "vendor image provides '$module', skipping: ${line%%#*}"
      continue
    fi
    printf '%s\n' "$line" >> "$1"
  done < "$REQUIREMENTS"
}

install_requirements() {
  selected=$(mktemp)
  select_requirements "$selected"
  if grep -q '^[^#[:space:]]' "$selected"; then
    if [ -s /run/secrets/ca ]; then export PIP_CERT=/run/secrets/ca; fi
    if [ -s /run/secrets/pipconf ]; then export PIP_CONFIG_FILE=/run/secrets/pipconf; fi
    # --no-compile: byte-compiling every package is the slowest part under qemu (arm64 builds);
    # modules compile on first import instead.
    $PIP install --disable-pip-version-check --no-input --progress-bar off --no-compile -r "$selected"
  fi
  rm -f "$selected"
  $PIP check >/dev/null 2>&1 || log "warning: 'pip check' reports conflicts (often inherited from the vendor image)"
}

add_user() {
  id -u tf2aif >/dev/null 2>&1 && return
  if command -v useradd >/dev/null 2>&1; then
    useradd --uid 10001 --user-group --create-home --shell /bin/sh tf2aif
  elif command -v adduser >/dev/null 2>&1; then
    adduser -D -u 10001 -s /bin/sh tf2aif
  else
    echo "tf2aif:x:10001:10001::/home/tf2aif:/bin/sh" >> /etc/passwd
    echo "tf2aif:x:10001:" >> /etc/group
    mkdir -p /home/tf2aif && chown 10001:10001 /home/tf2aif
  fi
}

find_python
make_venv
install_requirements
add_user
log "ready: $("$VENV/bin/python" --version 2>&1) in $VENV"
