//! The `hsmctl pkcs11` subcommands (crates/hsmctl/src/pkcs11_cmd.rs), driven through clap
//! against a real SoftHSM2 token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[path = "../../hsmctl/src/pkcs11_cmd.rs"]
mod pkcs11_cmd;

use clap::Parser;
use common::suite::issue;
use common::{fixture, ring_verify};
use hsm_core::{SignatureScheme, SymmetricIdentity};

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: pkcs11_cmd::Pkcs11Command,
}

fn run(args: &[&str]) -> Result<(), hsm_core::Error> {
    let cli = Cli::try_parse_from(std::iter::once("hsmctl-pkcs11").chain(args.iter().copied())).unwrap();
    pkcs11_cmd::run(cli.cmd)
}

#[test]
fn keygen_csr_import_list_and_secret() {
    let f = fixture();
    let dir = f.hsm.path();
    let key = f.uri("object=cli-key");
    run(&["keygen", "--uri", &key, "--key-type", "p384"]).unwrap();
    let csr = dir.join("cli.csr");
    run(&[
        "csr",
        "--uri",
        &key,
        "--common-name",
        "cli-device",
        "--out",
        csr.to_str().unwrap(),
    ])
    .unwrap();
    // openssl checks the CSR's signature and issues the certificate.
    let (leaf, _) = issue(dir, "cli", &std::fs::read_to_string(&csr).unwrap());
    let cert = dir.join("cli.pem");
    std::fs::write(&cert, leaf).unwrap();
    run(&["import-cert", "--uri", &key, "--file", cert.to_str().unwrap()]).unwrap();
    let objects = hsm_pkcs11::tools::list_objects(&f.uri("object=cli-key")).unwrap();
    assert_eq!(objects.len(), 3, "private, public, certificate: {objects:?}");
    run(&["list", "--uri", &f.uri("object=cli-key")]).unwrap();

    // The certificate and key make an identity; it signs with the token key.
    let cfg = hsm_core::config::Config::from_toml(
        &format!("[x509]\nbackend = \"pkcs11\"\nkey = \"{}\"\n", key),
        "cli.toml",
        dir,
    )
    .unwrap();
    // (pin-source from the URI; the configuration takes no pin-value, and this URI has none)
    let id = hsm_pkcs11::Pkcs11X509::from_section(cfg.section("x509").unwrap()).unwrap();
    use hsm_core::X509Identity as _;
    assert_eq!(id.common_name().unwrap(), "cli-device");
    let signer = id.signing_key().unwrap();
    let sig = signer.sign(SignatureScheme::EcdsaP384Sha384, b"cli").unwrap();
    ring_verify(
        SignatureScheme::EcdsaP384Sha384,
        &signer.public_key_spki().unwrap(),
        b"cli",
        &sig,
    );

    // HMAC secrets: imported from a base64 file, or generated.
    let key_file = dir.join("cli-secret.b64");
    std::fs::write(&key_file, "GRPTH+dyLH5yQZctR5eMNCRGWfZXuw/fZzAhRArVPkQ=\n").unwrap();
    run(&[
        "import-secret",
        "--uri",
        &f.uri("object=cli-secret"),
        "--key-file",
        key_file.to_str().unwrap(),
    ])
    .unwrap();
    let secret =
        hsm_pkcs11::Pkcs11Secret::open(&hsm_pkcs11::Pkcs11Uri::parse(&f.uri("object=cli-secret")).unwrap()).unwrap();
    let sym = hsm_pkcs11::Pkcs11Symmetric::new("device-0001".into(), secret);
    use base64::Engine as _;
    assert_eq!(
        base64::engine::general_purpose::STANDARD.encode(
            sym.hmac_sha256(b"0ne00000A0A%2fregistrations%2fdevice-0001\n1767225600")
                .unwrap()
        ),
        "sWSjFs4E5KYQNTTlI1ZWkgs5AaRrTQvh2QKwI5650IA="
    );
    run(&[
        "import-secret",
        "--uri",
        &f.uri("object=cli-generated"),
        "--generate-bytes",
        "32",
    ])
    .unwrap();
    // Errors are clear.
    let e = run(&["keygen", "--uri", &key]).unwrap_err().to_string();
    assert!(e.contains("already exists"), "{e}");
    let e = run(&["import-secret", "--uri", &f.uri("object=x"), "--generate-bytes", "4"])
        .unwrap_err()
        .to_string();
    assert!(e.contains("16 to 128"), "{e}");
    assert!(
        Cli::try_parse_from(["x", "import-secret", "--uri", "pkcs11:"]).is_err(),
        "a key source is required"
    );
}
