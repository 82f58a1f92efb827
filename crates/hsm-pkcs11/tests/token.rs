//! The shared suite (`common/suite.rs`) against a real SoftHSM2 token (one token directory per
//! test process).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::ring_verify;
use common::suite::{issue, x509_config};
use common::{fixture, suite, suite_errors, suite_sessions};
use hsm_core::config::Config;
use hsm_core::{Curve, KeyAlgorithm, SignatureScheme, SymmetricIdentity, X509Identity};
use hsm_pkcs11::{Pkcs11Symmetric, open_signer, tools};

#[test]
fn x509_identity_p256() {
    suite::full_identity(
        fixture(),
        "device-p256",
        KeyAlgorithm::Ec(Curve::P256),
        &[SignatureScheme::EcdsaP256Sha256],
    );
}

#[test]
fn x509_identity_p384() {
    suite::full_identity(
        fixture(),
        "device-p384",
        KeyAlgorithm::Ec(Curve::P384),
        &[SignatureScheme::EcdsaP384Sha384],
    );
}

#[test]
fn x509_identity_rsa_pss_and_pkcs1() {
    suite::full_identity(
        fixture(),
        "device-rsa",
        KeyAlgorithm::Rsa { bits: 2048 },
        &suite::RSA_SCHEMES,
    );
}

#[test]
fn token_hashing_mechanisms() {
    suite::token_hashing_mechanisms(fixture());
}

#[test]
fn rsa_3072_key_generation_and_signing() {
    suite::rsa_3072_key_generation_and_signing(fixture());
}

#[test]
fn hmac_key_stays_on_the_token() {
    suite::hmac_key_stays_on_the_token(fixture());
}

#[test]
fn uri_and_configuration_errors() {
    suite_errors::uri_and_configuration_errors(fixture());
}

#[test]
fn eight_threads_sign_concurrently() {
    suite_sessions::eight_threads_sign_concurrently(fixture());
}

#[test]
fn logs_in_again_after_logout() {
    suite_sessions::logs_in_again_after_logout(fixture());
}

#[test]
fn wrong_pin_is_tried_once() {
    suite_sessions::wrong_pin_is_tried_once(fixture());
}

#[test]
fn list_objects_as_uris() {
    suite::list_objects_as_uris(fixture());
}

/// Keys generated while other threads search the token's objects and log in through other
/// token objects: zero errors. (SoftHSM2 fails a key generation that overlaps an object
/// search with CKR_GENERAL_ERROR; the backend runs object creation alone.)
#[test]
fn key_generation_while_other_threads_search() {
    suite_sessions::key_generation_while_other_threads_search(fixture());
}

