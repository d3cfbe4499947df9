#!/usr/bin/env bash
# Store benchmark (not a test): durable appends/s and queue operations/s for SQLite and for
# PostgreSQL on this machine, plus the one-file-per-body baseline the SQLite design was chosen
# against. Prints one table per backend; copy the numbers into the README.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/postgres.sh
KURIER_TEST_PG_PORT=${KURIER_TEST_PG_PORT:-55442} start_postgres
cargo build --release -q -p kurier-bench-store
bin=target/release/kurier-bench-store
work=$(mktemp -d /tmp/kurier-bench.XXXXXX)
trap 'stop_postgres; rm -rf "$work"' EXIT
echo "== SQLite (bodies in the database), $(nproc) cores"
"$bin" "sqlite:$work/kurier.db" --file-baseline "$work/files" "$@"
echo "== PostgreSQL $("$KURIER_PG_BIN/postgres" --version | awk '{print $3}') on loopback"
"$bin" "postgres:$KURIER_TEST_POSTGRES" "$@"
