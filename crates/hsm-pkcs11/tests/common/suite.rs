//! The assertions every module under test must pass (SoftHSM2 in `token.rs`, tpm2-pkcs11 in
//! `tpm2_pkcs11.rs`): x509 identities end to end, key generation, CSRs, HMAC keys, listing objects
//! (URI and configuration errors: `suite_errors.rs`; concurrency and login recovery:
//! `suite_sessions.rs`). Where a module lacks a feature, the assertion is the clear error it gives
//! instead.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use hsm_core::config::Config;
use hsm_core::{Curve, KeyAlgorithm, SasSigner, SignatureScheme, SigningKey, SymmetricIdentity, X509Identity};
use hsm_pkcs11::testing::{ModuleKind, TestModule};
use hsm_pkcs11::{Pkcs11Symmetric, Pkcs11X509, open_signer, tools};

use super::{Fixture, LABEL, PIN, ring_verify};

/// Every RSA scheme the backend offers.
pub const RSA_SCHEMES: [SignatureScheme; 6] = [
    SignatureScheme::RsaPssSha256,
    SignatureScheme::RsaPssSha384,
    SignatureScheme::RsaPssSha512,
    SignatureScheme::RsaPkcs1Sha256,
    SignatureScheme::RsaPkcs1Sha384,
    SignatureScheme::RsaPkcs1Sha512,
];

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).output().expect("openssl CLI");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue a certificate for `csr` with a throw-away openssl CA; returns (leaf PEM, CA PEM).
pub fn issue(dir: &Path, name: &str, csr_pem: &str) -> (String, String) {
    let csr = dir.join(format!("{name}.csr"));
    std::fs::write(&csr, csr_pem).unwrap();
    openssl(&["req", "-verify", "-noout", "-in", csr.to_str().unwrap()]);
    let ca_key = dir.join(format!("{name}-ca.key"));
    let ca = dir.join(format!("{name}-ca.pem"));
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        ca_key.to_str().unwrap(),
        "-out",
        ca.to_str().unwrap(),
        "-subj",
        "/CN=test root",
        "-days",
        "2",
    ]);
    let leaf = dir.join(format!("{name}.pem"));
    let ext = dir.join(format!("{name}.ext"));
    std::fs::write(
        &ext,
        "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        csr.to_str().unwrap(),
        "-CA",
        ca.to_str().unwrap(),
        "-CAkey",
        ca_key.to_str().unwrap(),
        "-days",
        "1",
        "-extfile",
        ext.to_str().unwrap(),
        "-out",
        leaf.to_str().unwrap(),
    ]);
    (
        std::fs::read_to_string(leaf).unwrap(),
        std::fs::read_to_string(ca).unwrap(),
    )
}

/// A rustls server on 127.0.0.1 that requires a client certificate issued by `ca_pem`; the
/// client authenticates with `identity` through the tlsio bridge's rustls key.
fn tls_handshake(identity: &dyn X509Identity, ca_pem: &str, versions: tlsio_bridge::TlsVersions) {
    use std::io::{Read, Write};
    let provider = tlsio_bridge::provider();
    let server_cert = test_support::pki::self_signed_server(&["localhost"]);
    let client_roots = tlsio_bridge::roots_from_pem("test CA", ca_pem.as_bytes()).unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(client_roots), provider.clone())
            .build()
            .unwrap();
    let server_config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(server_cert.chain.clone(), server_cert.key.clone_key())
        .unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (tcp, _) = listener.accept().unwrap();
        let conn = rustls::ServerConnection::new(Arc::new(server_config)).unwrap();
        let mut tls = rustls::StreamOwned::new(conn, tcp);
        let mut buf = [0u8; 5];
        tls.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        let cn_seen = tls.conn.peer_certificates().unwrap().len();
        tls.write_all(b"world").unwrap();
        tls.conn.send_close_notify();
        tls.flush().unwrap();
        cn_seen
    });
    let server_roots = tlsio_bridge::roots_from_pem("server", server_cert.cert_pem().as_bytes()).unwrap();
    let config = tlsio_bridge::client_config(server_roots, Some(identity), versions).unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(config), "localhost".try_into().unwrap()).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    tls.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"world");
    assert!(server.join().unwrap() >= 1, "the server saw the client certificate");
}

/// The `module_path` line a configuration needs for this module (none for SoftHSM2, the
/// default module).
fn module_line<M: TestModule>(f: &Fixture<M>) -> String {
    match f.hsm.kind() {
        ModuleKind::SoftHsm2 => String::new(),
        _ => format!("module_path = \"{}\"\n", f.hsm.module().display()),
    }
}