#[test]
fn module_path_in_configuration_and_uri() {
    let f = fixture();
    let module = f.hsm.module();
    let key_uri = tools::generate_key_pair(&f.uri("object=modpath"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let key = key_uri.to_token_string();
    assert!(key.contains("module-path="), "{key}");
    let csr = tools::make_csr(&key, "modpath").unwrap();
    let (leaf, _) = issue(f.hsm.path(), "modpath", &csr);
    std::fs::write(f.hsm.path().join("modpath-leaf.pem"), leaf).unwrap();
    // The same module by another name: a symbolic link next to the configuration.
    std::os::unix::fs::symlink(module, f.hsm.path().join("module-link.so")).unwrap();
    std::fs::write(f.hsm.path().join("other-module.so"), b"").unwrap();
    let x509 = |module_path: &str| {
        x509_config(
            f,
            &format!(
                "[x509]\nbackend = \"pkcs11\"\nkey = \"{key}\"\ncertificate_file = \"modpath-leaf.pem\"\nmodule_path = \"{module_path}\"\n"
            ),
        )
    };
    // The same path in both places, and the same module through the link: accepted.
    let id = x509(&module.display().to_string()).unwrap();
    assert_eq!(id.common_name().unwrap(), "modpath");
    assert_eq!(x509("module-link.so").unwrap().common_name().unwrap(), "modpath");
    // Another module: a clear error naming both.
    let e = x509("other-module.so").err().unwrap().to_string();
    assert!(
        e.contains("x509.module_path") && e.contains("other-module.so") && e.contains(&module.display().to_string()),
        "{e}"
    );

    // [symmetric_key] (and a [tpm] section with the pkcs11 backend) read the same keys.
    let secret = tools::generate_secret(&f.uri("object=modpath-hmac"), 32).unwrap();
    let symmetric = |module_path: &str| {
        let cfg = Config::from_toml(
            &format!(
                "[symmetric_key]\nbackend = \"pkcs11\"\nregistration_id = \"d\"\nkey = \"{}\"\nmodule_path = \"{module_path}\"\n",
                secret.to_token_string()
            ),
            "test.toml",
            f.hsm.path(),
        )
        .unwrap();
        Pkcs11Symmetric::from_section(cfg.section("symmetric_key").unwrap())
    };
    let id = symmetric("module-link.so").unwrap();
    assert_eq!(id.hmac_sha256(b"m").unwrap(), id.hmac_sha256(b"m").unwrap());
    let e = symmetric("other-module.so").err().unwrap().to_string();
    assert!(
        e.contains("symmetric_key.module_path") && e.contains("other-module.so"),
        "{e}"
    );
}

/// Issue 21, item 10: a `module_path` that is not a PKCS#11 module (missing, or not a module)
/// is reported under `module_path`, the key it was given for being fine.
#[test]
fn a_wrong_module_path_is_reported_under_module_path() {
    let f = fixture();
    let mut key = tools::generate_key_pair(&f.uri("object=wrong-module"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    key.module_path = None;
    let key = key.to_token_string();
    assert!(!key.contains("module-path="), "{key}");
    std::fs::write(f.hsm.path().join("not-a-module.so"), b"").unwrap();
    for module_path in ["not-a-module.so", "no-such-module.so"] {
        let e = x509_config(
            f,
            &format!("[x509]\nbackend = \"pkcs11\"\nkey = \"{key}\"\nmodule_path = \"{module_path}\"\n"),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("x509.module_path") && e.contains(module_path), "{e}");
        assert!(!e.contains("x509.key"), "{e}");
    }
}

/// With `HSM_ABI_LOG=warn`, opening a key through the library's C export (which installs the
/// stderr logger) prints no ERROR line: a token's vendor mechanisms are not errors. Runs the
/// open in a child process (this test binary again), whose stderr is the logger's output.
#[test]
fn open_with_warn_logging_prints_no_error() {
    const CHILD: &str = "HSM_PKCS11_TEST_OPEN_TOKEN";
    if let Ok(token) = std::env::var(CHILD) {
        let token = std::ffi::CString::new(token).unwrap();
        let mut signer = std::ptr::null_mut();
        #[allow(unsafe_code)]
        // SAFETY: a NUL-terminated token and a writable out-pointer; the signer is closed once.
        unsafe {
            assert_eq!(
                hsm_abi::ffi::signer::hsm_abi_signer_open(token.as_ptr(), &mut signer),
                0
            );
            hsm_abi::ffi::signer::hsm_abi_signer_close(signer);
        }
        // Shows that the logger installed by the export reaches stderr.
        tracing::warn!("child done");
        return;
    }
    let f = fixture();
    let uri = tools::generate_key_pair(&f.uri("object=quiet-open"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "open_with_warn_logging_prints_no_error",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, uri.to_token_string())
        .env("HSM_ABI_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stderr.contains("child done"),
        "the child's log did not reach stderr: {stderr}"
    );
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains("ERROR")).collect();
    assert!(
        errors.is_empty(),
        "{} ERROR lines:\n{}",
        errors.len(),
        errors.join("\n")
    );
}

/// RFC 7512 library and slot attributes select against C_GetInfo and C_GetSlotInfo; vendor attributes
/// follow the RFC (path: no match, with an error naming it; query: ignored).
#[test]
fn library_slot_and_vendor_attributes_select_the_token() {
    let f = fixture();
    tools::generate_key_pair(&f.uri("object=rfc-attrs"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    // SoftHSM2's C_GetInfo: "SoftHSM", "Implementation of PKCS11", its version; C_GetSlotInfo: "SoftHSM
    // project", "SoftHSM slot ID 0x<slot id>".
    let out = Command::new("softhsm2-util").arg("--version").output().unwrap();
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut parts = version.split('.');
    let (major, minor): (u8, u8) = (
        parts.next().unwrap().parse().unwrap(),
        parts.next().unwrap().parse().unwrap(),
    );
    let slot = hsm_pkcs11::Token::open(&hsm_pkcs11::Pkcs11Uri::parse(&f.uri("")).unwrap(), None)
        .unwrap()
        .find_slot()
        .unwrap()
        .id();
    let library = format!(
        "library-manufacturer=SoftHSM;library-description=Implementation%20of%20PKCS11;library-version={major}.{minor}"
    );
    let slot_attrs = format!("slot-manufacturer=SoftHSM%20project;slot-description=SoftHSM%20slot%20ID%200x{slot:x}");
    let signer = open_signer(&f.uri(&format!("{library};{slot_attrs};slot-id={slot};object=rfc-attrs"))).unwrap();
    ring_verify(
        SignatureScheme::EcdsaP256Sha256,
        &signer.public_key_spki().unwrap(),
        b"m",
        &signer.sign(SignatureScheme::EcdsaP256Sha256, b"m").unwrap(),
    );
    // A vendor query attribute is ignored.
    open_signer(&format!("{}&x-vendor-hint=1", f.uri("object=rfc-attrs"))).unwrap();

    let refused = |rest: &str, needles: &[&str]| {
        let e = open_signer(&f.uri(&format!("{rest};object=rfc-attrs")))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no token matches"), "{rest}: {e}");
        for n in needles {
            assert!(e.contains(n), "{rest}: no {n:?} in {e}");
        }
    };
    refused(
        "library-manufacturer=Snake%20Oil",
        &[
            "library-manufacturer=Snake Oil",
            "`Implementation of PKCS11` by `SoftHSM`",
        ],
    );
    refused("library-description=Soft%20Token%20Library", &["library-description"]);
    refused(&format!("library-version={}.{minor}", major + 1), &["library-version"]);
    refused(&format!("library-version={major}.{}", minor + 1), &["library-version"]);
    refused("slot-manufacturer=Snake%20Oil", &["slot-manufacturer"]);
    refused("slot-description=Sun%20Metaslot", &["slot-description=Sun Metaslot"]);
    refused("x-vendor-slot=7", &["`x-vendor-slot`", "RFC 7512"]);
}
