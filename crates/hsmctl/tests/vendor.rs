//! The example vendor backend (examples/vendor-ecdsa, plain C over libcrypto, built here with
//! make) end to end from Rust: `hsmctl provision` against the DPS emulator, a rustls mutual-TLS
//! handshake against `openssl s_server` with the vendor identity (tlsio_bridge::client_config),
//! and the conformance command on the example and on the built-in file and PKCS#11 (SoftHSM2)
//! backends.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use common::{Ca, HUB, ca, certify_csr, ok, provision};
use dps_emulator::{Emulator, Enrollment};
use hsm_core::X509Identity;

/// Build the example vendor backend once per test process.
fn example() -> &'static Path {
    static LIB: OnceLock<PathBuf> = OnceLock::new();
    // One fixed directory under the target dir (rebuilt by each run, never left in /tmp).
    LIB.get_or_init(|| {
        test_support::examples::vendor_ecdsa(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("vendor-hsmctl-tests"))
    })
}

/// A device directory for the example backend (chain.pem, key.pem) and its configuration.
fn vendor_device(dir: &Path, ca: &Ca, cn: &str) -> PathBuf {
    let key_id = ca.leaf(cn);
    let (leaf, key) = (key_id.cert_pem(), key_id.key_pair());
    let dev = dir.join("device");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("chain.pem"), format!("{leaf}{}", ca.pem())).unwrap();
    std::fs::write(dev.join("key.pem"), key.serialize_pem()).unwrap();
    let cfg = dir.join("vendor.toml");
    std::fs::write(
        &cfg,
        format!(
            "[x509]\nbackend = \"vendor\"\nlibrary = \"{}\"\nidentity = \"{}\"\n",
            example().display(),
            dev.display()
        ),
    )
    .unwrap();
    cfg
}

