#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The SDK's TPM attestation on swtpm: EK/SRK creation and reuse, both EK templates, real
//! activation blobs, corrupted blobs, large-input HMAC, restart recovery.

mod common;

use common::Swtpm;
use hsm_core::{SasSigner, TpmIdentity};
use hsm_tpm::{EkTemplate, Tpm, TpmOptions, service};

fn opts(tpm: &Swtpm, template: EkTemplate) -> TpmOptions {
    let mut o = TpmOptions::new(tpm.tcti());
    o.ek_template = template;
    o
}

fn activate(t: &mut Tpm) -> Vec<u8> {
    let ek = t.endorsement_key().unwrap();
    let srk = t.storage_root_key().unwrap();
    let a = service::make_activation(&ek, &srk).unwrap();
    t.activate_identity_key(&a.blob).unwrap();
    a.key.to_vec()
}

#[test]
fn fresh_tpm_gets_keys_and_a_provisioned_one_reuses_them() {
    let sw = Swtpm::start();
    let (ek, srk) = {
        let t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
        assert_eq!(t.keys_created(), hsm_tpm::KeysCreated { ek: true, srk: true });
        let ek = t.endorsement_key().unwrap();
        let srk = t.storage_root_key().unwrap();
        // TPM2B_PUBLIC: the size prefix covers the rest; RSA, SHA-256; 256-byte modulus at the end.
        assert_eq!(usize::from(u16::from_be_bytes([ek[0], ek[1]])), ek.len() - 2);
        assert_eq!(&ek[2..6], &[0, 1, 0, 0x0b]);
        assert_eq!(&ek[ek.len() - 258..ek.len() - 256], &[1, 0]);
        assert_eq!(t.registration_id(), hsm_tpm::registration_id(&ek));
        assert_eq!(t.registration_id().len(), 52);
        assert!(!t.has_identity_key().unwrap());
        (ek, srk)
    };
    let t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    assert_eq!(t.keys_created(), hsm_tpm::KeysCreated { ek: false, srk: false });
    assert_eq!(t.endorsement_key().unwrap(), ek);
    assert_eq!(t.storage_root_key().unwrap(), srk);
    // An existing EK is used as it is, whatever template is configured.
    drop(t);
    let t = Tpm::open(opts(&sw, EkTemplate::Tcg)).unwrap();
    assert_eq!(t.endorsement_key().unwrap(), ek);
}

#[test]
fn both_ek_templates_give_different_eks_and_are_detected() {
    let a = Swtpm::start();
    let b = Swtpm::start();
    let mut sdk = Tpm::open(opts(&a, EkTemplate::Sdk)).unwrap();
    let mut tcg = Tpm::open(opts(&b, EkTemplate::Tcg)).unwrap();
    let ek_sdk = sdk.endorsement_key().unwrap();
    let ek_tcg = tcg.endorsement_key().unwrap();

    let report = hsm_tpm::ek_report(sdk.connection()).unwrap();
    assert_eq!(report.persisted.as_deref(), Some(ek_sdk.as_slice()));
    assert_eq!(report.matching_template(), Some(EkTemplate::Sdk));
    let report_tcg = hsm_tpm::ek_report(tcg.connection()).unwrap();
    assert_eq!(report_tcg.matching_template(), Some(EkTemplate::Tcg));

    // On one TPM the two templates yield different keys, hence different registration ids.
    let c: Vec<_> = report
        .candidates
        .iter()
        .map(|(_, k)| hsm_tpm::registration_id(k))
        .collect();
    assert_eq!(c.len(), 2);
    assert_ne!(c[0], c[1]);
    // The SDK template's unique is empty: the EK's TPM2B_PUBLIC bytes match the sdk candidate.
    assert_eq!(report.candidates[0].0, EkTemplate::Sdk);
    assert_eq!(report.candidates[0].1, ek_sdk);
    // Both EKs activate a real blob.
    let k1 = activate(&mut sdk);
    let k2 = activate(&mut tcg);
    let data = b"0ne00000A0A%2fregistrations%2fdevice\n1767225600";
    assert_eq!(
        sdk.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&k1, data).to_vec()
    );
    assert_eq!(
        tcg.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&k2, data).to_vec()
    );
    drop(ek_tcg);
}

