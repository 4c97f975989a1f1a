#!/bin/sh
# Make a private CA and a server certificate for nats-server TLS (development,
# staging, or a closed network; use your own PKI where you have one).
#
#   deploy/make-certs.sh OUT_DIR [HOST ...]     default hosts: nats localhost 127.0.0.1
#
# Writes OUT_DIR/ca.pem (give it to clients: NATS_CA), OUT_DIR/ca-key.pem (keep it
# offline), OUT_DIR/server.pem and OUT_DIR/server-key.pem (nats-server: NATS_TLS_CERT,
# NATS_TLS_KEY). Every HOST goes into the certificate's subjectAltName: clients
# verify the name they dial (tls://nats:4222 needs "nats").
set -eu
out=${1:?usage: make-certs.sh OUT_DIR [HOST ...]}
shift
[ $# -gt 0 ] || set -- nats localhost 127.0.0.1
days=${CERT_DAYS:-825}
mkdir -p "$out"
cd "$out"

san=""
for host in "$@"; do
  case $host in
    *[!0-9.]*) case $host in *:*) san="$san,IP:$host" ;; *) san="$san,DNS:$host" ;; esac ;;
    *) san="$san,IP:$host" ;;
  esac
done
san=${san#,}

umask 077
openssl req -x509 -newkey rsa:2048 -nodes -sha256 -days "$days" \
  -subj "/CN=band private CA" -keyout ca-key.pem -out ca.pem \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -sha256 -subj "/CN=$1" \
  -keyout server-key.pem -out server.csr 2>/dev/null
cat > server.ext <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid,issuer
EXT
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
  -sha256 -days "$days" -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
chmod 644 ca.pem server.pem
echo "wrote $out: ca.pem ca-key.pem server.pem server-key.pem (names: $san)"
