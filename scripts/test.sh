#!/usr/bin/env bash
# Runs Warden's whole test suite, installing the peers the tests use. Every test runs on both
# SQLite and the PostgreSQL at 127.0.0.1:5432 (override with WARDEN_TEST_POSTGRES_URL).
# A missing peer fails the tests; nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages the tests drive. Installed only when missing.
packages=(postgresql-client rsyslog rsyslog-gnutls openssh-client openssh-server openssl curl chromium socat wireguard-tools iproute2)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" > /dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" > /dev/null
fi

# Python packages the tests drive: the OpenTelemetry project's protobuf definitions decode
# what the OTLP sink sends.
python3 -c "import opentelemetry.proto.collector.logs.v1.logs_service_pb2" 2> /dev/null \
  || python3 -m pip install -q --root-user-action=ignore opentelemetry-proto
# compliance-trestle's OSCAL models, generated from NIST's published OSCAL JSON schema, check
# the OSCAL assessment results the evidence bundle holds.
python3 -c "import trestle.oscal.assessment_results" 2> /dev/null \
  || python3 -m pip install -q --root-user-action=ignore 'compliance-trestle==5.2.0'
# moto's server is the S3-compatible bucket recordings go to in the tests; boto3 (which comes
# with it) reads the bucket back independently of Warden.
command -v moto_server > /dev/null \
  || python3 -m pip install -q --root-user-action=ignore 'moto[server]==5.2.1'

# npm packages the tests drive: a certified OpenID Provider (oidc-provider), playwright-core
# (to drive Debian's Chromium) and axe-core (the accessibility checks), pinned by the lockfile in crates/warden-testkit/js.
if [ ! -d crates/warden-testkit/js/node_modules/oidc-provider ] \
  || [ ! -d crates/warden-testkit/js/node_modules/playwright-core ] \
  || [ ! -d crates/warden-testkit/js/node_modules/axe-core ]; then
  npm ci --prefix crates/warden-testkit/js --no-audit --no-fund > /dev/null
fi

# cargo-audit: the advisory scanner the vulnerability tests and Warden's own scan run.
command -v cargo-audit > /dev/null || cargo install -q cargo-audit --locked --version 0.22.2

# PostgreSQL runs on these machines; start it if it stopped.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  if command -v pg_ctlcluster > /dev/null; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
  for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done
fi

cargo test --workspace --locked "$@"

# Warden's own advisory scan, imported into Warden and gated (scripts/vuln-scan.sh).
./scripts/vuln-scan.sh
