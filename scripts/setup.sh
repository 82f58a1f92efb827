#!/usr/bin/env bash
# Installs what the project needs on a fresh Debian 12 machine (run as root, or with sudo
# available). Safe to run again: packages already present are not reinstalled.
set -euo pipefail

packages=(
    build-essential pkg-config openssl libssl-dev valgrind libcurl4-openssl-dev
    softhsm2 opensc
    swtpm swtpm-tools libtss2-dev
    libtpm2-pkcs11-1 libtpm2-pkcs11-tools tpm2-tools tpm2-abrmd libtss2-tcti-tabrmd0 dbus-daemon dbus-bin
    cmake uuid-dev tinyproxy iproute2 util-linux
    dpkg-dev lintian
)

# The official-SDK suite (scripts/official-sdks.sh) needs Node.js with npm and a Python with venv; a machine
# that already has them (another Node.js build, pyenv) keeps its own.
command -v node >/dev/null || packages+=(nodejs)
command -v npm >/dev/null || packages+=(npm)
python3 -c 'import ensurepip, venv' 2>/dev/null || packages+=(python3-venv)

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null; then
    echo "setup: cargo not found; install a stable Rust toolchain (rustup) first" >&2
    exit 1
fi