#[test]
fn real_activation_signs_like_software_and_replacement_works() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let err = t.sign_with_identity(b"x").unwrap_err().to_string();
    assert!(err.contains("no identity key at 0x81000100"), "{err}");

    let key = activate(&mut t);
    assert!(t.has_identity_key().unwrap());
    let data = b"0ne00000A0A%2fregistrations%2fabc\n1767225600";
    assert_eq!(
        t.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&key, data).to_vec()
    );
    assert_eq!(
        t.sign_with_identity(b"").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"").to_vec()
    );

    // The SDK activates again with the key returned at assignment: the new key replaces the old.
    let key2 = activate(&mut t);
    assert_ne!(key, key2);
    assert_eq!(
        t.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&key2, data).to_vec()
    );

    // A fresh object on the same TPM finds the persisted key.
    drop(t);
    let t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    assert_eq!(
        t.sign_with_identity(data).unwrap(),
        hsm_core::sas::hmac_sha256(&key2, data).to_vec()
    );
}

#[test]
fn large_inputs_use_an_hmac_sequence_and_match_software() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    for len in [1023usize, 1024, 1025, 2048, 5000, 70_000] {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(
            t.sign_with_identity(&data).unwrap(),
            hsm_core::sas::hmac_sha256(&key, &data).to_vec(),
            "length {len}"
        );
        // The ordinary path keeps working after the raw sequence path.
        assert_eq!(
            t.sign_with_identity(b"ab").unwrap(),
            hsm_core::sas::hmac_sha256(&key, b"ab").to_vec()
        );
    }
}

#[test]
fn corrupted_or_truncated_blobs_fail_and_the_old_key_keeps_working() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let data = b"payload";
    let expected = hsm_core::sas::hmac_sha256(&key, data).to_vec();

    let ek = t.endorsement_key().unwrap();
    let srk = t.storage_root_key().unwrap();
    let good = service::make_activation(&ek, &srk).unwrap().blob;

    // Truncations at every field boundary and a few inside fields.
    let parsed = hsm_tpm::ActivationBlob::parse(&good).unwrap();
    let mut cuts = vec![0usize, 1, good.len() - 1, good.len() / 2];
    let mut off = 0;
    for part in [
        &parsed.credential_blob,
        &parsed.credential_secret,
        &parsed.duplicate,
        &parsed.import_secret,
        &parsed.public,
    ] {
        off += 2 + part.len();
        cuts.push(off);
    }
    for cut in cuts {
        let e = t.activate_identity_key(&good[..cut]).unwrap_err().to_string();
        assert!(e.contains("activation blob"), "cut {cut}: {e}");
    }
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(
        t.activate_identity_key(&trailing)
            .unwrap_err()
            .to_string()
            .contains("trailing")
    );

    // Flipped bytes in each protected part: the TPM's integrity checks refuse them.
    let flip = |mut b: hsm_tpm::ActivationBlob, which: usize| {
        let part = match which {
            0 => &mut b.credential_blob,
            1 => &mut b.credential_secret,
            2 => &mut b.duplicate,
            3 => &mut b.import_secret,
            _ => &mut b.public,
        };
        let i = part.len() - 5;
        part[i] ^= 0x40;
        b.to_bytes()
    };
    for which in 0..5 {
        let bad = flip(parsed.clone(), which);
        assert!(
            t.activate_identity_key(&bad).is_err(),
            "corruption of part {which} accepted"
        );
        assert_eq!(
            t.sign_with_identity(data).unwrap(),
            expected,
            "old key lost after part {which}"
        );
    }
    // A blob made for another TPM fails too.
    let other = Swtpm::start();
    let o = Tpm::open(opts(&other, EkTemplate::Sdk)).unwrap();
    let foreign = service::make_activation(&o.endorsement_key().unwrap(), &o.storage_root_key().unwrap()).unwrap();
    let e = t.activate_identity_key(&foreign.blob).unwrap_err().to_string();
    assert!(e.contains("ActivateCredential"), "{e}");
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
    // And the good one still activates.
    t.activate_identity_key(&good).unwrap();
    assert_ne!(t.sign_with_identity(data).unwrap(), expected);
}

