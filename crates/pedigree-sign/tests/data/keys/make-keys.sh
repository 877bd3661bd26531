#!/usr/bin/env bash
# Regenerate the test keys and certificate chains in this directory.
# Test-only material: never use these keys for anything else.
set -euo pipefail
cd "$(dirname "$0")"
for curve in p256:prime256v1 p384:secp384r1; do
  name=${curve%%:*}; ossl=${curve##*:}
  openssl ecparam -name "$ossl" -genkey -noout -out "$name-sec1.pem"
  openssl pkcs8 -topk8 -nocrypt -in "$name-sec1.pem" -out "$name.key.pem"
  openssl ec -in "$name.key.pem" -pubout -out "$name.pub.pem" 2>/dev/null
  # root CA -> intermediate CA -> leaf (codeSigning), all on the same curve.
  openssl ecparam -name "$ossl" -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$name-root.key.pem"
  openssl ecparam -name "$ossl" -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$name-int.key.pem"
  openssl req -x509 -new -key "$name-root.key.pem" -subj "/CN=pedigree test root $name" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign -out "$name-root.pem"
  openssl req -new -key "$name-int.key.pem" -subj "/CN=pedigree test intermediate $name" |
    openssl x509 -req -CA "$name-root.pem" -CAkey "$name-root.key.pem" -days 3650 -set_serial 2 \
      -extfile <(printf 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign\n') -out "$name-int.pem"
  openssl req -new -key "$name.key.pem" -subj "/CN=pedigree test signer $name" |
    openssl x509 -req -CA "$name-int.pem" -CAkey "$name-int.key.pem" -days 3650 -set_serial 3 \
      -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\nsubjectAltName=email:signer@example.com\n') \
      -out "$name-leaf.pem"
  # An unrelated root, for negative tests.
  openssl ecparam -name "$ossl" -genkey -noout | openssl pkcs8 -topk8 -nocrypt -out "$name-other.key.pem"
  openssl req -x509 -new -key "$name-other.key.pem" -subj "/CN=pedigree other root $name" -days 3650 \
    -addext basicConstraints=critical,CA:TRUE -out "$name-other-root.pem"
  rm -f "$name-root.key.pem" "$name-int.key.pem" "$name-other.key.pem" "$name-root.srl" "$name-int.srl"
done
