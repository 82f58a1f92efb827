# The interop suite's identities (sourced by scripts/sdk-interop.sh, not run): every key,
# certificate, HSM configuration and enrollment the cases use, made in $id_dir.
# The caller sets root, hsmctl, id_dir, scope, hub and sources scripts/lib/steps.sh.
#   identities        files, PKCS#11 (SoftHSM2), DICE, vendor, symmetric, issued; emulator.toml
#   tpm_identities    swtpm with an x509 key inside and the TPM enrollment (sets swtpm_pid)

identities() {
    cd "$id_dir"
    # A root CA enrolled as a group; file devices under it (PEM key and key token).
    "$hsmctl" certs --out-dir pki --device-id sdk-file-pem >/dev/null
    "$hsmctl" certs --out-dir pki --ca-cert pki/root-ca.cert.pem --ca-key pki/root-ca.key.pem \
        --device-id sdk-file-token >/dev/null
    # A device whose chain the emulator does not know (a CA of its own).
    "$hsmctl" certs --out-dir rogue --root-cn "rogue root" --device-id sdk-rogue >/dev/null
    printf '[x509]\nbackend = "file"\ncertificate = "pki/sdk-file-pem.chain.pem"\nprivate_key = "pki/sdk-file-pem.key.pem"\nkey_reference = "pem"\n' \
        >file-pem.toml
    printf '[x509]\nbackend = "file"\ncertificate = "pki/sdk-file-token.chain.pem"\nprivate_key = "pki/sdk-file-token.key.pem"\nkey_reference = "token"\n' \
        >file-token.toml
    # Wrong key: the certificate of one device with the key of another.
    printf '[x509]\nbackend = "file"\ncertificate = "pki/sdk-file-token.chain.pem"\nprivate_key = "pki/sdk-file-pem.key.pem"\nkey_reference = "token"\n' \
        >wrong-key.toml
    printf '[x509]\nbackend = "file"\ncertificate = "rogue/sdk-rogue.chain.pem"\nprivate_key = "rogue/sdk-rogue.key.pem"\nkey_reference = "token"\n' \
        >rogue.toml

    # PKCS#11 (SoftHSM2): a key generated on the token, and one imported from a known PEM
    # (for the memory scan, which must know what to look for).
    eval "$(bash "$root/scripts/softhsm-env.sh" "$id_dir/softhsm" sdkint)"
    printf 'export SOFTHSM2_CONF=%q PKCS11_PIN_FILE=%q\n' "$SOFTHSM2_CONF" "$PKCS11_PIN_FILE" >softhsm.env
    local uri
    uri=$("$hsmctl" pkcs11 keygen --uri "pkcs11:token=sdkint;object=dev?pin-source=file:$PKCS11_PIN_FILE")
    "$hsmctl" pkcs11 csr --uri "$uri" --common-name sdk-pkcs11 --out pkcs11.csr
    "$hsmctl" certs --out-dir pki --ca-cert pki/root-ca.cert.pem --ca-key pki/root-ca.key.pem --csr pkcs11.csr \
        >/dev/null
    printf '[x509]\nbackend = "pkcs11"\nkey = "%s"\ncertificate_file = "pki/sdk-pkcs11.chain.pem"\n' "$uri" >pkcs11.toml

    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out scan.key.pem
    softhsm2-util --import scan.key.pem --token sdkint --label scan --id 5ca7 --pin "$(cat "$PKCS11_PIN_FILE")" \
        >/dev/null
    openssl pkey -in scan.key.pem -pubout -out scan.pub.pem
    openssl req -new -key scan.key.pem -subj "/CN=sdk-pkcs11-scan" -out scan.csr
    "$hsmctl" certs --out-dir pki --ca-cert pki/root-ca.cert.pem --ca-key pki/root-ca.key.pem --csr scan.csr \
        >/dev/null
    printf '[x509]\nbackend = "pkcs11"\nkey = "pkcs11:token=sdkint;object=scan?pin-source=file:%s"\ncertificate_file = "pki/sdk-pkcs11-scan.chain.pem"\n' \
        "$PKCS11_PIN_FILE" >pkcs11-scan.toml
    # The same known key as a PEM file for the OpenSSL tlsio (the scan's positive control).
    openssl req -new -key scan.key.pem -subj "/CN=sdk-pem-scan" -out pem-scan.csr
    "$hsmctl" certs --out-dir pki --ca-cert pki/root-ca.cert.pem --ca-key pki/root-ca.key.pem --csr pem-scan.csr \
        >/dev/null
    printf '[x509]\nbackend = "file"\ncertificate = "pki/sdk-pem-scan.chain.pem"\nprivate_key = "scan.key.pem"\nkey_reference = "pem"\n' \
        >pem-scan.toml
    openssl pkey -in scan.key.pem -text -noout | python3 -c '
import sys, re
t = sys.stdin.read()
hexd = re.search(r"priv:\s*((?:[0-9a-f]{2}:?\s*)+)", t).group(1)
d = bytes.fromhex(re.sub(r"[^0-9a-f]", "", hexd))[-32:]
open("scan.d.bin", "wb").write(d.rjust(32, b"\0"))'

    # DICE: a group (the device CA is enrolled) and an individual (DeviceID enrolled).
    head -c 1024 /dev/urandom >firmware.bin
    "$hsmctl" dice init --uds-file uds.bin >/dev/null
    printf '[x509]\nbackend = "dice"\nuds_file = "uds.bin"\nfirmware_file = "firmware.bin"\nregistration_id = "sdk-dice-group"\nca_certificate = "pki/root-ca.cert.pem"\nca_key = "pki/root-ca.key.pem"\n' \
        >dice-group.toml
    "$hsmctl" dice init --uds-file uds2.bin >/dev/null
    printf '[x509]\nbackend = "dice"\nuds_file = "uds2.bin"\nfirmware_file = "firmware.bin"\nregistration_id = "sdk-dice-solo"\n' \
        >dice-solo.toml
    "$hsmctl" dice chain --config dice-solo.toml --out-dir dice-solo >/dev/null

    # The example vendor backend (C, OpenSSL inside), with a device under the root CA.
    make -s -C "$root/examples/vendor-ecdsa" OUT="$id_dir" CFLAGS="-std=c11 -O2 -Wall -I $root/include"
    mkdir -p vendor
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out vendor/key.pem
    openssl req -new -key vendor/key.pem -subj "/CN=sdk-vendor" -out vendor.csr
    "$hsmctl" certs --out-dir pki --ca-cert pki/root-ca.cert.pem --ca-key pki/root-ca.key.pem --csr vendor.csr \
        >/dev/null
    cp pki/sdk-vendor.chain.pem vendor/chain.pem
    printf '[x509]\nbackend = "vendor"\nlibrary = "libvendor_ecdsa.so"\nidentity = "%s"\n' "$id_dir/vendor" >vendor.toml

    # Symmetric keys: individual, and a device of a group (its key derived by the library).
    individual_key="$(openssl rand -base64 32)"
    group_key="$(openssl rand -base64 64 | tr -d '\n')"
    printf '[symmetric_key]\nbackend = "file"\nregistration_id = "sdk-symm"\nsymmetric_key = "%s"\n' "$individual_key" \
        >symm.toml
    printf '[symmetric_key]\nbackend = "file"\nregistration_id = "sdk-symm-group-7"\ngroup_key = "%s"\n' "$group_key" \
        >symm-group.toml
    printf '[symmetric_key]\nbackend = "file"\nregistration_id = "sdk-symm"\nsymmetric_key = "%s"\n' \
        "$(openssl rand -base64 32)" >symm-wrong.toml

    # An issued identity (DPS csr): the emulator issues from this P-384 CA; the device onboards
    # with a symmetric key (hsmctl provision --issue-certificate, key generated on the token),
    # then registers through the SDK with the issued certificate (x509 group of the CA).
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-384 -nodes -keyout issuing-ca.key.pem \
        -out issuing-ca.cert.pem -subj "/CN=sdk issuing CA" -days 30 \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    local issued_key
    issued_key=$(openssl rand -base64 32)
    printf '[x509]\nbackend = "issued"\nstore = "issued"\nregistration_id = "sdk-issued"\nkeys = "pkcs11:token=sdkint?pin-source=file:%s"\n\n[symmetric_key]\nbackend = "file"\nregistration_id = "sdk-issued"\nsymmetric_key = "%s"\n' \
        "$PKCS11_PIN_FILE" "$issued_key" >issued.toml

    cat >emulator.toml <<EOF
id_scope = "$scope"
assigned_hub = "$hub"

[[enrollment]]
type = "x509-group"
name = "sdk-x509-group"
ca = "pki/root-ca.cert.pem"

[[enrollment]]
type = "x509-individual"
registration_id = "sdk-dice-solo"
certificate = "dice-solo/device-id.cert.pem"

[[enrollment]]
type = "symmetric-individual"
registration_id = "sdk-symm"
primary_key = "$individual_key"

[[enrollment]]
type = "symmetric-group"
name = "sdk-symm-group"
primary_key = "$group_key"

[[enrollment]]
type = "x509-group"
name = "sdk-issued-ca"
ca = "issuing-ca.cert.pem"

[[enrollment]]
type = "symmetric-individual"
registration_id = "sdk-issued"
primary_key = "$issued_key"
EOF
}

