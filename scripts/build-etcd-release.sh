#!/usr/bin/env bash
# Builds an etcd server release from its Go module, for A/B comparisons (`scen ab --b
# etcd-bin=...`): a scratch module whose main calls go.etcd.io/etcd/server/v3/etcdmain.Main, at
# the release asked for. Nothing of etcd's source enters the repository; the binary lands in
# $SCEN_TOOLS/etcd/<version>/etcd (cached). Prints its path.
#
#   scripts/build-etcd-release.sh v3.6.16
set -euo pipefail

VERSION=${1:?usage: scripts/build-etcd-release.sh vX.Y.Z}
SCEN_TOOLS=${SCEN_TOOLS:-/opt/scen}
DEST="$SCEN_TOOLS/etcd/$VERSION"
log() { printf 'build-etcd-release: %s\n' "$*" >&2; }

if [ -f "$DEST/.complete" ]; then
  log "etcd $VERSION already built in $DEST"
  echo "$DEST/etcd"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed (etcd is built from its Go modules)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log "building go.etcd.io/etcd/server/v3@$VERSION in $work"
(
  cd "$work"
  go mod init scen.local/etcd-release >/dev/null 2>&1
  cat > main.go <<'GO'
// etcd's server, as its release builds it: etcdmain.Main with the process's arguments.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  gomod=$(go mod download -json "go.etcd.io/etcd/server/v3@$VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$gomod" ] || { log "go mod download go.etcd.io/etcd/server/v3@$VERSION named no go.mod"; exit 1; }
  go_line=$(awk '$1 == "go" {print $2; exit}' "$gomod")
  [ -n "$go_line" ] && go mod edit -go="$go_line"
  go mod edit -require "go.etcd.io/etcd/server/v3@$VERSION"
  go mod tidy >/dev/null 2>&1 || go mod tidy
  mkdir -p "$DEST"
  go build -trimpath -ldflags "-s -w" -o "$DEST/etcd" .
)
took=$(( $(date +%s) - start ))
printf '%s\n' "$took" > "$DEST/build-seconds"
touch "$DEST/.complete"
log "built etcd $VERSION in ${took}s"
echo "$DEST/etcd"
