#!/usr/bin/env bash
# Create a SoftHSM2 token in a directory of its own and print the environment to use it.
#
#   eval "$(scripts/softhsm-env.sh DIR [LABEL] [PIN] [SO_PIN])"
#
# Writes DIR/softhsm2.conf (token directory DIR/tokens), initializes token LABEL (default
# "device") unless it exists, writes the user PIN to DIR/user.pin (mode 0600), and prints
#   export SOFTHSM2_CONF=DIR/softhsm2.conf
#   export PKCS11_MODULE=<module path>
#   export PKCS11_PIN_FILE=DIR/user.pin
# Needs the Debian packages softhsm2 (and opensc for pkcs11-tool, optional).
set -euo pipefail

dir=${1:?usage: softhsm-env.sh DIR [LABEL] [PIN] [SO_PIN]}
label=${2:-device}
pin=${3:-1234}
so_pin=${4:-so-$pin}
module=/usr/lib/softhsm/libsofthsm2.so

command -v softhsm2-util >/dev/null || { echo "softhsm2-util not found: apt-get install -y softhsm2" >&2; exit 1; }
[ -f "$module" ] || { echo "$module not found: apt-get install -y softhsm2" >&2; exit 1; }

mkdir -p "$dir/tokens"
dir=$(cd "$dir" && pwd)
cat >"$dir/softhsm2.conf" <<CONF
directories.tokendir = $dir/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
CONF
export SOFTHSM2_CONF=$dir/softhsm2.conf
if ! softhsm2-util --show-slots 2>/dev/null | grep -q "Label:[[:space:]]*$label[[:space:]]*\$"; then
    softhsm2-util --init-token --free --label "$label" --so-pin "$so_pin" --pin "$pin" >/dev/null
fi
(umask 077 && printf '%s\n' "$pin" >"$dir/user.pin")

echo "export SOFTHSM2_CONF=$dir/softhsm2.conf"
echo "export PKCS11_MODULE=$module"
echo "export PKCS11_PIN_FILE=$dir/user.pin"
