#!/usr/bin/env bash
# Runs Dovecot's imaptest compliance scripts (src/tests) against `kurier serve --dev`.
#
#   scripts/imaptest.sh /path/to/imaptest-source
#
# imaptest is not packaged by Debian and its source is not vendored here; check it out from
# Dovecot's imaptest repository yourself. Debian 12 ships Dovecot 2.3.19, so use imaptest commit
# 7b18044 (2022-09), the last one built against that API; this script adjusts its three calls
# that changed in between and builds it with Debian's dovecot-dev. CI does not run it (the source
# cannot be fetched there); the README lists the latest result.
set -euo pipefail
src=${1:?usage: scripts/imaptest.sh /path/to/imaptest-source}
root=$(cd "$(dirname "$0")/.." && pwd)
apt-get install -y dovecot-dev autoconf automake libtool pkg-config >/dev/null

build=$(mktemp -d /tmp/kurier-imaptest.XXXXXX)
git -C "$src" archive 7b18044 | tar -x -C "$build"
cd "$build"
# Dovecot 2.3.19's API: io_stream_create_ssl_client without the extra settings argument,
# imap_parser_create with a params argument, str_begins without the suffix out-parameter.
sed -i '/io_stream_create_ssl_client(ssl_ctx, conf.host, &conf.ssl_set,/{n;/^\t*NULL,$/d}' src/client.c
sed -i -E 's/imap_parser_create\(([^;]*)\);/imap_parser_create(\1, NULL);/' src/*.c
sed -i -e 's/str_begins(line, "!ifenv ", &env) ||/strncmp(line, "!ifenv ", 7) == 0 ||/' \
       -e 's/str_begins(line, "!ifnenv ", &env)) {/strncmp(line, "!ifnenv ", 8) == 0) { env = strchr(line, '"' '"') + 1;/' \
       -e 's/str_begins_with(line, "!ifnenv ")/strncmp(line, "!ifnenv ", 8) == 0/' src/test-parser.c
./autogen.sh >/dev/null 2>&1
./configure --with-dovecot=/usr/lib/dovecot >/dev/null
make -j"$(nproc)" >/dev/null

cd "$root"
cargo build --release --locked -p kurier
data=$(mktemp -d /tmp/kurier-imaptest-data.XXXXXX)
KURIER_DEV_PASSWORD=imaptest-pw target/release/kurier serve --dev --data "$data" --listen-ip 127.0.0.77 \
  >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$build"' EXIT
for _ in $(seq 50); do grep -q "Kurier started" "$data/server.log" && break; sleep 0.2; done
LD_LIBRARY_PATH=/usr/lib/dovecot "$build/src/imaptest" host=127.0.0.77 port=1993 ssl=any-cert \
  user=demo@example.test pass=imaptest-pw test="$build/src/tests" | tee "$data/imaptest.log" | tail -n 4
grep -E '^\*\*\* Test' "$data/imaptest.log" | sed 's/ command.*//' | sort -u || true
