#!/usr/bin/env bash
# Builds kube-burner from its Go module (github.com/kube-burner/kube-burner, one exact release),
# for benches/peers/kube-burner.py. Nothing of its source enters the repository: `go install
# module@version` builds it in the module cache; the binary lands in
# $SCEN_TOOLS/kube-burner/<version>/ (cached). Prints its path; exits 1 with the go command's own
# error when the module proxy does not serve that release.
#
#   scripts/build-kube-burner.sh                       the release below
#   SCEN_KUBE_BURNER_VERSION=vX.Y.Z scripts/...        another one
set -euo pipefail

MODULE=github.com/kube-burner/kube-burner
VERSION=${SCEN_KUBE_BURNER_VERSION:-v1.10.0}
SCEN_TOOLS=${SCEN_TOOLS:-/opt/scen}
DEST="$SCEN_TOOLS/kube-burner/$VERSION"
log() { printf 'build-kube-burner: %s\n' "$*" >&2; }

if [ -f "$DEST/.complete" ]; then
  log "kube-burner $VERSION already built in $DEST"
  echo "$DEST/kube-burner"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed (kube-burner is built from its Go module)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
start=$(date +%s)
log "building $MODULE@$VERSION"
mkdir -p "$DEST"
if ! GOBIN="$DEST" go install -trimpath -ldflags "-s -w" "$MODULE@$VERSION"; then
  rmdir "$DEST" 2>/dev/null || true
  log "the Go module proxy did not give $MODULE@$VERSION (the error above); kube-burner can't be built here"
  exit 1
fi
took=$(( $(date +%s) - start ))
printf '%s\n' "$took" > "$DEST/build-seconds"
touch "$DEST/.complete"
log "built kube-burner $VERSION in ${took}s"
echo "$DEST/kube-burner"
