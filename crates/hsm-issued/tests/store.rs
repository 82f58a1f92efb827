//! The issued-identity store on files and on a SoftHSM2 token: request, install, renew,
//! confirm; bad chains refused with the old identity kept; a process killed at each step of a
//! renewal leaves a working identity, and the next run completes.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::{Ca, TokenExt as _, assert_signs_for, read_csr, token};
use hsm_core::X509Identity;
use hsm_issued::{CRASH_ENV, STEPS};
use hsm_issued::{IssuedX509, KeySource, Store};

const CHILD_ENV: &str = "HSM_ISSUED_TEST_CHILD";

fn open(dir: &Path, id: &str, keys: &str) -> Store {
    Store::open(dir, id, KeySource::parse(keys).unwrap(), hsm::open_signer).unwrap()
}

/// Request and install one generation with a fresh CA.
fn renew(store: &Store) -> hsm_issued::Generation {
    let csr = store.begin().unwrap();
    store.install(&Ca::new("renewal").issue(&csr)).unwrap()
}

fn request_install_renew_confirm(keys: &str, id: &str) {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("issued"), id, keys);
    let identity = IssuedX509::new(store.clone());
    assert!(
        identity
            .certificate_chain()
            .unwrap_err()
            .to_string()
            .contains("no certificate has been issued"),
        "an empty store says so"
    );

    let ca = Ca::new("first");
    let csr = store.begin().unwrap();
    let (cn, spki) = read_csr(&csr);
    assert_eq!(cn, id);
    assert_eq!(
        hsm_core::pem::key_algorithm_from_spki(&spki).unwrap(),
        hsm_core::KeyAlgorithm::Ec(hsm_core::Curve::P384)
    );
    let chain = ca.issue(&csr);
    let first = store.install(&chain).unwrap();
    assert_eq!(identity.certificate_chain().unwrap(), chain);
    assert_signs_for(identity.signing_key().unwrap().as_ref(), &chain[0]);
    assert_eq!(*identity.key_reference().unwrap(), first.key);
    store.confirm().unwrap();

    // Renewal: a new key; the old identity is kept until the new one is confirmed.
    let csr2 = store.begin().unwrap();
    assert_ne!(read_csr(&csr2).1, spki, "a new key pair for each request");
    assert_eq!(
        identity.certificate_chain().unwrap(),
        chain,
        "pending: the old pair is served"
    );
    let chain2 = ca.issue(&csr2);
    let second = store.install(&chain2).unwrap();
    assert_eq!(
        identity.certificate_chain().unwrap(),
        chain2,
        "the next use gets the new pair"
    );
    assert_signs_for(identity.signing_key().unwrap().as_ref(), &chain2[0]);
    let state = store.state().unwrap();
    assert_eq!(state.retired.as_ref(), Some(&first));
    hsm::open_signer(&first.key).expect("the retired key stays until confirmed");

    store.confirm().unwrap();
    assert!(store.state().unwrap().retired.is_none());
    assert!(hsm::open_signer(&first.key).is_err(), "the retired key is deleted");
    assert_eq!(store.state().unwrap().current, Some(second));
}

#[test]
fn files_request_install_renew_and_confirm() {
    request_install_renew_confirm("file", "file-device");
}

#[test]
fn pkcs11_request_install_renew_and_confirm() {
    let t = token();
    request_install_renew_confirm(&t.key_source(), "p11-device");
    let objects = t.objects("p11-device");
    assert_eq!(
        objects,
        vec![
            "issued-p11-device-2/cert",
            "issued-p11-device-2/private",
            "issued-p11-device-2/public"
        ],
        "the leaf is on the token with the key; generation 1 is gone"
    );
}

#[test]
fn key_file_is_private() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), "mode-device", "file");
    store.begin().unwrap();
    let key = store.state().unwrap().pending.unwrap().key;
    let path = key.strip_prefix("file:").unwrap();
    let mode = std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

fn assert_refused(store: &Store, chain: &[rustls_pki_types::CertificateDer<'_>], expected: &str) {
    let before = store.state().unwrap();
    let e = store.install(chain).unwrap_err().to_string();
    assert!(e.contains(expected), "{e}");
    assert_eq!(store.state().unwrap(), before, "a refused chain changes nothing");
    let (_, current, key) = store.current().unwrap();
    assert_signs_for(key.as_ref(), &current[0]);
}

static RESOLVED: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());

/// `hsm::open_signer`, recording each token it resolves.
fn recording_open_signer(token: &str) -> hsm_core::Result<std::sync::Arc<dyn hsm_core::SigningKey>> {
    RESOLVED.lock().unwrap().push(token.to_string());
    hsm::open_signer(token)
}

