# The interop suite's IoT Hub cases (sourced by scripts/sdk-interop.sh, not run): every identity
# provisions through the real C SDK, then connects to its assigned hub with the SDK's device client
# (IoTHubDeviceClient_LL_CreateFromDeviceAuth: the same HSM identity, through libhsm_abi and the
# rustls tlsio), sends telemetry, reads its twin and reports a property (prov_device --hub).
# The caller sets root, tmp, id_dir, scope, dev_rustls, dev_openssl, trusted, vg, case_limit_s and
# has run/fail/pass (scripts/lib/steps.sh) and start_emulator.
#   hub_cases         the matrix (identity x mqtt, mqtt-ws, amqp, amqp-ws; SDK_INTEROP_HUB_TRANSPORTS
#                     narrows it), SAS renewal, negatives, valgrind;
#                     prints its matrix; leaves the emulator running with its DPS configuration
#   hub_bench N       client CPU of provision + hub connection + one message: rustls + SoftHSM key
#                     vs OpenSSL + PEM key (tests/c/bench_registration.py with --hub mqtt --no-twin)
#
# The hub's host name is 127.0.0.1: the SDK takes `{name}.{suffix}` apart at the first dot (a name
# without one is refused), and the emulator's server certificate names 127.0.0.1 and localhost.
hub_host="127.0.0.1"
hub_policy_key="$(openssl rand -base64 32)"
declare -A hub_cells=()
hub_rows=()
read -r -a hub_transports <<<"${SDK_INTEROP_HUB_TRANSPORTS:-mqtt mqtt-ws amqp amqp-ws}"

# The emulator with the hub configuration (assigned_hub 127.0.0.1, a service policy to read the
# messages); emulator.toml is swapped and put back by hub_emulator_restore.
hub_emulator() {
    [ -f "$id_dir/emulator-dps.toml" ] || cp "$id_dir/emulator.toml" "$id_dir/emulator-dps.toml"
    {
        sed "s/^assigned_hub = .*/assigned_hub = \"$hub_host\"/" "$id_dir/emulator-dps.toml"
        printf '\n[[service_policy]]\nname = "hubreader"\nprimary_key = "%s"\nrights = ["RegistrationStatusRead"]\n' \
            "$hub_policy_key"
    } >"$id_dir/emulator.toml"
    # Each accepted AMQP put-token is logged (the AMQP renewal case counts them).
    RUST_LOG="warn,dps_emulator::listeners::amqp::hub=info" start_emulator "$@"
}
hub_emulator_restore() {
    cp "$id_dir/emulator-dps.toml" "$id_dir/emulator.toml"
    start_emulator "$@"
}

