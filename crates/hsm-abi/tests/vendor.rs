//! Vendor backends end to end in Rust: the example C backend (examples/vendor-ecdsa, built here
//! with make and libcrypto) through the conformance run, the registry and key tokens; the
//! library's own backends through the same conformance run; deliberately broken vendor
//! libraries (tests/c/vendor/broken_vendor.c) refused or reported.
#![cfg(feature = "vendor")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, OnceLock};

use hsm_abi::vendor::conformance::{self, Options, Outcome};
use hsm_abi::vendor::{Source, VendorTable, VendorX509};
use hsm_core::config::Config;
use hsm_core::{SignatureScheme, X509Identity};

/// Build the example and the broken variants once per test process.
fn built() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        // One fixed directory under the target dir (rebuilt by each run, never left in /tmp).
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("vendor-hsm-abi-tests");
        test_support::examples::vendor_ecdsa(&out);
        for n in 1..=10 {
            let st = Command::new("cc")
                .args(["-std=c11", "-Wall", "-Wextra", "-Werror", "-g", "-fPIC", "-shared"])
                .arg("-I")
                .arg(test_support::examples::repository_root().join("include"))
                .arg("-I")
                .arg(test_support::examples::repository_root().join("examples/vendor-ecdsa"))
                .arg(format!("-DBROKEN={n}"))
                .arg(test_support::examples::repository_root().join("tests/c/vendor/broken_vendor.c"))
                .arg("-o")
                .arg(out.join(format!("libbroken{n}.so")))
                .arg("-lcrypto")
                .status()
                .unwrap();
            assert!(st.success(), "building broken vendor {n} failed");
        }
        out
    })
}

fn example() -> PathBuf {
    built().join("libvendor_ecdsa.so")
}

fn broken(n: u32) -> PathBuf {
    built().join(format!("libbroken{n}.so"))
}

/// A device directory (chain.pem, key.pem) with a P-256 leaf under a fresh CA.
fn device(dir: &Path, cn: &str) {
    let ca = test_support::pki::Ca::root("vendor test CA");
    let leaf = ca.issue(
        test_support::pki::params(cn),
        test_support::pki::KeyType::P256.generate(),
    );
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("key.pem"), leaf.key_pem()).unwrap();
    std::fs::write(dir.join("chain.pem"), leaf.with_intermediate(&ca).chain_pem()).unwrap();
}

fn quiet() -> impl FnMut(&conformance::Check) {
    |_| {}
}

fn failures(r: &conformance::Report) -> String {
    r.checks
        .iter()
        .filter(|c| matches!(c.outcome, Outcome::Fail(_)))
        .map(|c| c.to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn example_backend_passes_the_conformance_run() {
    let tmp = tempfile::tempdir().unwrap();
    device(tmp.path(), "device-vendor");
    let table = VendorTable::load(&example()).unwrap();
    assert_eq!(table.name(), "vendor-ecdsa");
    let opts = Options {
        identity: tmp.path().display().to_string(),
        ..Options::default()
    };
    let mut lines = Vec::new();
    let report = conformance::run(&table, &opts, &mut |c| lines.push(c.to_string()));
    assert!(report.ok(), "{}\n{}", failures(&report), report.summary());
    assert!(report.passed() >= 30, "{}", lines.join("\n"));
    assert_eq!(lines.len(), report.checks.len());
    assert!(
        lines.iter().any(|l| l.starts_with("PASS 8 threads sign concurrently")),
        "{lines:?}"
    );
    assert!(lines.iter().any(|l| l.starts_with("SKIP TPM group")), "{lines:?}");
    assert!(report.summary().ends_with("CONFORMANT"));
}

#[test]
fn builtin_backends_pass_the_conformance_run() {
    let tmp = tempfile::tempdir().unwrap();
    device(tmp.path(), "device-builtin");
    let cfg = tmp.path().join("hsm.toml");
    std::fs::write(
        &cfg,
        concat!(
            "[x509]\nbackend = \"file\"\ncertificate = \"chain.pem\"\nprivate_key = \"key.pem\"\n",
            "[symmetric_key]\nbackend = \"file\"\nregistration_id = \"device-0001\"\n",
            "symmetric_key = \"c2VjcmV0LWtleS1mb3ItZGV2aWNlLXN5bQ==\"\n"
        ),
    )
    .unwrap();
    let table = VendorTable::builtin().unwrap();
    let opts = Options {
        identity: cfg.display().to_string(),
        ..Options::default()
    };
    let report = conformance::run(&table, &opts, &mut quiet());
    assert!(report.ok(), "{}\n{}", failures(&report), report.summary());
    let names: Vec<&str> = report.checks.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"hmac_sha256 equals HMAC-SHA256 with get_symmetric_key (ring)"),
        "{names:?}"
    );
}

