#!/usr/bin/env bash
# Builds an `openssl` command-line tool from the OpenSSL source the vendored build uses
# (openssl-src in cargo's registry, OpenSSL ≥ 3.5), once, into target/openssl-cli, and prints
# its path. Debian's openssl 3.0 cannot offer TLS 1.3 brainpool groups; this one can, and it is
# not Kurier's code: the tests use it as an independent TLS client (issue 19).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/target/openssl-cli"
bin="$out/apps/openssl"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
src=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/openssl-src-*/openssl 2>/dev/null | sort -V | tail -n 1)
if [ -z "$src" ]; then
  echo "openssl-cli: no openssl-src in cargo's registry; run cargo build first" >&2
  exit 1
fi
rm -rf "$out"
mkdir -p "$out"
cp -r "$src"/. "$out"
# no-legacy no-module: the crate's copy lacks files those parts need.
(cd "$out" && ./Configure no-shared no-tests no-docs no-legacy no-module >/dev/null &&
  make -j"$(nproc)" build_programs >/dev/null 2>&1) >&2
echo "$bin"
