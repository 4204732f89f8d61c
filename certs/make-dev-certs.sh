#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes a throw-away certificate authority, a server certificate (for
# localhost, 127.0.0.1 and ::1) and a client certificate, for development and
# tests only. No key made here may ever be committed.
#   certs/make-dev-certs.sh DIR
# writes DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key,
# DIR/server-combined.pem (cert + key, as MongoDB drivers' tlsCertificateKeyFile
# expects), DIR/client.pem, DIR/client.key, DIR/client-combined.pem.
set -euo pipefail
dir=${1:?usage: make-dev-certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
umask 077

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
    -keyout ca.key -out ca.pem -subj "/CN=changecast dev CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    2>/dev/null

issue() { # name, subject, extensions
    local name=$1 subject=$2 extensions=$3
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$name.key" -out "$name.csr" -subj "$subject" 2>/dev/null
    printf '%s\n' "$extensions" >"$name.ext"
    openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
        -out "$name.pem" -extfile "$name.ext" 2>/dev/null
    cat "$name.pem" "$name.key" >"$name-combined.pem"
    rm -f "$name.csr" "$name.ext"
}

issue server "/CN=localhost" "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1
extendedKeyUsage=serverAuth
keyUsage=critical,digitalSignature"
issue client "/CN=changecast dev client" "extendedKeyUsage=clientAuth
keyUsage=critical,digitalSignature"
rm -f ca.srl
chmod 644 ./*.pem
echo "$dir"
