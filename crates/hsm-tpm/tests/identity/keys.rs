//! EK and SRK: creation on a fresh TPM and reuse, both EK templates, configuration keys, hierarchy auth
//! values, and a fresh TPM's first open logging no error.

use hsm_core::{SasSigner, TpmIdentity};
use hsm_tpm::{EkTemplate, Tpm, TpmOptions};

use crate::common::Swtpm;
use crate::{activate, opts};

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
            "keys::first_open_of_a_fresh_tpm_logs_no_error",
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
