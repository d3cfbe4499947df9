#!/usr/bin/env bash
# Runs every Kurier test on a Debian machine: installs the Debian packages the tests drive
# (only those missing; needs root or sudo the first time), checks formatting and lints, then
# runs the whole workspace test suite. `.ci/run` calls exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build: gcc, make and perl compile the vendored OpenSSL. Tests: testssl.sh scans our TLS
# listener, openssl makes certificates the way an operator would, curl is a real HTTPS client.
# The store's conformance suite runs against a real PostgreSQL (started below). The test world
# (tests/world/README.md) runs NSD, unbound, ldns tools, Postfix, swaks, dig and python3 (its
# cryptography package signs the test CA's CRLs). libunbound8 is the DNSSEC validator the
# server itself loads (dns.dnssec = "validate"). pebble (with pebble-challtestsrv) is the ACME
# server the certificate tests order from. Knot is the operator's primary DNS server that
# Kurier's RFC 2136 client updates. publicsuffix is the Public Suffix List DMARC needs; OpenDKIM
# signs what a Postfix peer sends to Kurier; xmllint (libxml2-utils) validates our DMARC reports
# against the RFC 7489 schema. rspamd (with Redis for its statistics) is the spam filter the
# spam stage scans with and Junk moves train; clamd with clamav-milter (and OpenDKIM again) are
# the milters the milter stage talks to; sieve-connect is the ManageSieve client; headless
# Chromium (with its WebDriver) is the browser the web administration is tested in.
packages=(gcc make perl ca-certificates openssl curl testssl.sh postgresql
  nsd unbound libunbound8 ldnsutils dnsutils postfix swaks libnet-ssleay-perl python3 python3-cryptography
  util-linux pebble knot publicsuffix opendkim libxml2-utils
  rspamd redis-server clamav-daemon clamav-milter sieve-connect chromium chromium-driver)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "installing test dependencies: ${missing[*]}"
  $sudo apt-get update -q
  # Postfix asks how to configure itself: not at all, the tests bring their own configuration.
  echo "postfix postfix/main_mailer_type select No configuration" | $sudo debconf-set-selections
  # Never let a package start a system daemon on install: tests start their own.
  printf '#!/bin/sh\nexit 101\n' | $sudo tee /usr/sbin/policy-rc.d >/dev/null
  $sudo chmod +x /usr/sbin/policy-rc.d
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
  $sudo rm -f /usr/sbin/policy-rc.d
fi

# dkimpy (PyPI) is the independent verifier of our DKIM signatures; PyNaCl adds Ed25519. pyspf
# and authheaders (with dnspython) judge inbound SPF and DMARC (tests/sender_auth.rs); selenium
# drives Chromium through the web administration (tests/web_browser.rs).
python3 -c 'import dkim, nacl, jsonschema, spf, authheaders, dns.resolver, selenium' 2>/dev/null ||
  python3 -m pip install --quiet --disable-pip-version-check dkimpy pynacl jsonschema pyspf authheaders dnspython selenium

# A throwaway PostgreSQL cluster on loopback for the store tests, stopped on exit. Tests create
# their own databases in it; KURIER_TEST_POSTGRES tells them where it is.
. scripts/postgres.sh
start_postgres

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# An openssl tool built from the vendored OpenSSL source (once, into target/): an independent
# TLS client that, unlike Debian's, can offer TLS 1.3 brainpool groups.
KURIER_TEST_OPENSSL=$(scripts/openssl-cli.sh)
export KURIER_TEST_OPENSSL
# pebble with ECDSA CA keys, built once from Debian's source (scripts/pebble-ecdsa.sh): Debian's
# own signs with RSA-2048, which CERT-1 refuses, so only this one can show issuance and rollover.
KURIER_TEST_PEBBLE_ECDSA=$(scripts/pebble-ecdsa.sh)
export KURIER_TEST_PEBBLE_ECDSA
# Fuzz every parser that reads attacker input for a bounded time (30 s each): the SMTP session
# and DATA/BDAT decoders, the reply parser of remote MXs, IMAP commands, MIME structure and
# modified UTF-7, POP3 commands, TLSRPT reports and records, MTA-STS policies and records,
# DKIM signatures and key records, SPF and DMARC records, SPF macros, public suffix lists,
# Authentication-Results values and DMARC aggregate reports, Sieve scripts (cargo-fuzz with libFuzzer; the
# stable toolchain allows its -Z flags through RUSTC_BOOTSTRAP). A crash fails the run.
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in smtp_session smtp_data smtp_reply imap_command imap_mime imap_mutf7 pop3_command \
  tlsrpt_report mta_sts_policy dkim_signature sender_auth_records sieve_script; do
  (cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run "$target" -- -max_total_time="${KURIER_FUZZ_SECONDS:-30}" 2>&1 | tail -n 3)
done

cargo test --workspace --locked

