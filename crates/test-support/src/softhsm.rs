//! SoftHSM2 tokens for tests, over `hsm_pkcs11::testing` (which also drives tpm2-pkcs11): a token
//! with a PIN file, for this process ([`fixture`], [`set_up`]) or for child processes ([`for_children`]).
//!
//! SoftHSM reads `SOFTHSM2_CONF` once per process, when the module is initialized, and lists only
//! the tokens that exist then: a test process makes its tokens first, sets the environment once,
//! and only then makes PKCS#11 calls. A missing softhsm2 package fails the test, never skips it.

use std::path::PathBuf;
use std::sync::OnceLock;

pub use hsm_pkcs11::testing::{ModuleKind, SoftHsm, TestModule, Tpm2Pkcs11};

/// The security officer PIN of every test token.
pub const SO_PIN: &str = "so-pin-0000";
/// The user PIN of every test token (in the fixture's PIN file).
pub const PIN: &str = "user-pin-1234";
/// The token every test process gets.
pub const LABEL: &str = "hsm-test";
/// A second token, for tests that change its PIN.
pub const PIN_TEST_LABEL: &str = "pin-test";

/// A module under test with its tokens made and a PIN file holding [`PIN`].
pub struct Fixture<M: TestModule = SoftHsm> {
    /// The module and its configuration.
    pub hsm: M,
    /// A file holding [`PIN`] (for `pin-source=file:`).
    pub pin_file: PathBuf,
}

/// A new SoftHSM2 configuration in a temp dir.
pub fn create() -> SoftHsm {
    SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)")
}

/// The process-wide SoftHSM2 fixture with the tokens [`LABEL`] and [`PIN_TEST_LABEL`], its
/// environment set in this process.
pub fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| set_up(create()))
}

/// Make the tokens [`LABEL`] and [`PIN_TEST_LABEL`] (both first) and the PIN file, then set the
/// module's environment in this process. Call it once per process, before any PKCS#11 call (inside
/// a `OnceLock`, or first in the only test of its binary).
pub fn set_up<M: TestModule>(hsm: M) -> Fixture<M> {
    let fixture = tokens(hsm, &[LABEL, PIN_TEST_LABEL]);
    for (name, value) in fixture.hsm.environment() {
        // SAFETY: runs once per process (inside OnceLock initialization, or first in the only test
        // of its binary), before any PKCS#11 module is loaded; no other code of the test binary
        // reads or writes the environment concurrently.
        #[allow(unsafe_code)]
        unsafe {
            std::env::set_var(name, value);
        }
    }
    fixture
}

/// A SoftHSM2 configuration with the token `label` for child processes (give them
/// `SOFTHSM2_CONF=`[`SoftHsm::conf`]); this process's environment is left alone.
pub fn for_children(label: &str) -> Fixture {
    tokens(create(), &[label])
}

fn tokens<M: TestModule>(hsm: M, labels: &[&str]) -> Fixture<M> {
    for label in labels {
        hsm.init_token(label, SO_PIN, PIN)
            .unwrap_or_else(|e| panic!("initialize token {label}: {e}"));
    }
    let pin_file = hsm
        .pin_file("user.pin", &format!("{PIN}\n"))
        .expect("write the PIN file");
    Fixture { hsm, pin_file }
}

impl<M: TestModule> Fixture<M> {
    /// A URI on the token [`LABEL`] with module path, PIN file and `rest` (`object=...;id=...`).
    pub fn uri(&self, rest: &str) -> String {
        self.uri_on(LABEL, rest)
    }

    /// A URI on the token `token` with module path, PIN file and `rest`.
    pub fn uri_on(&self, token: &str, rest: &str) -> String {
        let sep = if rest.is_empty() { "" } else { ";" };
        format!(
            "pkcs11:token={token}{sep}{rest}?module-path={}&pin-source=file:{}",
            self.hsm.module().display(),
            self.pin_file.display()
        )
    }
}