# A TPM (swtpm): an x509 key inside it, and the SDK's TPM attestation.
tpm_identities() {
    cd "$id_dir"
    start_swtpm "$id_dir/tpmstate" "$tmp/swtpm.log"
    echo "$swtpm_pid" >swtpm.pid
    local tcti="swtpm:host=127.0.0.1,port=$swtpm_port"
    "$hsmctl" tpm keygen --tcti "$tcti" --handle 0x81000200 >tpm-keygen.out
    local token
    token="$(sed -n 's/^token: //p' tpm-keygen.out)"
    "$hsmctl" tpm csr --key "$token" --common-name sdk-tpm-x509 --out tpm.csr
    "$hsmctl" certs --out-dir pki --ca-cert pki/root-ca.cert.pem --ca-key pki/root-ca.key.pem --csr tpm.csr >/dev/null
    printf '[x509]\nbackend = "tpm"\ntcti = "%s"\nkey_handle = 0x81000200\ncertificate = "pki/sdk-tpm-x509.chain.pem"\n' \
        "$tcti" >tpm-x509.toml
    printf '[tpm]\nbackend = "tpm"\ntcti = "%s"\n' "$tcti" >tpm.toml
    "$hsmctl" --log error enrollment record --config tpm.toml >tpm-enrollment.json
    python3 - <<'PY' >>emulator.toml
import json
e = json.load(open("tpm-enrollment.json"))
print()
print("[[enrollment]]")
print('type = "tpm-individual"')
print(f'registration_id = "{e["registrationId"]}"')
print(f'endorsement_key = "{e["attestation"]["tpm"]["endorsementKey"]}"')
PY
}