# The registration id (= device id) a case registers: --registration-id, else the configuration's.
registration_id() {
    local config="$1" i
    shift
    local opts=("$@")
    for ((i = 0; i < ${#opts[@]}; i++)); do
        [ "${opts[i]}" = --registration-id ] && { echo "${opts[i + 1]}"; return; }
    done
    local id cert
    id="$(sed -n 's/^registration_id = "\(.*\)"$/\1/p' "$id_dir/$config" | head -n 1)"
    if [ -n "$id" ]; then echo "$id"; return; fi
    if [ "$config" = tpm.toml ]; then
        python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["registrationId"])' \
            "$id_dir/tpm-enrollment.json"
        return
    fi
    # x509: the leaf's common name (the vendor backend keeps its chain in its identity directory).
    cert="$(sed -n 's/^certificate\(_file\)\{0,1\} = "\(.*\)"$/\2/p' "$id_dir/$config" | head -n 1)"
    [ -n "$cert" ] || cert="$(sed -n 's/^identity = "\(.*\)"$/\1/p' "$id_dir/$config")/chain.pem"
    (cd "$id_dir" && openssl x509 -in "$cert" -noout -subject -nameopt multiline) | sed -n 's/^ *commonName *= //p'
}

# How many AMQP put-tokens the emulator accepted for DEVICE so far (its log).
put_tokens() {
    grep -c "AMQP put-token accepted for device '$1'" "$tmp/emulator.log" || true
}

# The "seq" of each message the hub kept for DEVICE, oldest first.
hub_seqs() {
    python3 "$root/tests/c/hub_messages.py" "$hub_host:443" "$server_ca" hubreader "$hub_policy_key" "$1" |
        sed 's/^seq=\([^ ]*\) .*/\1/'
}

# hub_device NAME EXPECT DEVICE CONFIG ATTESTATION [prov_device options...] [-- wrapper...]
#   EXPECT "ok": assigned, connected, every telemetry message confirmed by the SDK AND kept by the
#   emulator's hub (read back by its service call), the twin read, a reported property read back,
#   "hub done", no ERROR line. "refused": assigned, then the hub refused the device (exit 1,
#   "hub refused reason=BAD_CREDENTIAL", or COMMUNICATION_ERROR for x509 over AMQP, never "hub
#   connected") within 20 s.
hub_device() {
    local name="$1" expect="$2" dev="$3" config="$4" attestation="$5"
    shift 5
    local opts=()
    while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
    [ "${1:-}" = -- ] && shift
    local out="$tmp/$name.stdout" err="$tmp/$name.stderr" rc=0 start end device kept_before kept_after
    local renewals=0 i hub_transport="" connections
    for ((i = 0; i < ${#opts[@]}; i++)); do
        [ "${opts[i]}" = --renewals ] && renewals="${opts[i + 1]}"
        [ "${opts[i]}" = --hub ] && hub_transport="${opts[i + 1]}"
    done
    # MQTT renews by reconnecting with the new token; AMQP puts it on $cbs of the same connection.
    connections=$((renewals + 1))
    case "$hub_transport" in amqp | amqp-ws) connections=1 ;; esac
    # The registration id is the device id here; what the hub kept for it before this case.
    device="$(registration_id "$config" "${opts[@]}")"
    kept_before="$(hub_seqs "$device" | wc -l)"
    local puts_before
    puts_before="$(put_tokens "$device")"
    # Each renewal takes 80% of the --sas-lifetime (12 s in these cases).
    local limit=$((case_limit_s + renewals * 12))
    start=$(date +%s)
    (cd "$id_dir" && HSM_ABI_CONFIG="$id_dir/$config" HSM_ABI_LOG=warn timeout -k 5 "$limit" "$@" "$dev" \
        --id-scope "$scope" --endpoint localhost --attestation "$attestation" --timeout 30 "${trusted[@]}" \
        "${opts[@]}" >"$out" 2>"$err") || rc=$?
    end=$(date +%s)
    echo "exit $rc after $((end - start)) s"
    cat "$out"
    grep -q "^assigned hub=$hub_host device=$device\$" "$out" ||
        { echo "not assigned to $hub_host as $device"; cat "$err"; return 1; }
    kept_after="$(hub_seqs "$device" | wc -l)"
    case "$expect" in
        ok)
            [ "$rc" -eq 0 ] || { cat "$err"; return 1; }
            grep -q "^hub connected hub=$hub_host device=$device\$" "$out"
            grep -q '^twin read back the reported property$' "$out"
            grep -q "^hub done connections=$connections renewals=$renewals\$" "$out"
            if grep -E '(^|[^_])ERROR' "$err" | grep -v '^status:'; then
                echo "a successful run printed ERROR lines (above)"
                return 1
            fi
            # The emulator kept exactly the messages sent, in order, after those of earlier cases.
            local seqs expected
            [ $((kept_after - kept_before)) -eq $((renewals + 1)) ] ||
                { echo "the hub kept $((kept_after - kept_before)) new messages, $((renewals + 1)) were sent"; return 1; }
            seqs="$(hub_seqs "$device" | tail -n "$((renewals + 1))")"
            expected="$(seq 1 "$((renewals + 1))")"
            [ "$seqs" = "$expected" ] ||
                { echo "the hub kept seq [$seqs] last, expected [$expected]"; return 1; }
            echo "the hub kept seq $(tr '\n' ' ' <<<"$seqs")for $device"
            # Over AMQP a renewal is a put-token on the same connection: the first and one per renewal.
            if [ "$connections" -eq 1 ] && [ "$renewals" -gt 0 ]; then
                local puts=$(($(put_tokens "$device") - puts_before))
                [ "$puts" -ge $((renewals + 1)) ] ||
                    { echo "the hub accepted $puts put-tokens, expected at least $((renewals + 1))"; return 1; }
                echo "the hub accepted $puts put-tokens of $device on one connection"
            fi
            ;;
        refused)
            [ "$rc" -eq 1 ] || { echo "expected exit 1 (refused)"; cat "$err"; return 1; }
            # An x509 device over AMQP has no authentication step of its own (no CBS): the SDK reports
            # the hub's refusal of its first link as a messenger error (iothubtransport_amqp_common.c:
            # DEVICE_STATE_ERROR_MSG is COMMUNICATION_ERROR), its messenger's link detached.
            local reason=BAD_CREDENTIAL
            case "$hub_transport,$attestation" in
                amqp,x509 | amqp-ws,x509)
                    reason=COMMUNICATION_ERROR
                    # (the SDK logs on stdout)
                    cat "$out" "$err" | grep -q "messenger failed to be started" || { cat "$err"; return 1; }
                    ;;
            esac
            grep -q "^hub refused reason=$reason\$" "$out" || { cat "$err"; return 1; }
            ! grep -q '^hub connected' "$out"
            [ $((end - start)) -lt 20 ] || { echo "refusal took $((end - start)) s"; return 1; }
            [ "$kept_after" -eq "$kept_before" ] || { echo "the hub kept a message of a refused device"; return 1; }
            ;;
    esac
}

# hub_cell ROW TRANSPORT EXPECT DEVICE CONFIG ATTESTATION [prov_device options...]
#   one case, hub_TRANSPORT_ROW_rustls, filling the hub matrix cell (ROW, TRANSPORT).
hub_cell() {
    local row="$1" transport="$2" expect="$3" before="$failed"
    shift 3
    local dev="$1" config="$2" attestation="$3"
    shift 3
    local prov_transport="$transport"
    # DPS's TPM attestation exists over HTTPS (and AMQP) only: such a device registers over HTTPS.
    [ "$attestation" = tpm ] && prov_transport=http
    run "hub_${transport//-/_}_${row}_rustls" hub_device "hub_${transport//-/_}_${row}_rustls" "$expect" "$dev" \
        "$config" "$attestation" --transport "$prov_transport" --hub "$transport" "$@"
    matrix_cell hub "$row" "$transport" "$before" "$expect" ok
}

hub_print_matrix() {
    matrix_print hub "hub: identity / negative" "${hub_transports[@]}"
    echo "(hub: provisioned, then IoTHubDeviceClient_LL_CreateFromDeviceAuth; ok = telemetry confirmed and"
    echo " kept by the hub, twin read, reported property read back; refused = the hub refused the device)"
}

hub_cases() {
    # Under valgrind, with the whole memory check: ChaCha20-Poly1305 only (see sdk-interop.sh).
    hub_emulator --chacha20-only || { fail hub_emulator_chacha20; return; }
    run hub_mqtt_x509_pkcs11_rustls_valgrind hub_device hub_mqtt_x509_pkcs11_rustls_valgrind ok "$dev_rustls" \
        pkcs11.toml x509 --transport mqtt --hub mqtt -- "${vg[@]}"
    run hub_mqtt_ws_symm_group_rustls_valgrind hub_device hub_mqtt_ws_symm_group_rustls_valgrind ok "$dev_rustls" \
        symm-group.toml symmetric-key --transport mqtt-ws --hub mqtt-ws -- "${vg[@]}"
    run hub_amqp_symm_individual_rustls_valgrind hub_device hub_amqp_symm_individual_rustls_valgrind ok "$dev_rustls" \
        symm.toml symmetric-key --transport amqp --hub amqp -- "${vg[@]}"
    hub_emulator || { fail hub_emulator; return; }

    local t
    for t in "${hub_transports[@]}"; do
        hub_cell x509_pkcs11 "$t" ok "$dev_rustls" pkcs11.toml x509
        hub_cell x509_tpm_key "$t" ok "$dev_rustls" tpm-x509.toml x509
        hub_cell x509_file_token "$t" ok "$dev_rustls" file-token.toml x509
        hub_cell x509_dice_group "$t" ok "$dev_rustls" dice-group.toml x509
        hub_cell x509_dice_individual "$t" ok "$dev_rustls" dice-solo.toml x509
        hub_cell x509_vendor "$t" ok "$dev_rustls" vendor.toml x509
        hub_cell x509_issued_pkcs11 "$t" ok "$dev_rustls" issued.toml x509
        hub_cell symm_individual "$t" ok "$dev_rustls" symm.toml symmetric-key
        hub_cell symm_group "$t" ok "$dev_rustls" symm-group.toml symmetric-key
        hub_cell tpm_attestation "$t" ok "$dev_rustls" tpm.toml tpm
    done
    # Negatives: registered with one identity, then at the hub another one for the same device id.
    for t in "${hub_transports[@]}"; do
        # SAS signed with a key DPS did not register the device with.
        hub_cell neg_symm_other_key "$t" refused "$dev_rustls" symm.toml symmetric-key --hub-config symm-wrong.toml
        # The certificate of another device of the same (enrolled) group.
        hub_cell neg_x509_other_device "$t" refused "$dev_rustls" pkcs11.toml x509 --hub-config file-token.toml
    done
    # The SDK's own OpenSSL tlsio with a PEM key (the benchmark's other side).
    run hub_mqtt_x509_file_pem_openssl hub_device hub_mqtt_x509_file_pem_openssl ok "$dev_openssl" file-pem.toml \
        x509 --transport mqtt --hub mqtt
    # SAS renewal: a 12 s token, renewed by the SDK at 80% of it (a new connection with a new token,
    # before the hub drops the old one); ten renewals, telemetry after each, no other loss.
    run hub_mqtt_symm_individual_sas_renewal_rustls hub_device hub_mqtt_symm_individual_sas_renewal_rustls ok \
        "$dev_rustls" symm.toml symmetric-key --transport mqtt --hub mqtt --sas-lifetime 12 --renewals 10
    run hub_mqtt_ws_tpm_sas_renewal_rustls hub_device hub_mqtt_ws_tpm_sas_renewal_rustls ok \
        "$dev_rustls" tpm.toml tpm --transport http --hub mqtt-ws --sas-lifetime 12 --renewals 2
    # Over AMQP the SDK puts each renewed token on $cbs of the same connection: it outlives three
    # 12 s tokens (the hub closes a connection whose token expired unrenewed), one connection.
    run hub_amqp_symm_individual_sas_renewal_rustls hub_device hub_amqp_symm_individual_sas_renewal_rustls ok \
        "$dev_rustls" symm.toml symmetric-key --transport amqp --hub amqp --sas-lifetime 12 --renewals 3

    hub_print_matrix
    hub_emulator_restore || fail emulator
}

hub_bench() {
    hub_emulator --retry-after 0 || { echo "sdk-interop: the emulator did not restart"; return 1; }
    python3 "$root/tests/c/bench_registration.py" "$1" "$id_dir" "$scope" "$server_ca" \
        "$dev_rustls" pkcs11.toml "$dev_openssl" file-pem.toml --hub mqtt --no-twin
}
