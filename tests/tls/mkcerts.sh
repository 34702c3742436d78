#!/bin/sh
# tests/tls/mkcerts.sh DIR: test certificates made with openssl, never
# committed. In DIR:
#   ca.pem ca.key               a test CA (trust it with --cacert DIR/ca.pem)
#   server.pem server.key       CA-signed, CN localhost, SAN localhost, 127.0.0.1, ::1
#   a.pem a.key / b.pem b.key   CA-signed for a.test / b.test (SNI tests; also 127.0.0.1)
#   expired.pem expired.key     CA-signed localhost, valid 2020-01-01..2020-01-02
#   wronghost.pem wronghost.key CA-signed for wrong.test only
#   self.pem self.key           self-signed localhost (no CA)
#   mismatch.key                a key that matches none of the certificates
# P-256 keys: fast to make. Exit status non-zero on any failure.
set -eu
dir=${1:?usage: mkcerts.sh DIR}
mkdir -p "$dir"
cd "$dir"
ossl() { openssl "$@" 2>/dev/null >/dev/null || { echo "mkcerts: openssl $1 failed" >&2; exit 1; }; }
key() { ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

key ca.key
ossl req -x509 -new -key ca.key -out ca.pem -days 30 -subj "/CN=raloop test CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# name CN SAN [startdate enddate]: a CA-signed leaf via `openssl ca`, which
# alone sets arbitrary validity dates (for the expired one).
mkdir -p ca.db
: > ca.db/index.txt
echo 1000 > ca.db/serial
cat > ca.db/ca.cnf <<EOF
[ca]
default_ca = test
[test]
database = ca.db/index.txt
serial = ca.db/serial
new_certs_dir = ca.db
certificate = ca.pem
private_key = ca.key
default_md = sha256
policy = any
unique_subject = no
copy_extensions = copy
[any]
commonName = supplied
[leaf]
basicConstraints = CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
EOF
leaf() {
  name=$1 cn=$2 san=$3
  key "$name.key"
  ossl req -new -key "$name.key" -out "ca.db/$name.csr" -subj "/CN=$cn" -addext "subjectAltName=$san"
  if [ $# -ge 5 ]; then
    dates="-startdate $4 -enddate $5"
  else
    dates="-days 30"
  fi
  # shellcheck disable=SC2086
  ossl ca -batch -config ca.db/ca.cnf -extensions leaf -notext $dates \
    -in "ca.db/$name.csr" -out "$name.pem"
}
leaf server localhost "DNS:localhost,IP:127.0.0.1,IP:::1"
leaf a a.test "DNS:a.test,IP:127.0.0.1"
leaf b b.test "DNS:b.test,IP:127.0.0.1"
leaf expired localhost "DNS:localhost,IP:127.0.0.1" 20200101000000Z 20200102000000Z
leaf wronghost wrong.test "DNS:wrong.test"
key self.key
ossl req -x509 -new -key self.key -out self.pem -days 30 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
key mismatch.key
rm -rf ca.db
