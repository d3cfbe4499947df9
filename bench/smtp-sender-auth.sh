#!/usr/bin/env bash
# Inbound sender authentication benchmark (not a test): Kurier with SPF, DKIM and DMARC on
# against Kurier with them off, same machine, same run, through a signed test world.
# Needs root for the test world and the Debian packages scripts/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kurier -p kurier-bench-smtp
target/release/kurier-bench-sender-auth target/release/kurier "$@"
