#!/usr/bin/env bash
# Installs everything scen needs on a fresh Debian machine, non-interactively and idempotently:
#   - etcd, etcdctl, etcdutl 3.5+ (Debian's etcd-server/etcd-client packages; from trixie when the
#     machine runs bookworm, whose own packages are 3.4, unpacked with dpkg-deb -x)
#   - protoc (Debian's protobuf-compiler), needed to build the etcd-client crate
#   - openssl, which the tests use to mint throwaway TLS certificates
#   - strace, with which fault::slow_disk delays a member's fsyncs
#   - chromium (headless), in which the tests load the HTML report
#   - prometheus (Debian's package, unpacked with dpkg-deb -x so no service is started), which the
#     tests start against the embedded etcd to check metrics::query
#   - cargo-nextest when missing (the test runner)
#   - with --control-plane: kube-apiserver, kube-controller-manager, kube-scheduler, kubectl and kwok,
#     built from their Go modules by scripts/build-control-plane.sh (cached under
#     $SCEN_TOOLS/kube/<version> and $SCEN_TOOLS/kwok/<version>; ~10 min on 2 cores the first time).
#     The test suite needs them; `scripts/dev run` does not.
# Binaries go to $SCEN_TOOLS (default /opt/scen) and are linked into /usr/local/bin.
set -euo pipefail

SCEN_TOOLS=${SCEN_TOOLS:-/opt/scen}
BIN_DIR=${SCEN_BIN_DIR:-/usr/local/bin}
export DEBIAN_FRONTEND=noninteractive

log() { printf 'setup: %s\n' "$*" >&2; }
sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

etcd_major_minor() { "$1" --version 2>/dev/null | awk '/etcd Version/ {print $3; exit}'; }
version_ok() { # true when $1 (x.y.z) is at least 3.5
  local v=$1; [ -n "$v" ] || return 1
  local maj=${v%%.*} rest=${v#*.}; local min=${rest%%.*}
  [ "$maj" -gt 3 ] || { [ "$maj" -eq 3 ] && [ "$min" -ge 5 ]; }
}

# The machine's own Debian mirror, from its apt sources (never a hard-coded host).
debian_mirror() {
  local m=""
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    m=$(awk '/^URIs:/ && $2 !~ /security/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources)
  fi
  if [ -z "$m" ] && [ -f /etc/apt/sources.list ]; then
    m=$(awk '$1=="deb" && $0 !~ /security/ {for (i=2;i<=NF;i++) if ($i ~ /^https?:/) {print $i; exit}}' /etc/apt/sources.list)
  fi
  printf '%s' "$m"
}

APT_UPDATED=0
apt_update_once() { [ "$APT_UPDATED" = 1 ] || { sudo_if_needed apt-get update -qq; APT_UPDATED=1; }; }

install_debs() { # packages...
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_update_once
  log "installing ${missing[*]}"
  sudo_if_needed apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_etcd() {
  if command -v etcd >/dev/null && command -v etcdctl >/dev/null && version_ok "$(etcd_major_minor etcd)"; then
    log "etcd $(etcd_major_minor etcd) already installed"; return 0
  fi
  local mirror suite
  mirror=$(debian_mirror)
  . /etc/os-release
  suite=${VERSION_CODENAME:-bookworm}
  WORK=$(mktemp -d); trap 'rm -rf "$WORK"' EXIT
  local work=$WORK
  if [ "$suite" = bookworm ] && [ -n "$mirror" ]; then
    # bookworm ships etcd 3.4; fetch trixie's packages with a private apt state so the
    # machine's own sources stay untouched.
    log "fetching etcd from trixie via $mirror"
    mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/debs"
    echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror trixie main" > "$work/sources.list"
    local opts=(-o Dir::Etc::SourceList="$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
                -o Dir::State::Lists="$work/lists" -o Dir::Cache="$work/cache" -o APT::Get::List-Cleanup=0 -o APT::Sandbox::User=root)
    if apt-get "${opts[@]}" update -qq && (cd "$work/debs" && apt-get "${opts[@]}" download etcd-server etcd-client); then
      local dest="$SCEN_TOOLS/etcd"
      sudo_if_needed rm -rf "$dest"; sudo_if_needed mkdir -p "$dest"
      for deb in "$work"/debs/*.deb; do sudo_if_needed dpkg-deb -x "$deb" "$dest"; done
      for b in etcd etcdctl etcdutl; do
        [ -x "$dest/usr/bin/$b" ] && sudo_if_needed ln -sf "$dest/usr/bin/$b" "$BIN_DIR/$b"
      done
      if version_ok "$(etcd_major_minor "$BIN_DIR/etcd")"; then
        log "installed etcd $(etcd_major_minor "$BIN_DIR/etcd") into $dest"; return 0
      fi
      log "unpacked trixie etcd does not run here; falling back"
    else
      log "could not fetch trixie packages; falling back"
    fi
  fi
  # Fallback: the distribution's own packages (3.4 on bookworm).
  install_debs etcd-server etcd-client
  log "installed etcd $(etcd_major_minor etcd) from $suite (3.5+ was not available)"
}

install_prometheus() {
  if command -v prometheus >/dev/null; then
    log "prometheus already installed"; return 0
  fi
  # Unpacked rather than installed: the package would start a system service.
  apt_update_once
  local work dest="$SCEN_TOOLS/prometheus"
  work=$(mktemp -d)
  (cd "$work" && apt-get -o APT::Sandbox::User=root download prometheus -qq)
  sudo_if_needed rm -rf "$dest"; sudo_if_needed mkdir -p "$dest"
  sudo_if_needed dpkg-deb -x "$work"/prometheus_*.deb "$dest"
  rm -rf "$work"
  sudo_if_needed ln -sf "$dest/usr/bin/prometheus" "$BIN_DIR/prometheus"
  log "installed $("$BIN_DIR/prometheus" --version 2>&1 | head -1)"
}

main() {
  local control_plane=0
  for a in "$@"; do
    case "$a" in
      --control-plane) control_plane=1 ;;
      *) log "unknown option $a (use --control-plane)"; exit 2 ;;
    esac
  done
  install_debs ca-certificates protobuf-compiler openssl strace chromium
  install_etcd
  install_prometheus
  if ! command -v cargo-nextest >/dev/null && ! cargo nextest --version >/dev/null 2>&1; then
    log "installing cargo-nextest"; cargo install --locked cargo-nextest
  fi
  if [ "$control_plane" = 1 ]; then
    bash "$(dirname "$0")/build-control-plane.sh"
  fi
  log "ready: $(etcd --version | head -1); $(protoc --version)"
}
main "$@"