pub fn x509_config<M: TestModule>(f: &Fixture<M>, toml: &str) -> hsm_core::Result<Pkcs11X509> {
    let toml = if toml.contains("module-path=") {
        toml.to_string()
    } else {
        format!("{toml}{}", module_line(f))
    };
    let toml = toml.as_str();
    let dir = f.hsm.path();
    let cfg = Config::from_toml(toml, "test.toml", dir).unwrap();
    Pkcs11X509::from_section(cfg.section("x509").unwrap())
}

pub fn full_identity<M: TestModule>(f: &Fixture<M>, label: &str, algorithm: KeyAlgorithm, schemes: &[SignatureScheme]) {
    let key_uri = tools::generate_key_pair(&f.uri(&format!("object={label}")), algorithm).unwrap();
    assert!(key_uri.id.is_some());
    let csr = tools::make_csr(&key_uri.to_token_string(), label).unwrap();
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----"), "{csr}");
    let (leaf, ca) = issue(f.hsm.path(), label, &csr);
    let cert_uri = tools::import_certificate(&f.uri(&format!("object={label}")), leaf.as_bytes()).unwrap();
    assert_eq!(cert_uri.id, key_uri.id, "the certificate takes the key's id");

    // Certificate found next to the key on the token.
    let id = Pkcs11X509::from_section(
        Config::from_toml(
            &format!(
                "[x509]\nbackend = \"pkcs11\"\nkey = \"pkcs11:token={LABEL};object={label}\"\npin_file = \"user.pin\"\n{}",
                module_line(f)
            ),
            "test.toml",
            f.hsm.path(),
        )
        .unwrap()
        .section("x509")
        .unwrap(),
    )
    .unwrap();
    assert_eq!(id.common_name().unwrap(), label);
    assert_eq!(id.certificate_chain().unwrap().len(), 1);
    let reference = id.key_reference().unwrap();
    assert!(reference.starts_with("pkcs11:") && !reference.contains("pin-value") && !reference.contains(PIN));
    assert!(
        reference.contains("pin-source=file:") && reference.contains("module-path="),
        "{}",
        *reference
    );

    // The PEM chain file variant, and the certificate named by URI.
    let chain_file = f.hsm.path().join(format!("{label}-chain.pem"));
    std::fs::write(&chain_file, format!("{leaf}{ca}")).unwrap();
    let by_file = x509_config(
        f,
        &format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\ncertificate_file = \"{label}-chain.pem\"\n",
            key_uri.to_token_string()
        ),
    )
    .unwrap();
    assert_eq!(by_file.certificate_chain().unwrap().len(), 2);
    assert_eq!(by_file.common_name().unwrap(), label);
    let by_uri = x509_config(
        f,
        &format!(
            "[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\ncertificate = \"{}\"\n",
            key_uri.to_token_string(),
            cert_uri.to_token_string()
        ),
    )
    .unwrap();
    assert_eq!(by_uri.certificate_chain().unwrap(), id.certificate_chain().unwrap());

    // Sign through the alias-key token, as the TLS bridge does; verify independently.
    let signer = open_signer(&reference).unwrap();
    assert_eq!(signer.algorithm(), algorithm);
    let leaf_spki = hsm_core::pem::public_key_spki(&id.certificate_chain().unwrap()[0]).unwrap();
    assert_eq!(signer.public_key_spki().unwrap(), leaf_spki);
    for scheme in schemes {
        assert!(signer.schemes().contains(scheme), "{scheme} offered");
        let msg = format!("TLS 1.3 CertificateVerify stand-in for {label} / {scheme}");
        let sig = signer.sign(*scheme, msg.as_bytes()).unwrap();
        ring_verify(*scheme, &leaf_spki, msg.as_bytes(), &sig);
        let sig2 = id.signing_key().unwrap().sign(*scheme, msg.as_bytes()).unwrap();
        ring_verify(*scheme, &leaf_spki, msg.as_bytes(), &sig2);
    }
    // And with the openssl CLI.
    let dir = f.hsm.path();
    let msg_file = dir.join(format!("{label}.msg"));
    let sig_file = dir.join(format!("{label}.sig"));
    let pub_file = dir.join(format!("{label}.pub"));
    std::fs::write(&msg_file, b"openssl cross-check").unwrap();
    std::fs::write(&sig_file, signer.sign(schemes[0], b"openssl cross-check").unwrap()).unwrap();
    openssl(&[
        "x509",
        "-in",
        &format!("{}/{label}.pem", dir.display()),
        "-pubkey",
        "-noout",
        "-out",
        pub_file.to_str().unwrap(),
    ]);
    let mut args = vec![
        "dgst",
        if matches!(algorithm, KeyAlgorithm::Ec(Curve::P384)) {
            "-sha384"
        } else {
            "-sha256"
        },
    ];
    if matches!(schemes[0], SignatureScheme::RsaPssSha256) {
        args.extend(["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:32"]);
    }
    args.extend([
        "-verify",
        pub_file.to_str().unwrap(),
        "-signature",
        sig_file.to_str().unwrap(),
        msg_file.to_str().unwrap(),
    ]);
    openssl(&args);
    // A real mutual-TLS handshake on 127.0.0.1, every client signature made by the token.
    tls_handshake(&id, &ca, tlsio_bridge::TlsVersions::Tls13Only);
    tls_handshake(&by_file, &ca, tlsio_bridge::TlsVersions::Tls12Only);
    // A scheme of another algorithm is refused clearly.
    let other = if matches!(algorithm, KeyAlgorithm::Rsa { .. }) {
        SignatureScheme::EcdsaP256Sha256
    } else {
        SignatureScheme::RsaPssSha256
    };
    let e = signer.sign(other, b"x").unwrap_err().to_string();
    assert!(e.contains("not supported"), "{e}");
}

