# Shared helpers for vpcgate's scripts: install what a fresh Debian machine lacks.
# Sourced, not run.

VPCGATE_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export VPCGATE_ROOT

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

# Debian packages the build and the tests need (clang etc. for libxdp's BPF objects,
# netns tools and real clients for the live tests, python for the client tests).
DEB_PACKAGES=(build-essential pkg-config clang llvm m4 libelf-dev zlib1g-dev
  iproute2 ethtool iperf3 netsniff-ng tcpdump nftables netcat-openbsd curl iputils-ping socat
  python3-venv python3-pip tmux procps)

install_debs() {
  local missing=()
  for p in "${DEB_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing Debian packages: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

ensure_rust() {
  if ! command -v cargo >/dev/null 2>&1; then
    [ -f "$HOME/.cargo/env" ] && . "$HOME/.cargo/env"
  fi
  command -v cargo >/dev/null 2>&1 || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
}

# The Python venv for the real third-party clients the tests use.
ensure_venv() {
  local venv="$VPCGATE_ROOT/.venv"
  local req="$VPCGATE_ROOT/tests/clients/requirements.txt"
  [ -f "$req" ] || return 0
  if [ ! -x "$venv/bin/python" ]; then
    say "creating Python venv for the client tests"
    python3 -m venv "$venv"
  fi
  if ! cmp -s "$req" "$venv/.installed-requirements" 2>/dev/null; then
    say "installing Python clients ($(grep -cv '^#' "$req") packages)"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/.installed-requirements"
  fi
}
