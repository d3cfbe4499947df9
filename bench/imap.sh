#!/usr/bin/env bash
# IMAP benchmark (not a test): Kurier against Dovecot, same machine, same run. Needs root (Dovecot
# binds 993 and runs its mail processes as the user "mail").
set -euo pipefail
cd "$(dirname "$0")/.."
command -v dovecot >/dev/null || { apt-get update -qq && apt-get install -y -qq dovecot-imapd >/dev/null; }
# Dovecot's package starts a system instance; ours runs on its own address and config.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release -q -p kurier -p kurier-bench-imap
target/release/kurier-bench-imap target/release/kurier "$@"
