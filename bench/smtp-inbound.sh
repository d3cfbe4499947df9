#!/usr/bin/env bash
# Inbound SMTP benchmark (not a test): Kurier against Postfix, same machine, same run.
# Needs root for the Postfix peer and the Debian packages scripts/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kurier -p kurier-bench-smtp
target/release/kurier-bench-inbound target/release/kurier "$@"
