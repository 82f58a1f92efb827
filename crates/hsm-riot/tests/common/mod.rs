//! Helpers shared by the integration tests: temp UDS and firmware files, configurations,
//! and the independent verifiers (openssl CLI, rustls-webpki).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use hsm_core::config::Config;
use hsm_riot::pki::{KeyKind, PkiOptions};
use rustls_pki_types::{CertificateDer, UnixTime};

pub struct Device {
    pub dir: tempfile::TempDir,
    pub uds: PathBuf,
    pub firmware: PathBuf,
}

impl Device {
    /// A fresh UDS (OS RNG, mode 0600) and a firmware image in a temp dir.
    pub fn new(firmware: &[u8]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("uds.bin");
        hsm_riot::create_uds_file(&uds).unwrap();
        let fw = dir.path().join("firmware.bin");
        std::fs::write(&fw, firmware).unwrap();
        Device { dir, uds, firmware: fw }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// An `[x509]` dice section with `extra` lines appended (paths relative to the dir).
    pub fn config(&self, registration_id: &str, extra: &str) -> Config {
        let text = format!(
            "[x509]\nbackend = \"dice\"\nuds_file = \"uds.bin\"\nfirmware_file = \"firmware.bin\"\nregistration_id = \"{registration_id}\"\n{extra}"
        );
        Config::from_toml(&text, "dice-test.toml", self.dir.path()).unwrap()
    }

    pub fn identity(&self, registration_id: &str, extra: &str) -> hsm_core::Result<hsm_riot::DiceX509> {
        hsm_riot::DiceX509::from_section(self.config(registration_id, extra).section("x509").unwrap())
    }
}

pub fn write_pem(path: &Path, certs: &[CertificateDer<'_>]) {
    std::fs::write(path, hsm_core::pem::certificates_to_pem(certs)).unwrap();
}

/// `openssl verify` of `leaf` against `anchor` with `untrusted` intermediates, as a TLS client
/// certificate; returns (success, output).
pub fn openssl_verify(
    dir: &Path,
    anchor: &[CertificateDer<'_>],
    untrusted: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
) -> (bool, String) {
    let tag = format!("{:x}", rand_tag());
    let a = dir.join(format!("anchor-{tag}.pem"));
    let u = dir.join(format!("untrusted-{tag}.pem"));
    let l = dir.join(format!("leaf-{tag}.pem"));
    write_pem(&a, anchor);
    write_pem(&l, std::slice::from_ref(leaf));
    let mut cmd = Command::new("openssl");
    cmd.args(["verify", "-x509_strict", "-purpose", "sslclient", "-CAfile"])
        .arg(&a);
    if !untrusted.is_empty() {
        write_pem(&u, untrusted);
        cmd.arg("-untrusted").arg(&u);
    }
    let out = cmd.arg(&l).output().expect("openssl must be installed");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn rand_tag() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// rustls-webpki path validation of a client certificate chain.
pub fn webpki_verify(
    anchor: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    leaf: &CertificateDer<'_>,
) -> Result<(), webpki::Error> {
    let anchors = [webpki::anchor_from_trusted_cert(anchor)?];
    let ee = webpki::EndEntityCert::try_from(leaf)?;
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        intermediates,
        UnixTime::now(),
        webpki::KeyUsage::client_auth(),
        None,
        None,
    )
    .map(|_| ())
}

/// `openssl x509 -text` of a certificate.
pub fn openssl_text(dir: &Path, cert: &CertificateDer<'_>) -> String {
    let p = dir.join(format!("text-{}.pem", rand_tag()));
    write_pem(&p, std::slice::from_ref(cert));
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-text", "-in"])
        .arg(&p)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap()
}

pub fn sha256_hex_openssl(path: &Path) -> String {
    let out = Command::new("openssl")
        .args(["dgst", "-sha256", "-r"])
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

/// What `hsm_riot::pki::generate` makes in `out_dir` for these tests: a P-256 root named `root_cn`
/// (under it an intermediate named `intermediate_cn`, when given), no leaf yet, 30-day leaves and
/// 365-day CAs, nothing overwritten.
pub fn pki_options(out_dir: &Path, root_cn: &str, intermediate_cn: Option<&str>) -> PkiOptions {
    PkiOptions {
        out_dir: out_dir.to_path_buf(),
        root_cn: root_cn.into(),
        intermediate_cn: intermediate_cn.map(Into::into),
        device_ids: vec![],
        csr_files: vec![],
        key_kind: KeyKind::P256,
        leaf_days: 30,
        ca_days: 365,
        issuer: None,
        overwrite: false,
    }
}