#[test]
fn swtpm_restart_mid_run_recovers() {
    let mut sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let data = b"before and after";
    let expected = hsm_core::sas::hmac_sha256(&key, data).to_vec();
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
    sw.restart();
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
    // Stopped for good: a clear error, no hang.
    sw.stop();
    let e = t.sign_with_identity(data).unwrap_err().to_string();
    assert!(e.contains("TPM"), "{e}");
    sw.restart();
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
}

#[test]
fn concurrent_callers_are_serialized() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let t = std::sync::Arc::new(t);
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let t = t.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let data = format!("thread {n} call {i}");
                    assert_eq!(
                        t.hmac(data.as_bytes()).unwrap(),
                        hsm_core::sas::hmac_sha256(&key, data.as_bytes())
                    );
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
}

#[test]
fn configuration_keys() {
    let sw = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "[tpm]\nbackend = \"tpm\"\ntcti = \"{}\"\nek_template = \"tcg\"\nidentity_handle = 0x81000123\nowner_auth = \"\"\n",
        sw.tcti()
    );
    let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
    let mut t = Tpm::from_section(cfg.section("tpm").unwrap()).unwrap();
    assert_eq!(t.identity_handle(), 0x8100_0123);
    assert_eq!(t.ek_template(), EkTemplate::Tcg);
    let key = activate(&mut t);
    assert_eq!(
        t.sign_with_identity(b"k").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"k").to_vec()
    );

    for (bad, needle) in [
        ("ek_template = \"x\"", "ek_template"),
        ("identity_handle = 5", "identity_handle"),
        ("identity_handle = \"0x81010001\"", "identity_handle"),
        ("owner_auth = \"a\"\nowner_auth_file = \"f\"", "owner_auth"),
        ("tcti = \"bogus:x\"", "tcti"),
        ("unknown = 1", "unknown"),
        ("endorsement_auth_file = \"missing\"", "endorsement_auth_file"),
    ] {
        let text = format!("[tpm]\nbackend = \"tpm\"\n{bad}\n");
        let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
        let e = Tpm::from_section(cfg.section("tpm").unwrap()).unwrap_err().to_string();
        assert!(e.contains(needle), "{bad}: {e}");
    }
}

#[test]
fn hierarchy_auth_values_are_used_and_wrong_ones_fail_clearly() {
    use tss_esapi::handles::AuthHandle;
    use tss_esapi::interface_types::session_handles::AuthSession;
    use tss_esapi::structures::Auth;

    let sw = Swtpm::start();
    let dir = tempfile::tempdir().unwrap();
    // Give the owner and endorsement hierarchies passwords, on a fresh TPM.
    {
        let conn = hsm_tpm::TpmConn::shared(&sw.tcti()).unwrap();
        conn.with_context(move |ctx| {
            ctx.execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.hierarchy_change_auth(AuthHandle::Owner, Auth::try_from(b"owner-pw".to_vec()).unwrap())
                    .unwrap();
                ctx.hierarchy_change_auth(AuthHandle::Endorsement, Auth::try_from(vec![0xe1, 0x02]).unwrap())
                    .unwrap();
            })
        })
        .unwrap();
    }
    std::fs::write(dir.path().join("eh.txt"), "hex:e102\n").unwrap();
    let section = |extra: &str| {
        let text = format!("[tpm]\nbackend = \"tpm\"\ntcti = \"{}\"\n{extra}\n", sw.tcti());
        hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap()
    };

    // Without the passwords the EK cannot be created: a clear authorization error.
    let cfg = section("");
    let e = Tpm::from_section(cfg.section("tpm").unwrap()).unwrap_err().to_string();
    assert!(
        e.contains("create the endorsement key") && e.contains("authorization"),
        "{e}"
    );
    let cfg = section("endorsement_auth_file = \"eh.txt\"\nowner_auth = \"wrong\"");
    let e = Tpm::from_section(cfg.section("tpm").unwrap()).unwrap_err().to_string();
    assert!(
        e.contains("persist the endorsement key") && e.contains("authorization"),
        "{e}"
    );

    // With them: keys created, activation (PolicySecret on the endorsement hierarchy) works.
    let cfg = section("endorsement_auth_file = \"eh.txt\"\nowner_auth = \"owner-pw\"");
    let mut t = Tpm::from_section(cfg.section("tpm").unwrap()).unwrap();
    assert_eq!(t.keys_created(), hsm_tpm::KeysCreated { ek: true, srk: true });
    let key = activate(&mut t);
    assert_eq!(
        t.sign_with_identity(b"auth").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"auth").to_vec()
    );
}