#[test]
fn provision_with_the_example_vendor_backend() {
    let dir = tempfile::tempdir().unwrap();
    let root_ca = ca("vendor group root");
    let emulator = Emulator::start(test_support::emulator::config(vec![Enrollment::X509Group {
        name: "vendor-group".into(),
        ca: hsm_core::pem::parse_certificates("root", root_ca.pem().as_bytes()).unwrap(),
    }]))
    .unwrap();
    let server_ca = dir.path().join("server-ca.pem");
    std::fs::write(&server_ca, emulator.server_ca_pem()).unwrap();
    let cfg = vendor_device(dir.path(), &root_ca, "device-vendor-c");
    let stdout = ok(&provision(&emulator, &server_ca, None, &cfg, &[]));
    assert!(stdout.contains("registration id: device-vendor-c"), "{stdout}");
    assert!(stdout.contains(&format!("assigned hub: {HUB}")), "{stdout}");

    // A device whose chain the service does not trust is refused (the TLS identity is real).
    let rogue_dir = dir.path().join("rogue");
    std::fs::create_dir_all(&rogue_dir).unwrap();
    let cfg = vendor_device(&rogue_dir, &ca("rogue root"), "device-rogue");
    let out = provision(&emulator, &server_ca, None, &cfg, &[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"));
}

/// `openssl s_server` requiring a client certificate, killed on drop.
struct SServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for SServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn s_server(dir: &Path, cert: &Path, key: &Path, client_ca: &Path) -> SServer {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = dir.join("s_server.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new("openssl")
        .args(["s_server", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(cert)
        .arg("-key")
        .arg(key)
        .arg("-CAfile")
        .arg(client_ca)
        .args(["-Verify", "1", "-verify_return_error", "-naccept", "1", "-rev"])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("openssl is required");
    let server = SServer { child, port, log };
    test_support::wait::until_true("s_server to log ACCEPT", test_support::wait::DEADLINE, || {
        std::fs::read_to_string(&server.log)
            .unwrap_or_default()
            .contains("ACCEPT")
    });
    server
}

#[test]
fn rustls_handshake_with_a_vendor_identity_against_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let root_ca = ca("vendor tls root");
    let cfg = vendor_device(dir.path(), &root_ca, "device-vendor-tls");

    // Server certificate for 127.0.0.1 from the same root.
    let server = root_ca.server(&["localhost", "127.0.0.1"]);
    let (cert, key, ca_file) = (
        dir.path().join("server.pem"),
        dir.path().join("server.key"),
        dir.path().join("root.pem"),
    );
    std::fs::write(&cert, server.cert_pem()).unwrap();
    std::fs::write(&key, server.key_pem()).unwrap();
    std::fs::write(&ca_file, root_ca.pem()).unwrap();

    let config = hsm_core::config::Config::from_file(&cfg).unwrap();
    hsm_abi::vendor::install();
    let identity = hsm::open_x509(&config).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    for c in hsm_core::pem::parse_certificates("root", root_ca.pem().as_bytes()).unwrap() {
        roots.add(c).unwrap();
    }

    for versions in [
        tlsio_bridge::TlsVersions::Tls13Only,
        tlsio_bridge::TlsVersions::Tls12Only,
    ] {
        let server = s_server(dir.path(), &cert, &key, &ca_file);
        let client =
            tlsio_bridge::client_config(roots.clone(), Some(identity.as_ref() as &dyn X509Identity), versions).unwrap();
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let conn = rustls::ClientConnection::new(Arc::new(client), name).unwrap();
        let sock = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, sock);
        tls.write_all(b"hello from a vendor key\n").unwrap();
        tls.flush().unwrap();
        let mut line = String::new();
        BufReader::new(&mut tls).read_line(&mut line).unwrap();
        assert_eq!(line.trim_end(), "yek rodnev a morf olleh", "{versions:?}");
        tls.conn.send_close_notify();
        let _ = tls.flush();
        drop(tls);
        // s_server (-naccept 1) reports the peer certificate and exits after the connection.
        let mut server = server;
        test_support::wait::exit(&mut server.child, test_support::wait::DEADLINE);
        let log = std::fs::read_to_string(&server.log).unwrap();
        assert!(
            log.contains("device-vendor-tls"),
            "the server did not log the client certificate: {log}"
        );
    }
}

#[test]
fn conformance_command_passes_the_example_and_the_file_backend() {
    let dir = tempfile::tempdir().unwrap();
    let root_ca = ca("conformance root");
    vendor_device(dir.path(), &root_ca, "device-conformance");
    let dev = dir.path().join("device");
    let lib = example().display().to_string();
    conformance(&["--vendor-lib", &lib, "--identity", &dev.display().to_string()], None).unwrap();

    let file_cfg = dir.path().join("file.toml");
    std::fs::write(
        &file_cfg,
        "[x509]\nbackend = \"file\"\ncertificate = \"device/chain.pem\"\nprivate_key = \"device/key.pem\"\n",
    )
    .unwrap();
    conformance(&["--builtin", "--identity", &file_cfg.display().to_string()], None).unwrap();

    // A wrong identity fails the run with a non-zero result.
    let nowhere = dir.path().join("nowhere").display().to_string();
    let e = conformance(&["--vendor-lib", &lib, "--identity", &nowhere, "--threads", "1"], None).unwrap_err();
    assert!(e.contains("conformance") && e.contains("failed"), "{e}");
}

/// `hsmctl conformance ARGS`: its stdout on success, stdout and stderr on failure.
fn conformance(args: &[&str], softhsm_conf: Option<&Path>) -> Result<String, String> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
    if let Some(conf) = softhsm_conf {
        command.env("SOFTHSM2_CONF", conf);
    }
    let out = command
        .arg("conformance")
        .args(["--signs-per-thread", "10"])
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
    }
}

fn hsmctl_ok(args: &[&str], softhsm_conf: &Path) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_hsmctl"))
        .env("SOFTHSM2_CONF", softhsm_conf)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hsmctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The PKCS#11 backend (a key generated inside SoftHSM2) through the built-in vendor table.
#[test]
fn conformance_command_passes_the_pkcs11_backend() {
    let dir = tempfile::tempdir().unwrap();
    let token = test_support::softhsm::for_children("vendor");
    let (hsm, pin) = (&token.hsm, &token.pin_file);
    let base = format!("pkcs11:token=vendor;object=dev-key?pin-source=file:{}", pin.display());
    let key_uri = hsmctl_ok(&["pkcs11", "keygen", "--uri", &base, "--key-type", "p256"], hsm.conf())
        .trim()
        .to_string();
    let csr = dir.path().join("dev.csr");
    hsmctl_ok(
        &[
            "pkcs11",
            "csr",
            "--uri",
            &key_uri,
            "--common-name",
            "device-p11",
            "--out",
            csr.to_str().unwrap(),
        ],
        hsm.conf(),
    );
    let root_ca = ca("pkcs11 conformance root");
    let issued = certify_csr(dir.path(), &root_ca, &csr);
    let cfg = dir.path().join("pkcs11.toml");
    std::fs::write(
        &cfg,
        format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{key_uri}\"\ncertificate_file = \"{}\"\n",
            issued.join("device-p11.cert.pem").display()
        ),
    )
    .unwrap();
    let stdout = conformance(
        &["--builtin", "--identity", &cfg.display().to_string()],
        Some(hsm.conf()),
    )
    .unwrap();
    assert!(
        stdout.contains("PASS 8 threads sign concurrently on one identity"),
        "{stdout}"
    );
    assert!(
        stdout.contains("0 failed") && stdout.contains(": CONFORMANT"),
        "{stdout}"
    );
}

/// The TPM group through the vendor table: the built-in TPM backend on a fresh swtpm (EK and SRK
/// as TPM2B, a truncated activation blob refused), next to a file x509 identity.
#[cfg(feature = "tpm")]
#[test]
fn conformance_command_checks_the_tpm_group_on_swtpm() {
    let dir = tempfile::tempdir().unwrap();
    vendor_device(dir.path(), &ca("tpm conformance root"), "device-tpm-conformance");
    let tpm = hsm_tpm::testing::Swtpm::start().unwrap();
    let cfg = dir.path().join("tpm.toml");
    std::fs::write(
        &cfg,
        format!(
            "[x509]\nbackend = \"file\"\ncertificate = \"device/chain.pem\"\nprivate_key = \"device/key.pem\"\n[tpm]\nbackend = \"tpm\"\ntcti = \"{}\"\n",
            tpm.tcti()
        ),
    )
    .unwrap();
    let table = hsm_abi::vendor::VendorTable::builtin().unwrap();
    let opts = hsm_abi::vendor::conformance::Options {
        identity: cfg.display().to_string(),
        threads: 2,
        signs_per_thread: 2,
    };
    let report = hsm_abi::vendor::conformance::run(&table, &opts, &mut |_| {});
    let lines: Vec<String> = report.checks.iter().map(|c| c.to_string()).collect();
    assert!(report.ok(), "{}", lines.join("\n"));
    for expected in [
        "PASS get_endorsement_key is a TPM2B",
        "PASS get_storage_root_key is a TPM2B",
        "PASS activate_identity_key refuses a truncated blob",
        "PASS get_endorsement_key: short buffer is refused with the needed size",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(expected)), "{expected}: {lines:#?}");
    }
}