/// The store opens its keys with the resolver it is given (the registry's one), never with one
/// of its own: every key the state names goes through it.
#[test]
fn keys_are_opened_with_the_given_resolver() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), "resolved-device", KeySource::File, recording_open_signer).unwrap();
    let csr = store.begin().unwrap();
    let generation = store.install(&Ca::new("resolved").issue(&csr)).unwrap();
    IssuedX509::new(store.clone()).signing_key().unwrap();
    let resolved = RESOLVED.lock().unwrap().clone();
    assert!(
        resolved.len() >= 3,
        "begin, install and the identity each open the key: {resolved:?}"
    );
    assert!(resolved.iter().all(|t| *t == generation.key), "{resolved:?}");
}

#[test]
fn bad_chains_are_refused_and_the_old_identity_kept() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), "strict-device", "file");
    renew(&store);
    let ca = Ca::new("strict");
    let csr = store.begin().unwrap();

    assert_refused(&store, &ca.issue_for_other_key("strict-device"), "for another key");
    assert_refused(&store, &[], "the chain is empty");

    // Wrong CN: a request made (by someone) for another name.
    let other = Store::open(
        &dir.path().join("other"),
        "someone-else",
        KeySource::File,
        hsm::open_signer,
    )
    .unwrap();
    let wrong = ca.issue(&other.begin().unwrap());
    assert_refused(&store, &wrong, "for another key");

    // A leaf whose intermediate is not its issuer, and one whose signature does not verify.
    let good = ca.issue(&csr);
    let foreign = Ca::new("foreign");
    assert_refused(
        &store,
        &[good[0].clone(), foreign.intermediate(), foreign.root()],
        "was issued by",
    );
    let mut forged = good[0].as_ref().to_vec();
    let n = forged.len();
    forged[n - 2] ^= 0x01;
    assert_refused(
        &store,
        &[forged.into(), good[1].clone(), good[2].clone()],
        "certificate 1",
    );

    // The pending request is still there: the good chain installs.
    store.install(&good).unwrap();
}

#[test]
fn wrong_common_name_is_refused() {
    // A CA that puts another CN in the certificate than the request's.
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), "cn-device", "file");
    let csr = store.begin().unwrap();
    let mut params =
        rcgen::CertificateSigningRequestParams::from_der(&rustls_pki_types::CertificateSigningRequestDer::from(csr))
            .unwrap();
    params.params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "not-cn-device");
    let ca = test_support::pki::Ca::root_with("wrong CN CA", test_support::pki::KeyType::P384, |_| {});
    let leaf = params.signed_by(&ca.issuer).unwrap();
    let e = store.install(&[leaf.der().clone(), ca.der()]).unwrap_err().to_string();
    assert!(
        e.contains("`not-cn-device`, not the registration id `cn-device`"),
        "{e}"
    );
    assert!(store.state().unwrap().current.is_none());
}

#[test]
fn roll_back_returns_to_the_retired_identity() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), "rb-device", "file");
    let first = renew(&store);
    store.confirm().unwrap();
    let second = renew(&store);
    assert!(store.roll_back().unwrap());
    let state = store.state().unwrap();
    assert_eq!(state.current, Some(first));
    assert!(state.retired.is_none());
    assert!(hsm::open_signer(&second.key).is_err(), "the failed key is deleted");
    assert!(!store.roll_back().unwrap(), "nothing to go back to");
}

/// Run in a child process by `killed_at_each_step_*`: one renewal, then confirm.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let keys = std::env::var("HSM_ISSUED_TEST_KEYS").unwrap();
    let store = open(Path::new(&dir), "crash-device", &keys);
    renew(&store);
    store.confirm().unwrap();
}

fn child(dir: &Path, keys: &str, crash_at: Option<&str>) -> std::process::ExitStatus {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", "crash_child", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, dir)
        .env("HSM_ISSUED_TEST_KEYS", keys)
        .env_remove(CRASH_ENV);
    if let Some(step) = crash_at {
        cmd.env(CRASH_ENV, step);
    }
    cmd.stdout(std::process::Stdio::null()).status().unwrap()
}

fn assert_works(store: &Store) {
    let (_, chain, key) = store.current().unwrap();
    assert_signs_for(key.as_ref(), &chain[0]);
}