#[test]
fn registry_and_key_tokens_use_the_vendor_backend() {
    // hsm opens vendor identities through the loader of hsm-abi.
    hsm_abi::vendor::install();
    let tmp = tempfile::tempdir().unwrap();
    device(&tmp.path().join("dev"), "device-registry");
    let lib = example();
    let text = format!(
        "[x509]\nbackend = \"vendor\"\nlibrary = \"{}\"\nidentity = \"{}\"\n",
        lib.display(),
        tmp.path().join("dev").display()
    );
    let config = Config::from_toml(&text, "vendor.toml", tmp.path()).unwrap();
    let id = hsm::open_x509(&config).unwrap();
    assert_eq!(id.common_name().unwrap(), "device-registry");
    assert_eq!(id.certificate_chain().unwrap().len(), 2);
    let token = id.key_reference().unwrap();
    assert!(token.starts_with("vendor:library="), "{}", token.as_str());
    let key = hsm::open_signer(&token).unwrap();
    let sig = key
        .sign(SignatureScheme::EcdsaP256Sha256, b"through the token")
        .unwrap();
    hsm_abi::vendor::verify_signature(
        &key.public_key_spki().unwrap(),
        SignatureScheme::EcdsaP256Sha256,
        b"through the token",
        &sig,
    )
    .unwrap();
    let e = key.sign(SignatureScheme::RsaPssSha256, b"x").unwrap_err().to_string();
    assert!(e.contains("not listed by key_info"), "{e}");

    // The example has no TPM or symmetric group: those interfaces say so.
    let groups = format!(
        "[symmetric_key]\nbackend = \"vendor\"\nlibrary = \"{0}\"\nidentity = \"{1}\"\n[tpm]\nbackend = \"vendor\"\nlibrary = \"{0}\"\nidentity = \"{1}\"\n",
        lib.display(),
        tmp.path().join("dev").display()
    );
    let config = Config::from_toml(&groups, "groups.toml", tmp.path()).unwrap();
    let e = hsm::open_symmetric(&config).err().unwrap().to_string();
    assert!(
        e.contains("no symmetric-key operations") && e.contains("groups.toml"),
        "{e}"
    );
    let e = hsm::open_tpm(&config).err().unwrap().to_string();
    assert!(e.contains("no TPM operations"), "{e}");

    // Configuration mistakes are named.
    let bad = Config::from_toml("[x509]\nbackend = \"vendor\"\n", "bad.toml", tmp.path()).unwrap();
    let e = hsm::open_x509(&bad).err().unwrap().to_string();
    assert!(e.contains("bad.toml") && e.contains("x509.library"), "{e}");
    let none = Config::from_toml(
        "[x509]\nbackend = \"vendor\"\nlibrary = \"no-such-lib.so\"\n",
        "none.toml",
        tmp.path(),
    )
    .unwrap();
    let e = hsm::open_x509(&none).err().unwrap().to_string();
    assert!(
        e.contains("none.toml") && e.contains("no-such-lib.so") && e.contains("cannot load"),
        "{e}"
    );
    let e = hsm::open_x509(
        &Config::from_toml(
            "[x509]\nbackend = \"vendor\"\nregistered = \"nobody\"\n",
            "reg.toml",
            tmp.path(),
        )
        .unwrap(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("nobody") && e.contains("no vendor table registered"), "{e}");
    // A wrong identity is the vendor's error, explained by its error_string.
    let e = VendorX509::open(&Source::Library(lib), "/nonexistent-dir")
        .err()
        .unwrap()
        .to_string();
    assert!(
        e.contains("vendor-ecdsa") && e.contains("cannot be read") && e.contains("rv 0x3e8"),
        "{e}"
    );
}

fn load_error(n: u32) -> String {
    VendorTable::load(&broken(n))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default()
}

#[test]
fn broken_tables_are_refused_when_loaded() {
    // hsm opens vendor identities through the loader of hsm-abi.
    hsm_abi::vendor::install();
    let e = load_error(1);
    assert!(e.contains("version 99 is not supported"), "{e}");
    let e = load_error(2);
    assert!(e.contains("struct_size 24 is smaller than"), "{e}");
    let e = load_error(3);
    assert!(e.contains("mandatory field `sign` is NULL"), "{e}");
    let e = load_error(4);
    assert!(e.contains("TPM group is incomplete"), "{e}");
    let e = load_error(5);
    assert!(e.contains("does not export `hsm_abi_vendor_table`"), "{e}");
    for n in 1..=5 {
        assert!(load_error(n).contains(&format!("libbroken{n}.so")), "{}", load_error(n));
    }
    // Through a configuration: the file, the key and the library are all named.
    let text = format!("[x509]\nbackend = \"vendor\"\nlibrary = \"{}\"\n", broken(1).display());
    let config = Config::from_toml(&text, "broken.toml", Path::new("")).unwrap();
    let e = hsm::open_x509(&config).err().unwrap().to_string();
    assert!(
        e.contains("broken.toml")
            && e.contains("x509.library")
            && e.contains("libbroken1.so")
            && e.contains("version 99"),
        "{e}"
    );
}

#[test]
fn broken_behaviour_is_reported() {
    // hsm opens vendor identities through the loader of hsm-abi.
    hsm_abi::vendor::install();
    let tmp = tempfile::tempdir().unwrap();
    device(tmp.path(), "device-broken");
    let identity = tmp.path().display().to_string();
    let open = |n: u32| VendorX509::open(&Source::Library(broken(n)), &identity);

    // A bad signature is caught by verification.
    let id = open(6).unwrap();
    let e = id
        .signing_key()
        .unwrap()
        .sign(SignatureScheme::EcdsaP256Sha256, b"m")
        .unwrap_err()
        .to_string();
    assert!(e.contains("returned a bad signature"), "{e}");
    let table = VendorTable::load(&broken(6)).unwrap();
    let opts = Options {
        identity: identity.clone(),
        threads: 2,
        signs_per_thread: 2,
    };
    let report = conformance::run(&table, &opts, &mut quiet());
    assert!(!report.ok());
    assert!(failures(&report).contains("does not verify"), "{}", failures(&report));
    assert!(report.summary().ends_with("NOT CONFORMANT"));

    let e = open(7).err().unwrap().to_string();
    assert!(
        e.contains("get_certificate_chain") && e.contains("bytes written into a"),
        "{e}"
    );
    let id = open(8).unwrap();
    let e = id.common_name().unwrap_err().to_string();
    assert!(e.contains("get_common_name") && e.contains("wrote past the end"), "{e}");
    let e = open(9).err().unwrap().to_string();
    assert!(e.contains("key_info") && e.contains("unsupported key"), "{e}");
    let e = open(10).err().unwrap().to_string();
    assert!(e.contains("get_certificate_chain") && e.contains("kept growing"), "{e}");
    // The example itself still works after all that.
    assert!(VendorX509::open(&Source::Library(example()), &identity).is_ok());
    let _ = Arc::strong_count(&table);
}
