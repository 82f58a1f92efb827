#!/usr/bin/env bash
# The Debian packages as a C user meets them: built and checked with lintian (scripts/deb.sh),
# installed into this machine with dpkg -i, then a C program built with nothing but
# `pkg-config --cflags --libs hsm_abi` (shared) and `pkg-config --static` (static): the
# header test (the interface tables against the installed library) and the x509 test (a P-256
# file identity: the certificate, the public key and a signature through the installed library,
# verified with openssl); the tools run; then the packages are purged and nothing of them stays.
#
#   scripts/deb-test.sh        as root or with sudo; refuses if the packages are installed already
#
# Needs the run-time dependencies of the packages installed (scripts/setup.sh installs them).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(libhsm-abi0 libhsm-abi-dev hsm-abi-tools)
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"

for p in "${packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
        echo "deb-test: $p is installed on this machine already; remove it first (dpkg -P $p)" >&2
        exit 1
    fi
done

work="$(mktemp -d)"
installed=0
cleanup() {
    local rc=$?
    if [ "$installed" = 1 ]; then
        $sudo dpkg -P "${packages[@]}" >/dev/null || rc=1
    fi
    rm -rf "$work"
    exit "$rc"
}
trap cleanup EXIT

bash "$root/scripts/deb.sh" --out "$work/debs"
echo "deb-test: installing ${packages[*]}"
installed=1
$sudo dpkg -i "$work/debs"/*.deb

# A C program built against the installed packages only: no path into this repository.
src="$root/tests/c"
cd "$work"
cp "$src/test_headers.c" "$src/test_x509.c" "$src/common.h" .
# shellcheck disable=SC2046 # pkg-config prints several words on purpose
gcc -std=c11 -Wall -Wextra -Werror test_headers.c $(pkg-config --cflags --libs hsm_abi) -o headers-shared
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror test_x509.c $(pkg-config --cflags --libs hsm_abi) -o x509-shared
# shellcheck disable=SC2046
gcc -std=c11 -Wall -Wextra -Werror test_x509.c $(pkg-config --cflags hsm_abi) \
    "$(pkg-config --variable=libdir hsm_abi)/libhsm_abi.a" $(pkg-config --libs-only-l --static hsm_abi | sed 's/-lhsm_abi//') \
    -o x509-static
readelf -d headers-shared | grep -q 'NEEDED.*\[libhsm_abi.so.0\]' ||
    { echo "deb-test: the shared build does not need libhsm_abi.so.0" >&2; exit 1; }
if readelf -d x509-static | grep -q 'NEEDED.*libhsm_abi'; then
    echo "deb-test: the static build needs libhsm_abi.so" >&2
    exit 1
fi
env -u HSM_ABI_CONFIG ./headers-shared

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=device-deb -days 2 \
    -keyout key.pem -out chain.pem 2>/dev/null
openssl pkey -in key.pem -pubout -out pub.pem
openssl pkey -in key.pem -pubout -outform DER -out pub.der
printf '[x509]\nbackend = "file"\ncertificate = "chain.pem"\nprivate_key = "key.pem"\n' >hsm.toml
printf 'signed through the packaged library\n' >msg.txt
for build in x509-shared x509-static; do
    rm -f sig.bin spki.der
    HSM_ABI_CONFIG="$work/hsm.toml" "./$build" device-deb chain.pem key.pem 0x0403 msg.txt sig.bin spki.der
    cmp spki.der pub.der
    openssl dgst -sha256 -verify pub.pem -signature sig.bin msg.txt
done

hsmctl --help >/dev/null
dps-emulator --help >/dev/null

echo "deb-test: purging ${packages[*]}"
installed=0
$sudo dpkg -P "${packages[@]}"
left="$(ls /usr/include/hsm_abi /usr/bin/hsmctl /usr/bin/dps-emulator \
    /usr/lib/*/libhsm_abi* /usr/lib/*/pkgconfig/hsm_abi.pc 2>/dev/null || true)"
[ -z "$left" ] || { echo "deb-test: left after purging: $left" >&2; exit 1; }
echo "deb-test: packages built, lintian-clean, installed, used from C (shared and static), purged"
