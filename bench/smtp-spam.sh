#!/usr/bin/env bash
# Spam scanning benchmark (not a test): Kurier scanning every inbound message with rspamd
# against Kurier without, same machine, same run. Needs the Debian packages scripts/test.sh
# installs (rspamd, redis-server).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p kurier -p kurier-bench-smtp
target/release/kurier-bench-spam target/release/kurier "$@"
