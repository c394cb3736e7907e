#!/usr/bin/env bash
# Warden's own advisory scan, through Warden: cargo-audit reads Cargo.lock against an offline
# RustSec database, the report is imported into a throwaway Warden server as asset `warden`,
# and `warden vuln gate` fails the run on what WARDEN_VULN_FAIL_ON names (default: high, so
# a High or Critical advisory in a dependency fails CI).
#
# The database is WARDEN_ADVISORY_DB, else ../shared/advisory-db (a full snapshot) when it
# is there, else scripts/advisory-db (the advisories of the crates Warden uses; refresh it
# with scripts/advisory-db-refresh.sh). The report and the findings stay in target/vuln-scan.
set -euo pipefail
cd "$(dirname "$0")/.."

db="${WARDEN_ADVISORY_DB:-}"
if [ -z "$db" ]; then
  if [ -d ../shared/advisory-db/crates ]; then db=../shared/advisory-db; else db=scripts/advisory-db; fi
fi
command -v cargo-audit > /dev/null || {
  echo "error: cargo-audit is missing: cargo install cargo-audit --locked" >&2
  exit 1
}
out=target/vuln-scan
mkdir -p "$out"
# cargo-audit exits 1 when it finds something: the report is what counts.
cargo audit --db "$db" --no-fetch --json -f Cargo.lock > "$out/cargo-audit.json" || true
[ -s "$out/cargo-audit.json" ] || {
  echo "error: cargo-audit wrote no report (database $db)" >&2
  exit 1
}

cargo build --locked -q -p warden --bin warden
bin="${CARGO_TARGET_DIR:-target}/debug/warden"
data=$(mktemp -d)
WARDEN_LISTEN_AGENT_MTLS=127.0.0.1:0 WARDEN_LISTEN_SSH_PROXY=127.0.0.1:0 \
  "$bin" server --dev --data-dir "$data" --listen 127.0.0.1:0 > "$out/server.log" 2>&1 &
server=$!
trap 'kill $server 2> /dev/null || true; wait $server 2> /dev/null || true; rm -rf "$data"' EXIT
for _ in $(seq 1 150); do
  "$bin" vuln asset --data-dir "$data" > /dev/null 2>&1 && break
  kill -0 $server 2> /dev/null || { cat "$out/server.log" >&2; exit 1; }
  sleep 0.2
done

echo "advisory scan of Cargo.lock against $db"
"$bin" vuln import --data-dir "$data" "$out/cargo-audit.json" --asset warden --scanner cargo-audit
"$bin" vuln list --data-dir "$data" --asset warden | tee "$out/findings.txt"
"$bin" vuln gate --data-dir "$data" --asset warden --fail-on "${WARDEN_VULN_FAIL_ON:-high}"
