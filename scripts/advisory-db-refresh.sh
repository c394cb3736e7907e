#!/usr/bin/env bash
# Refreshes scripts/advisory-db: the RustSec advisories (CC0-1.0) of every crate that
# Warden's Cargo.lock or the test fixtures' lockfiles name, copied from a full advisory
# database checkout, so the advisory scan runs offline from this repository alone.
#   scripts/advisory-db-refresh.sh /path/to/advisory-db
# Run it after adding dependencies; scripts/vuln-scan.sh prefers a full database when given.
set -euo pipefail
cd "$(dirname "$0")/.."
src="${1:?usage: $0 /path/to/advisory-db}"
[ -d "$src/crates" ] || { echo "error: $src has no crates/ directory: not an advisory database" >&2; exit 1; }
dst=scripts/advisory-db
rm -rf "$dst"
mkdir -p "$dst/crates"
cp "$src/LICENSE.txt" "$dst/"
[ -f "$src/SNAPSHOT" ] && cp "$src/SNAPSHOT" "$dst/"
names=$(cat Cargo.lock crates/warden-vuln/tests/fixtures/pinned/Cargo.lock | sed -n 's/^name = "\(.*\)"$/\1/p' | sort -u)
copied=0
for name in $names; do
  if [ -d "$src/crates/$name" ]; then
    cp -r "$src/crates/$name" "$dst/crates/"
    copied=$((copied + 1))
  fi
done
echo "copied the advisories of $copied crates into $dst"
