#!/usr/bin/env bash
# Builds etcd's own benchmark tool (tools/benchmark of the go.etcd.io/etcd/v3 module) at the
# installed etcd's version, for benches/peers/etcd-benchmark.py. As for the control plane, nothing
# of its source enters the repository: a scratch consumer module requires the release and points
# each of its in-repo modules (`go.etcd.io/etcd/api/v3 => ./api`) at the published module of the
# same release; the binary lands in $SCEN_TOOLS/etcd-benchmark/<version>/ (cached). Prints its path.
#
#   scripts/build-etcd-benchmark.sh                  the installed etcd's version
#   SCEN_ETCD_BENCH_VERSION=v3.5.16 scripts/...      another release (3.5.x: tools live in the root module)
set -euo pipefail

VERSION=${SCEN_ETCD_BENCH_VERSION:-v$(etcd --version | awk '/^etcd Version:/ {print $3}')}
SCEN_TOOLS=${SCEN_TOOLS:-/opt/scen}
DEST="$SCEN_TOOLS/etcd-benchmark/$VERSION"
log() { printf 'build-etcd-benchmark: %s\n' "$*" >&2; }

if [ -f "$DEST/.complete" ]; then
  log "etcd benchmark $VERSION already built in $DEST"
  echo "$DEST/benchmark"
  exit 0
fi
command -v go >/dev/null || { log "go is not installed (the benchmark is built from etcd's Go module)"; exit 1; }
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
start=$(date +%s)
log "building go.etcd.io/etcd/v3/tools/benchmark@$VERSION in $work"
(
  cd "$work"
  go mod init scen.local/etcd-benchmark >/dev/null 2>&1
  gomod=$(go mod download -json "go.etcd.io/etcd/v3@$VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",\?$/\1/p')
  [ -f "$gomod" ] || { log "go mod download go.etcd.io/etcd/v3@$VERSION named no go.mod"; exit 1; }
  go_line=$(awk '$1 == "go" {print $2; exit}' "$gomod")
  [ -n "$go_line" ] && go mod edit -go="$go_line"
  args=(-require "go.etcd.io/etcd/v3@$VERSION")
  # Each `module => ./dir` of the release becomes the published module at the version the
  # release requires it at (client/v2 is v2.305.x beside v3.5.x).
  for m in $(awk '$2 == "=>" && $3 ~ /^\.\// {print $1}' "$gomod" | sort -u); do
    v=$(awk -v m="$m" '$1 == m && $2 ~ /^v[0-9]/ {print $2; exit}' "$gomod")
    [ -n "$v" ] || { log "no required version of $m in $gomod"; exit 1; }
    args+=(-replace "$m=$m@$v")
  done
  go mod edit "${args[@]}"
  go get "go.etcd.io/etcd/v3/tools/benchmark@$VERSION" >/dev/null 2>&1 || go get "go.etcd.io/etcd/v3/tools/benchmark@$VERSION"
  mkdir -p "$DEST"
  go build -trimpath -ldflags "-s -w" -o "$DEST/benchmark" go.etcd.io/etcd/v3/tools/benchmark
)
took=$(( $(date +%s) - start ))
printf '%s\n' "$took" > "$DEST/build-seconds"
touch "$DEST/.complete"
log "built etcd benchmark $VERSION in ${took}s"
echo "$DEST/benchmark"