/// A first open of a fresh TPM (EK, SRK and identity key handles all empty) and a second one
/// print nothing on stderr that says ERROR: tpm2-tss logs a failed `Esys_TR_FromTPMPublic` as
/// an error, so an empty persistent handle must be found empty without that call. Runs the
/// opens in a child process (this test binary again) to read its stderr.
#[test]
fn first_open_of_a_fresh_tpm_logs_no_error() {
    const CHILD: &str = "HSM_TPM_TEST_FIRST_OPEN_TCTI";
    if let Ok(tcti) = std::env::var(CHILD) {
        let mut o = TpmOptions::new(tcti.clone());
        o.ek_template = EkTemplate::Sdk;
        let t = Tpm::open(o).unwrap();
        assert_eq!(t.keys_created(), hsm_tpm::KeysCreated { ek: true, srk: true });
        assert!(!t.has_identity_key().unwrap());
        drop(t);
        let t = Tpm::open(TpmOptions::new(tcti)).unwrap();
        assert_eq!(t.keys_created(), hsm_tpm::KeysCreated { ek: false, srk: false });
        assert!(!t.has_identity_key().unwrap());
        eprintln!("child done");
        return;
    }
    let sw = Swtpm::start();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "first_open_of_a_fresh_tpm_logs_no_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, sw.tcti())
        .env_remove("TSS2_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stderr.contains("child done"), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "{} ERROR lines:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// Issue 12, defect 10: re-activation never leaves the TPM without an identity key. An
/// activation made to fail after each step of the replacement (staged, old evicted, new
/// persisted) leaves a key that signs with the new key; a following open or activation puts
/// the layout back to one key at the identity handle and none at the staging handle.
#[test]
fn interrupted_reactivation_keeps_a_working_key() {
    use hsm_tpm::ActivationStep;

    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let h = t.identity_handle();
    let staging = hsm_tpm::staging_handle(h);
    assert_eq!(staging, 0x8100_0101);
    let layout = |t: &Tpm| {
        let conn = t.connection().clone();
        let listed = conn
            .with_context(move |ctx| {
                use tss_esapi::constants::CapabilityType;
                use tss_esapi::structures::CapabilityData;
                match ctx.get_capability(CapabilityType::Handles, 0x8100_0000, 64).unwrap().0 {
                    CapabilityData::Handles(l) => l.iter().map(|h| u32::from(*h)).collect::<Vec<_>>(),
                    other => panic!("{other:?}"),
                }
            })
            .unwrap();
        (listed.contains(&h), listed.contains(&staging))
    };
    let mut key = activate(&mut t);
    assert_eq!(layout(&t), (true, false));

    for step in [
        ActivationStep::Staged,
        ActivationStep::OldEvicted,
        ActivationStep::Persisted,
    ] {
        let ek = t.endorsement_key().unwrap();
        let srk = t.storage_root_key().unwrap();
        let a = service::make_activation(&ek, &srk).unwrap();
        assert_ne!(a.key.to_vec(), key);
        t.fail_activation_after(Some(step));
        let e = t.activate_identity_key(&a.blob).unwrap_err().to_string();
        assert!(e.contains("injected failure"), "{step:?}: {e}");
        t.fail_activation_after(None);
        // A key still signs, and it is the new one.
        assert!(t.has_identity_key().unwrap(), "{step:?}");
        assert_eq!(
            t.sign_with_identity(b"after").unwrap(),
            hsm_core::sas::hmac_sha256(&a.key, b"after").to_vec(),
            "{step:?}"
        );
        // Also over the HMAC sequence path (input longer than TPM_PT_INPUT_BUFFER).
        let long = vec![7u8; 3000];
        assert_eq!(
            t.sign_with_identity(&long).unwrap(),
            hsm_core::sas::hmac_sha256(&a.key, &long).to_vec(),
            "{step:?}"
        );
        let expected = match step {
            ActivationStep::Staged => (true, true),
            ActivationStep::OldEvicted => (false, true),
            ActivationStep::Persisted => (true, true),
        };
        assert_eq!(layout(&t), expected, "{step:?}");
        key = a.key.to_vec();

        // Opening again removes a staged duplicate; a key that is only staged stays until the
        // next activation, which converges to the normal layout.
        drop(t);
        t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
        assert_eq!(
            t.sign_with_identity(b"reopened").unwrap(),
            hsm_core::sas::hmac_sha256(&key, b"reopened").to_vec(),
            "{step:?}"
        );
        if step == ActivationStep::Persisted {
            assert_eq!(layout(&t), (true, false));
        } else {
            assert_eq!(layout(&t), expected, "{step:?}");
            key = activate(&mut t);
            assert_eq!(layout(&t), (true, false), "{step:?}");
            assert_eq!(
                t.sign_with_identity(b"again").unwrap(),
                hsm_core::sas::hmac_sha256(&key, b"again").to_vec()
            );
        }
    }
    // Removing the identity key removes a staged one too.
    assert!(t.remove_identity_key().unwrap());
    assert!(!t.has_identity_key().unwrap());
}

/// Issue 12, defect 5: a frozen TPM (swtpm stopped with SIGSTOP) fails a sign within the
/// command timeout with an error naming the TCTI and the timeout; a second caller waiting
/// behind it fails as soon as the first gives up, a third at once; after SIGCONT signing works
/// again (over a new connection).
#[test]
fn a_frozen_tpm_fails_signing_within_the_command_timeout() {
    use std::time::{Duration, Instant};

    let sw = Swtpm::start();
    let mut o = opts(&sw, EkTemplate::Sdk);
    o.command_timeout = Duration::from_millis(1500);
    let mut t = Tpm::open(o.clone()).unwrap();
    assert_eq!(t.connection().command_timeout(), Duration::from_millis(1500));
    let key = activate(&mut t);
    let other = Tpm::open(o).unwrap();
    assert_eq!(
        other.sign_with_identity(b"x").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"x").to_vec()
    );

    sw.signal("STOP");
    let start = Instant::now();
    let port = sw.port();
    let second = std::thread::spawn(move || {
        // Once the first command waits in the stopped TPM's socket, the first caller holds the connection.
        test_support::wait::until_true(
            "the first command to reach the stopped TPM",
            Duration::from_secs(10),
            || test_support::wait::unread(port) > 0,
        );
        let t0 = Instant::now();
        let r = other.sign_with_identity(b"second");
        (r, t0.elapsed(), other)
    });
    let e = t.sign_with_identity(b"first").unwrap_err().to_string();
    let first_took = start.elapsed();
    let (r2, second_took, other) = second.join().unwrap();
    let e2 = r2.unwrap_err().to_string();
    let t0 = Instant::now();
    let e3 = t.sign_with_identity(b"third").unwrap_err().to_string();
    let third_took = t0.elapsed();
    sw.signal("CONT");

    assert!(
        first_took >= Duration::from_millis(1400) && first_took < Duration::from_millis(2500),
        "{first_took:?}"
    );
    assert!(
        e.contains(&sw.tcti()) && e.contains("1500 ms") && e.contains("did not answer"),
        "{e}"
    );
    // The second caller waited behind the first and gave up when it did, not 1.5 s later.
    assert!(second_took < Duration::from_millis(1500), "{second_took:?}: {e2}");
    assert!(e2.contains(&sw.tcti()) && e2.contains("1500 ms"), "{e2}");
    assert!(third_took < Duration::from_millis(200), "{third_took:?}");
    assert!(e3.contains("earlier command"), "{e3}");

    // The TPM answers again: after the stuck command returns, signing works (reconnected).
    let sig = test_support::wait::until(
        "signing to recover after SIGCONT",
        test_support::wait::DEADLINE,
        || match t.sign_with_identity(b"again") {
            Ok(s) => Some(s),
            Err(e) => {
                assert!(e.to_string().contains("earlier command"), "{e}");
                None
            }
        },
    );
    assert_eq!(sig, hsm_core::sas::hmac_sha256(&key, b"again").to_vec());
    assert_eq!(
        other.sign_with_identity(b"y").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"y").to_vec()
    );
    // Long input (the raw HMAC sequence path) is bounded the same way.
    sw.signal("STOP");
    let t0 = Instant::now();
    let e = t.sign_with_identity(&[1u8; 3000]).unwrap_err().to_string();
    let took = t0.elapsed();
    sw.signal("CONT");
    assert!(
        took < Duration::from_millis(2500) && e.contains("1500 ms"),
        "{took:?}: {e}"
    );
}

