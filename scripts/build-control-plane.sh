#!/usr/bin/env bash
# Builds a real Kubernetes control plane from its own Go modules, for scen's embedded control plane:
#   kube-apiserver, kube-controller-manager, kube-scheduler and kubectl from k8s.io/kubernetes, and
#   kwok from sigs.k8s.io/kwok (with its stage files, from the module's kustomize/stage/).
# Nothing of their source enters the repository: the build happens in a scratch Go module and the
# binaries land in $SCEN_TOOLS/kube/<version>/bin (cached: a version already built is not rebuilt).
# Each build's time is logged. Needs Go (1.25+) and the Go module proxy.
#
#   scripts/build-control-plane.sh            build (or reuse) the pinned versions
#   SCEN_K8S_VERSION=v1.36.3 scripts/...      another release
set -euo pipefail

K8S_VERSION=${SCEN_K8S_VERSION:-v1.37.2}
KWOK_VERSION=${SCEN_KWOK_VERSION:-v0.8.0}
SCEN_TOOLS=${SCEN_TOOLS:-/opt/scen}
BIN_DIR=${SCEN_BIN_DIR:-/usr/local/bin}
DEST="$SCEN_TOOLS/kube/$K8S_VERSION"
KWOK_DEST="$SCEN_TOOLS/kwok/$KWOK_VERSION"

log() { printf 'build-control-plane: %s\n' "$*" >&2; }

command -v go >/dev/null || { log "go is not installed: the control plane is built from Go modules (Go 1.25+)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false

link_bins() { # dir names...
  local dir=$1; shift
  mkdir -p "$BIN_DIR"
  for b in "$@"; do ln -sf "$dir/$b" "$BIN_DIR/$b"; done
}

build_kubernetes() {
  local bins=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
  if [ -f "$DEST/.complete" ]; then
    log "kubernetes $K8S_VERSION already built in $DEST"
    link_bins "$DEST/bin" "${bins[@]}"
    return 0
  fi
  local work start
  work=$(mktemp -d)
  start=$(date +%s)
  log "building kubernetes $K8S_VERSION (${bins[*]}) in $work"
  (
    cd "$work"
    go mod init scen.local/kube-build >/dev/null 2>&1
    # The release's own go.mod lists its staging modules (`k8s.io/x => ./staging/src/k8s.io/x`):
    # each becomes a replace onto the published module of the same release (v0.Y.Z).
    local gomod staging
    gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
    [ -f "$gomod" ] || { log "go mod download k8s.io/kubernetes@$K8S_VERSION named no go.mod"; exit 1; }
    local go_line
    go_line=$(awk '$1 == "go" {print $2; exit}' "$gomod")
    [ -n "$go_line" ] && go mod edit -go="$go_line"
    staging=$(awk '$2 == "=>" && $3 ~ /^\.\/staging\/src\// {print $1}' "$gomod" | sort -u)
    [ -n "$staging" ] || { log "no staging modules found in $gomod"; exit 1; }
    local staging_version="v0.${K8S_VERSION#v1.}"
    local args=(-require "k8s.io/kubernetes@$K8S_VERSION")
    for m in $staging; do args+=(-replace "$m=$m@$staging_version"); done
    go mod edit "${args[@]}"
    log "$(echo "$staging" | wc -l) staging modules replaced at $staging_version"
    local pkgs=()
    for b in "${bins[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$b"); done
    go get "${pkgs[@]}" >/dev/null 2>&1 || go get "${pkgs[@]}"
    local ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
    ldflags+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
    ldflags+=" -X k8s.io/component-base/version.gitTreeState=clean"
    ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
    mkdir -p "$DEST/bin.partial"
    go build -trimpath -tags selinux,notest -ldflags "$ldflags" -o "$DEST/bin.partial/" "${pkgs[@]}"
  )
  rm -rf "$DEST/bin" && mv "$DEST/bin.partial" "$DEST/bin"
  rm -rf "$work"
  local took=$(( $(date +%s) - start ))
  printf '%s\n' "$took" > "$DEST/build-seconds"
  touch "$DEST/.complete"
  log "built kubernetes $K8S_VERSION in ${took}s"
  link_bins "$DEST/bin" "${bins[@]}"
}

build_kwok() {
  if [ -f "$KWOK_DEST/.complete" ]; then
    log "kwok $KWOK_VERSION already built in $KWOK_DEST"
    link_bins "$KWOK_DEST/bin" kwok
    return 0
  fi
  local start
  start=$(date +%s)
  log "building kwok $KWOK_VERSION"
  mkdir -p "$KWOK_DEST"
  GOBIN="$KWOK_DEST/bin" go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"
  # The stage files (node and pod lifecycles) ship inside the module.
  local moddir
  moddir=$(go mod download -json "sigs.k8s.io/kwok@$KWOK_VERSION" | sed -n 's/^\s*"Dir": "\(.*\)",\?$/\1/p')
  # What `kwokctl create cluster` uses with node leases: node-fast, node-heartbeat-with-lease and
  # pod-fast, concatenated into one multi-document file for kwok's --config.
  local stages="$KWOK_DEST/stages.yaml" f
  : > "$stages.partial"
  for sub in node/fast node/heartbeat-with-lease pod/fast; do
    for f in "$moddir/kustomize/stage/$sub"/*.yaml; do
      [ "$(basename "$f")" = kustomization.yaml ] && continue
      { echo "---"; cat "$f"; } >> "$stages.partial"
    done
  done
  grep -q 'kind: Stage' "$stages.partial" || { log "no kwok stages found under $moddir/kustomize/stage"; exit 1; }
  mv "$stages.partial" "$stages"
  local took=$(( $(date +%s) - start ))
  printf '%s\n' "$took" > "$KWOK_DEST/build-seconds"
  touch "$KWOK_DEST/.complete"
  log "built kwok $KWOK_VERSION in ${took}s ($(grep -c 'kind: Stage' "$KWOK_DEST/stages.yaml") stages)"
  link_bins "$KWOK_DEST/bin" kwok
}

build_kubernetes
build_kwok
