#!/usr/bin/env bash
# Regenerates docs/report-leader-kill.png, the README's picture of the HTML report: runs
# scenarios/leader-kill.rhai (a 3-member etcd, ~15 s), writes its HTML report and photographs it
# with headless Chromium. Needs scripts/setup.sh (etcd, chromium) and a built scen.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
cargo build --quiet --bin scen
target/debug/scen run scenarios/leader-kill.rhai -q --html "$work/report.html" --artifacts "$work/artifacts" || true
chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
  --disable-background-networking --disable-component-update --disable-sync \
  --user-data-dir="$work/profile" --window-size=1200,1300 \
  --screenshot="$PWD/docs/report-leader-kill.png" "file://$work/report.html" 2>/dev/null
echo "wrote docs/report-leader-kill.png"