/// The token's hashing mechanisms (`CKM_SHA256_RSA_PKCS_PSS`, ...): both modules have them
/// for all six RSA schemes.
pub fn token_hashing_mechanisms<M: TestModule>(f: &Fixture<M>) {
    let uri = tools::generate_key_pair(&f.uri("object=hashed-rsa"), KeyAlgorithm::Rsa { bits: 2048 }).unwrap();
    let token = hsm_pkcs11::Token::open(&uri, None).unwrap();
    let mut key = hsm_pkcs11::Pkcs11Key::open(token, &uri, None).unwrap();
    assert_eq!(key.schemes(), RSA_SCHEMES.to_vec());
    assert_eq!(
        key.prefer_hashed_mechanisms().unwrap(),
        6,
        "the token hashes for every RSA scheme"
    );
    let spki = key.public_key_spki().unwrap();
    for scheme in &RSA_SCHEMES {
        let sig = key.sign(*scheme, b"hashed on the token").unwrap();
        ring_verify(*scheme, &spki, b"hashed on the token", &sig);
    }
}

pub fn rsa_3072_key_generation_and_signing<M: TestModule>(f: &Fixture<M>) {
    let uri = tools::generate_key_pair(&f.uri("object=rsa-3072"), KeyAlgorithm::Rsa { bits: 3072 }).unwrap();
    let signer = open_signer(&uri.to_token_string()).unwrap();
    assert_eq!(signer.algorithm(), KeyAlgorithm::Rsa { bits: 3072 });
    let sig = signer.sign(SignatureScheme::RsaPssSha256, b"m").unwrap();
    ring_verify(
        SignatureScheme::RsaPssSha256,
        &signer.public_key_spki().unwrap(),
        b"m",
        &sig,
    );
    let e = tools::generate_key_pair(&f.uri("object=rsa-1024"), KeyAlgorithm::Rsa { bits: 1024 }).unwrap_err();
    assert!(e.to_string().contains("2048 to 4096"), "{e}");
    if f.hsm.kind() == ModuleKind::Tpm2Pkcs11 {
        // The TPM makes RSA keys up to 3072 bits: refused before asking the token, naming the
        // sizes it offers.
        let e = tools::generate_key_pair(&f.uri("object=rsa-4096"), KeyAlgorithm::Rsa { bits: 4096 }).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, hsm_core::Error::Unsupported { .. })
                && text.contains("4096-bit")
                && text.contains("1024 to 3072")
                && text.contains(LABEL),
            "{text}"
        );
    }
}