fn killed_at_each_step(keys: &str, leftovers: impl Fn(&Store) -> Vec<String>) {
    use std::os::unix::process::ExitStatusExt as _;
    for step in STEPS {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), "crash-device", keys);
        // A confirmed identity (retired) and an unconfirmed one (current): the renewal in
        // the child replaces the current one and, on confirm, deletes the retired one, so it
        // passes every step.
        renew(&store);
        store.confirm().unwrap();
        renew(&store);
        let status = child(dir.path(), keys, Some(step));
        assert_eq!(
            status.signal(),
            Some(SIGABRT),
            "{step}: the child aborted there: {status:?}"
        );
        assert_works(&store);
        let status = child(dir.path(), keys, None);
        assert!(status.success(), "{step}: the next run completes: {status:?}");
        assert_works(&store);
        let state = store.state().unwrap();
        assert!(state.pending.is_none() && state.retired.is_none(), "{step}: {state:?}");
        let gen_ = state.current.unwrap().generation;
        let name = KeySource::name("crash-device", gen_);
        let left = leftovers(&store);
        assert!(left.iter().all(|l| l.starts_with(&name)), "{step}: leftovers {left:?}");
    }
}

const SIGABRT: i32 = 6;

/// The files of `store` besides its state, sorted by name.
fn files_of(store: &Store) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(store.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != "state.toml")
        .collect();
    names.sort();
    names
}

#[test]
fn killed_at_each_step_files() {
    killed_at_each_step("file", files_of);
}

#[test]
fn killed_at_each_step_pkcs11() {
    let t = token();
    killed_at_each_step(&t.key_source(), |_| t.objects("crash-device"));
}

#[cfg(feature = "tpm")]
#[test]
fn tpm_request_install_renew_and_confirm() {
    let sw = hsm_tpm::testing::Swtpm::start().expect("swtpm must be installed");
    request_install_renew_confirm(&format!("tpm:tcti={}", sw.tcti()), "tpm-device");
}

#[cfg(feature = "tpm")]
#[test]
fn killed_at_each_step_tpm() {
    let sw = hsm_tpm::testing::Swtpm::start().expect("swtpm must be installed");
    killed_at_each_step(&format!("tpm:tcti={}", sw.tcti()), files_of);
}

/// A log writer for [`warnings_of`].
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Run `f` with this thread's log captured; returns its result and the log.
fn warnings_of<T>(f: impl FnOnce() -> T) -> (T, String) {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let r = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    (r, text)
}

/// Issue 21, item 9: a corrupted current chain falls back to the previous generation (kept
/// until the current one is confirmed) while that one is valid, with a warning; confirming
/// then makes the previous one current again. Without a previous generation it stays an error.
#[test]
fn a_corrupted_current_chain_falls_back_to_the_previous_generation() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path(), "fallback-device", "file");
    let ca = Ca::new("fallback");
    let csr = store.begin().unwrap();
    let chain1 = ca.issue(&csr);
    let first = store.install(&chain1).unwrap();
    store.confirm().unwrap();
    let csr = store.begin().unwrap();
    let second = store.install(&ca.issue(&csr)).unwrap();
    assert_eq!(store.state().unwrap().retired.as_ref(), Some(&first));

    // A disk error garbles the middle of the current chain file.
    let path = dir.path().join(second.chain.as_ref().unwrap());
    let mut pem = std::fs::read(&path).unwrap();
    let middle = pem.len() / 2;
    pem[middle..middle + 40].fill(b'#');
    std::fs::write(&path, pem).unwrap();

    let identity = IssuedX509::new(store.clone());
    let ((served, warning), again) = (
        warnings_of(|| identity.certificate_chain().unwrap()),
        identity.certificate_chain().unwrap(),
    );
    assert_eq!(served, chain1, "the previous generation is served");
    assert_eq!(again, chain1);
    assert_signs_for(identity.signing_key().unwrap().as_ref(), &chain1[0]);
    assert!(
        warning.contains("WARN")
            && warning.contains("the current certificate chain (generation 2) is unusable")
            && warning.contains("using the previous generation 1"),
        "{warning}"
    );
    assert_eq!(store.current().unwrap().0, first);

    // The previous identity was used and works: confirming makes it current again.
    store.confirm().unwrap();
    let state = store.state().unwrap();
    assert_eq!(state.current.as_ref(), Some(&first));
    assert!(state.retired.is_none());
    assert!(!path.exists(), "the unusable generation is removed");
    assert_eq!(identity.certificate_chain().unwrap(), chain1);

    // Without a previous generation a corrupted chain is an error naming the file.
    let first_path = dir.path().join(first.chain.as_ref().unwrap());
    std::fs::write(
        &first_path,
        "-----BEGIN CERTIFICATE-----\n####\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let e = store.current().err().unwrap().to_string();
    assert!(e.contains(first.chain.as_ref().unwrap()), "{e}");
}
