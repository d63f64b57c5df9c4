#!/usr/bin/env sh
# Creates deploy/secrets/ for compose.yaml: random admin and probe tokens,
# a Redis password and a store encryption key. Never overwrites a file.
set -eu
cd "$(dirname "$0")"
mkdir -p secrets
umask 077
make() {
    [ -e "secrets/$1" ] && { echo "secrets/$1 exists, kept"; return; }
    printf '%s\n' "$2" > "secrets/$1"
    echo "secrets/$1 created"
}
random() { head -c "$1" /dev/urandom | base64 | tr -d '\n/+=' ; }
make admin_token "sbat_$(random 32)"
make probe_token "sbat_$(random 32)"
make redis_password "$(random 32)"
make encryption_keys "k1:$(head -c 32 /dev/urandom | base64 | tr -d '\n')"
# The container runs as uid 65532 and reads them through bind mounts.
chmod 0444 secrets/*
echo "Keep secrets/ out of version control; back up encryption_keys (without it Redis data is unreadable)."