pub fn hmac_key_stays_on_the_token<M: TestModule>(f: &Fixture<M>) {
    use base64::Engine as _;
    // test-vectors.md: derived device key and the DPS SAS signature made with it.
    let key = base64::engine::general_purpose::STANDARD
        .decode("GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=")
        .unwrap();
    let uri = match f.hsm.kind() {
        ModuleKind::SoftHsm2 => tools::import_secret(&f.uri("object=dps-key"), &key).unwrap(),
        ModuleKind::Tpm2Pkcs11 => {
            // tpm2-pkcs11 refuses to create secret keys through PKCS#11 (the key was imported
            // with tpm2_ptool before the test): the error names the call and the token's code.
            let e = tools::import_secret(&f.uri("object=other-key"), &key).unwrap_err();
            assert!(
                matches!(
                    e,
                    hsm_core::Error::Device {
                        rv: cryptoki_sys::CKR_ATTRIBUTE_VALUE_INVALID,
                        ..
                    }
                ) && e.to_string().contains("C_CreateObject (secret key)")
                    && e.to_string().contains("CKR_ATTRIBUTE_VALUE_INVALID"),
                "{e}"
            );
            hsm_pkcs11::Pkcs11Uri::parse(&f.uri("object=dps-key;type=secret-key")).unwrap()
        }
    };
    let cfg = Config::from_toml(
        &format!(
            "[symmetric_key]\nbackend = \"pkcs11\"\nregistration_id = \"device-0001\"\nkey = \"pkcs11:token={LABEL};object=dps-key\"\npin_file = \"user.pin\"\n{}",
            module_line(f)
        ),
        "test.toml",
        f.hsm.path(),
    )
    .unwrap();
    let id = Pkcs11Symmetric::from_section(cfg.section("symmetric_key").unwrap()).unwrap();
    assert_eq!(id.registration_id().unwrap(), "device-0001");
    let e = id.symmetric_key().unwrap_err();
    assert!(matches!(e, hsm_core::Error::Unsupported { .. }), "{e}");
    let to_sign = b"0ne00000A0A%2fregistrations%2fdevice-0001\n1767225600";
    let mac = id.hmac_sha256(to_sign).unwrap();
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(mac),
        "sWSjFs4E5KYQNTTlI1ZWkgs5AaRrTQvh2QKwI5650IA="
    );
    assert_eq!(id.sign_with_identity(to_sign).unwrap(), mac.to_vec());
    assert_eq!(mac, hsm_core::sas::hmac_sha256(&key, to_sign));
    // (It offers no TPM attestation: Pkcs11Symmetric is a SasSigner, not a TpmIdentity.)
    // The key object is sensitive: a reader gets no value.
    let listed = tools::list_objects(&f.uri("type=secret-key")).unwrap();
    assert!(listed.iter().any(|u| u.contains("object=dps-key")), "{listed:?}");
    assert!(uri.to_token_string().contains("type=secret-key"));

    if f.hsm.kind() == ModuleKind::Tpm2Pkcs11 {
        // No CKM_GENERIC_SECRET_KEY_GEN: refused before asking the token, naming what is missing.
        let e = tools::generate_secret(&f.uri("object=generated-hmac"), 32).unwrap_err();
        let text = e.to_string();
        assert!(
            matches!(e, hsm_core::Error::Unsupported { .. })
                && text.contains("CKM_GENERIC_SECRET_KEY_GEN")
                && text.contains(LABEL),
            "{text}"
        );
        return;
    }
    // A generated secret works and two HMACs agree.
    let g = tools::generate_secret(&f.uri("object=generated-hmac"), 32).unwrap();
    let s = hsm_pkcs11::Pkcs11Secret::open(&g).unwrap();
    assert_eq!(s.hmac_sha256(b"abc").unwrap(), s.hmac_sha256(b"abc").unwrap());
    assert_ne!(s.hmac_sha256(b"abc").unwrap(), s.hmac_sha256(b"abd").unwrap());
}

pub fn list_objects_as_uris<M: TestModule>(f: &Fixture<M>) {
    tools::generate_key_pair(&f.uri("object=listed;id=%aa%bb"), KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let listed = tools::list_objects(&f.uri("id=%aa%bb")).unwrap();
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().any(|u| u.contains("type=private")) && listed.iter().any(|u| u.contains("type=public")));
    for u in &listed {
        assert!(
            u.contains("object=listed") && u.contains("id=%AA%BB") && u.contains("serial="),
            "{u}"
        );
        // Every listed URI resolves to exactly that object.
        let parsed = hsm_pkcs11::Pkcs11Uri::parse(u).unwrap();
        assert_eq!(parsed.object.as_deref(), Some("listed"));
    }
    // Listed URIs carry token, manufacturer, serial and model: they select that token.
    let private = listed.iter().find(|u| u.contains("type=private")).unwrap();
    let by_serial = open_signer(private).unwrap();
    // slot-id and module-name select the same key.
    let token = hsm_pkcs11::Token::open(&hsm_pkcs11::Pkcs11Uri::parse(&f.uri("")).unwrap(), None).unwrap();
    let slot = token.find_slot().unwrap().id();
    let module_name = match f.hsm.kind() {
        ModuleKind::SoftHsm2 => "softhsm2",
        ModuleKind::Tpm2Pkcs11 => "tpm2_pkcs11",
    };
    let by_slot = open_signer(&format!(
        "pkcs11:slot-id={slot};object=listed;type=private?module-name={module_name}&pin-source=file:{}",
        f.pin_file.display()
    ))
    .unwrap();
    assert_eq!(by_slot.public_key_spki().unwrap(), by_serial.public_key_spki().unwrap());
    let no_slot = token
        .module()
        .context()
        .get_all_slots()
        .unwrap()
        .iter()
        .map(|s| s.id())
        .max()
        .unwrap()
        .wrapping_add(1);
    let e = open_signer(&format!(
        "pkcs11:slot-id={no_slot};object=listed?module-path={}&pin-source=file:{}",
        f.hsm.module().display(),
        f.pin_file.display()
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("no token matches") && e.contains("slot-id="), "{e}");
    let e = open_signer("pkcs11:object=listed?module-name=no-such-module")
        .unwrap_err()
        .to_string();
    assert!(e.contains("`module-name`") && e.contains("no-such-module"), "{e}");
}
