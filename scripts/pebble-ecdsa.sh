#!/usr/bin/env bash
# Builds pebble (the ACME test CA) from Debian's own source package with one change: its root and
# intermediate keys are ECDSA P-384 instead of RSA-2048. Kurier's CERT-1 rule refuses a chain
# with an RSA-2048 CA certificate (as it should: Let's Encrypt's ECDSA chains are E5..E9), so
# Debian's stock pebble can only show that refusal; issuance, renewal and rollover tests need a
# CA whose chain passes. Newer pebble has a key-algorithm option, but only 2.4.0 is packaged.
# Built once into target/test-tools/pebble-ecdsa; prints the binary's path. Needs root or sudo
# the first time (apt). Not Kurier's code: the tests use it as an independent ACME server.
set -euo pipefail
cd "$(dirname "$0")/.."
out="$PWD/target/test-tools"
bin="$out/pebble-ecdsa"
if [ -x "$bin" ]; then
  echo "$bin"
  exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

# pebble's Build-Depends (Debian's pebble.dsc), and dpkg-dev for `apt-get source`.
deps=(golang-go dpkg-dev golang-github-letsencrypt-challtestsrv-dev golang-github-miekg-dns-dev
  golang-gopkg-square-go-jose.v2-dev)
missing=()
for p in "${deps[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi

# Source packages come from the same archive as the binaries: add deb-src entries mirroring the
# configured deb ones, if there are none yet.
if ! grep -rqsE '^(Types:.*deb-src|deb-src )' /etc/apt/sources.list /etc/apt/sources.list.d/; then
  src_list=/etc/apt/sources.list.d/kurier-deb-src.sources
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources | $sudo tee "$src_list" >/dev/null
  else
    grep -E '^deb ' /etc/apt/sources.list | sed 's/^deb /deb-src /' | $sudo tee /etc/apt/sources.list.d/kurier-deb-src.list >/dev/null
  fi
  $sudo apt-get update -q >&2
fi

work=$(mktemp -d)
chmod 755 "$work" # apt fetches as its own user
trap 'rm -rf "$work"' EXIT
(cd "$work" && apt-get source --download-only -q pebble >&2)
orig=$(ls "$work"/pebble_*.orig.tar.* | head -n 1)
gopath="$work/gopath"
tree="$gopath/src/github.com/letsencrypt/pebble"
mkdir -p "$tree"
tar -xf "$orig" -C "$tree" --strip-components=1

# The one change: makeKey returns an ECDSA P-384 signer. Every caller only needs crypto.Signer
# and the public key, so nothing else moves. Fail loudly if the source no longer looks the same.
ca="$tree/ca/ca.go"
grep -q 'func makeKey() (\*rsa.PrivateKey, \[\]byte, error)' "$ca"
grep -q 'rsa.GenerateKey(rand.Reader, 2048)' "$ca"
sed -i \
  -e 's|^\t"crypto"$|\t"crypto"\n\t"crypto/ecdsa"\n\t"crypto/elliptic"|' \
  -e 's|func makeKey() (\*rsa.PrivateKey, \[\]byte, error)|func makeKey() (crypto.Signer, []byte, error)|' \
  -e 's|rsa.GenerateKey(rand.Reader, 2048)|ecdsa.GenerateKey(elliptic.P384(), rand.Reader)|' \
  "$ca"
# crypto/rsa may now be unused in ca.go; Go refuses unused imports.
if ! grep -q 'rsa\.' "$ca"; then
  sed -i '/^\t"crypto\/rsa"$/d' "$ca"
fi

mkdir -p "$out"
(cd "$tree" && GOPATH="$gopath:/usr/share/gocode" GO111MODULE=off \
  go build -o "$bin.tmp" ./cmd/pebble >&2)
mv "$bin.tmp" "$bin"
echo "$bin"
