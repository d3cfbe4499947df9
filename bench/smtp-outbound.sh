#!/usr/bin/env bash
# Outbound delivery benchmark (not a test): Kurier's queue against Postfix's, same sinks, same run.
# Needs root for the Postfix peers and the Debian packages scripts/test.sh installs.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kurier -p kurier-bench-smtp
target/release/kurier-bench-outbound target/release/kurier "$@"