#[test]
fn command_timeout_is_configurable_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let parse = |extra: &str| {
        let text = format!("[tpm]\nbackend = \"tpm\"\ntcti = \"swtpm:port=1\"\n{extra}\n");
        let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
        TpmOptions::from_section(cfg.section("tpm").unwrap())
    };
    assert_eq!(parse("").unwrap().command_timeout, hsm_tpm::DEFAULT_COMMAND_TIMEOUT);
    assert_eq!(
        parse("command_timeout = 2.5").unwrap().command_timeout,
        std::time::Duration::from_millis(2500)
    );
    assert_eq!(
        parse("command_timeout = 30").unwrap().command_timeout,
        std::time::Duration::from_secs(30)
    );
    for bad in ["command_timeout = 0", "command_timeout = -1", "command_timeout = 1e9"] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("command_timeout"), "{bad}: {e}");
    }
}

/// The staging handle holding an object that is not an identity key (a user's ECDSA key) is
/// never evicted: re-activation refuses with a clear error and the old identity key still signs.
#[test]
fn a_foreign_object_at_the_staging_handle_is_left_alone() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let staging = hsm_tpm::staging_handle(t.identity_handle());
    let ecc = hsm_tpm::generate_key(t.connection().clone(), hsm_tpm::KeyLocation::Persistent(staging)).unwrap();
    let spki = hsm_core::SigningKey::public_key_spki(&ecc).unwrap();
    assert_eq!(
        t.sign_with_identity(b"m").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"m").to_vec()
    );
    let ek = t.endorsement_key().unwrap();
    let srk = t.storage_root_key().unwrap();
    let a = service::make_activation(&ek, &srk).unwrap();
    let e = t.activate_identity_key(&a.blob).unwrap_err().to_string();
    assert!(
        e.contains(&format!("0x{staging:08x}")) && e.contains("another object"),
        "{e}"
    );
    assert_eq!(
        t.sign_with_identity(b"m").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"m").to_vec()
    );
    drop(t);
    let t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    assert!(t.remove_identity_key().unwrap());
    let again = hsm_tpm::TpmKey::open(t.connection().clone(), hsm_tpm::KeyLocation::Persistent(staging)).unwrap();
    assert_eq!(hsm_core::SigningKey::public_key_spki(&again).unwrap(), spki);
    // With the identity handle empty, activation persists there directly and still leaves the
    // object at the staging handle alone.
    let mut t = t;
    let key = activate(&mut t);
    assert_eq!(
        t.sign_with_identity(b"n").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"n").to_vec()
    );
    let again = hsm_tpm::TpmKey::open(t.connection().clone(), hsm_tpm::KeyLocation::Persistent(staging)).unwrap();
    assert_eq!(hsm_core::SigningKey::public_key_spki(&again).unwrap(), spki);
}
