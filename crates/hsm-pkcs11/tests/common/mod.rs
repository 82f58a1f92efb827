//! Shared fixture: one module under test per test process (C_Initialize is once per
//! process): SoftHSM2 ([`fixture`], set up on first use) or tpm2-pkcs11 ([`set_up`] on a
//! `Tpm2Pkcs11`), each with the tokens `LABEL` and `PIN_TEST_LABEL`. `suite` holds the
//! assertions both run.
#![allow(dead_code)]

pub mod suite;

use std::path::PathBuf;
use std::sync::OnceLock;

use hsm_pkcs11::testing::{SoftHsm, TestModule};

pub const SO_PIN: &str = "so-pin-0000";
pub const PIN: &str = "user-pin-1234";
pub const LABEL: &str = "hsm-test";
pub const PIN_TEST_LABEL: &str = "pin-test";

pub struct Fixture<M: TestModule = SoftHsm> {
    pub hsm: M,
    pub pin_file: PathBuf,
}

/// The process-wide SoftHSM2 fixture with the tokens `LABEL` and `PIN_TEST_LABEL`. Fails
/// (never skips) when softhsm2 is missing.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| set_up(SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)")))
}

/// Set the module's environment for this process, and make the tokens `LABEL` and
/// `PIN_TEST_LABEL` (both first: SoftHSM sees only the tokens that exist when the module is
/// initialized) and the PIN file. Call it once per process, before any PKCS#11 call.
pub fn set_up<M: TestModule>(hsm: M) -> Fixture<M> {
    for (name, value) in hsm.environment() {
        // SAFETY: runs once per process (inside OnceLock initialization, or first in the
        // only test of its binary), before any PKCS#11 module is loaded; no other code of
        // this test binary reads or writes the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(name, value);
        }
    }
    hsm.init_token(LABEL, SO_PIN, PIN).expect("init token");
    hsm.init_token(PIN_TEST_LABEL, SO_PIN, PIN).expect("init token");
    let pin_file = hsm.pin_file("user.pin", &format!("{PIN}\n")).unwrap();
    Fixture { hsm, pin_file }
}

impl<M: TestModule> Fixture<M> {
    /// A URI on the test token with the PIN file and `rest` (`object=...;id=...`).
    pub fn uri(&self, rest: &str) -> String {
        self.uri_on(LABEL, rest)
    }

    pub fn uri_on(&self, token: &str, rest: &str) -> String {
        let sep = if rest.is_empty() { "" } else { ";" };
        format!(
            "pkcs11:token={token}{sep}{rest}?module-path={}&pin-source=file:{}",
            self.hsm.module().display(),
            self.pin_file.display()
        )
    }
}

/// Verify a signature with ring (an implementation independent of the token).
pub fn ring_verify(scheme: hsm_core::SignatureScheme, spki: &[u8], message: &[u8], signature: &[u8]) {
    use hsm_core::SignatureScheme::*;
    use ring::signature as s;
    let alg: &dyn s::VerificationAlgorithm = match scheme {
        EcdsaP256Sha256 => &s::ECDSA_P256_SHA256_ASN1,
        EcdsaP384Sha384 => &s::ECDSA_P384_SHA384_ASN1,
        RsaPkcs1Sha256 => &s::RSA_PKCS1_2048_8192_SHA256,
        RsaPkcs1Sha384 => &s::RSA_PKCS1_2048_8192_SHA384,
        RsaPkcs1Sha512 => &s::RSA_PKCS1_2048_8192_SHA512,
        RsaPssSha256 => &s::RSA_PSS_2048_8192_SHA256,
        RsaPssSha384 => &s::RSA_PSS_2048_8192_SHA384,
        RsaPssSha512 => &s::RSA_PSS_2048_8192_SHA512,
        other => panic!("no verifier for {other}"),
    };
    let public = hsm_core::der::spki_public_key_bits(spki).unwrap();
    s::UnparsedPublicKey::new(alg, public)
        .verify(message, signature)
        .unwrap_or_else(|_| panic!("{scheme} signature does not verify"));
}
