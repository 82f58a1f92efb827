//! `hsmctl certs`: a test PKI in one command (root CA, optional intermediate, N device leaves
//! with keys, leaves for CSRs made by an HSM backend), written as PEM files. (The device's issued
//! certificate, `hsmctl certificate`, is `issued_certificate_cmd.rs`.)

use std::path::PathBuf;

use clap::{Args, ValueEnum};
use hsm_riot::pki::{KeyKind, PkiOptions, PkiOutput, generate};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyType {
    /// ECDSA P-256.
    P256,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl From<KeyType> for KeyKind {
    fn from(k: KeyType) -> Self {
        match k {
            KeyType::P256 => KeyKind::P256,
            KeyType::Rsa2048 => KeyKind::Rsa(2048),
            KeyType::Rsa3072 => KeyKind::Rsa(3072),
            KeyType::Rsa4096 => KeyKind::Rsa(4096),
        }
    }
}

/// Generate a test PKI: root CA, optional intermediate, device leaves with keys, and leaves for
/// CSRs (keys made inside an HSM). Files: root-ca.{cert,key}.pem, intermediate-ca.{cert,key}.pem,
/// <id>.cert.pem (leaf), <id>.chain.pem (leaf + intermediate), <id>.key.pem (generated leaves).
#[derive(Debug, Args)]
pub struct CertsArgs {
    /// Directory for the PEM files (created if missing).
    #[arg(long, short = 'o')]
    pub out_dir: PathBuf,
    /// Common name of the root CA.
    #[arg(long, default_value = "hsm-abi Test Root CA", conflicts_with = "ca_cert")]
    pub root_cn: String,
    /// Also make an intermediate CA that signs the leaves.
    #[arg(long, conflicts_with = "ca_cert")]
    pub intermediate: bool,
    /// Common name of the intermediate CA.
    #[arg(long, default_value = "hsm-abi Test Intermediate CA")]
    pub intermediate_cn: String,
    /// Number of device leaves with generated keys, named <prefix>0001, <prefix>0002, ...
    /// [default: 1, or 0 when --device-id or --csr is given]
    #[arg(long)]
    pub devices: Option<u32>,
    /// Prefix of the numbered device ids.
    #[arg(long, default_value = "device-")]
    pub device_prefix: String,
    /// A device id (registration id, the leaf's CN) to make a leaf and key for; repeatable.
    #[arg(long = "device-id")]
    pub device_ids: Vec<String>,
    /// Issue a leaf for this CSR (PEM or DER; its CN is the registration id), e.g. one made
    /// by the PKCS#11 or TPM backend so the key never leaves the HSM; repeatable.
    #[arg(long = "csr")]
    pub csrs: Vec<PathBuf>,
    /// Key type of every generated key (CAs and leaves).
    #[arg(long, value_enum, default_value_t = KeyType::P256)]
    pub key_type: KeyType,
    /// Validity of the leaves, in days.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
    /// Validity of the CAs, in days.
    #[arg(long, default_value_t = 3650)]
    pub ca_days: u32,
    /// Sign the leaves with this existing CA certificate (PEM; the CA first, then its issuers)
    /// instead of making a new root.
    #[arg(long, requires = "ca_key")]
    pub ca_cert: Option<PathBuf>,
    /// The private key (PEM) of --ca-cert.
    #[arg(long, requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Replace existing files in the output directory.
    #[arg(long)]
    pub force: bool,
}

impl CertsArgs {
    fn options(&self) -> PkiOptions {
        let count = self
            .devices
            .unwrap_or(if self.device_ids.is_empty() && self.csrs.is_empty() {
                1
            } else {
                0
            });
        let mut device_ids = PkiOptions::numbered_ids(&self.device_prefix, count);
        device_ids.extend(self.device_ids.iter().cloned());
        PkiOptions {
            out_dir: self.out_dir.clone(),
            root_cn: self.root_cn.clone(),
            intermediate_cn: self.intermediate.then(|| self.intermediate_cn.clone()),
            device_ids,
            csr_files: self.csrs.clone(),
            key_kind: self.key_type.into(),
            leaf_days: self.days,
            ca_days: self.ca_days,
            issuer: self.ca_cert.clone().zip(self.ca_key.clone()),
            overwrite: self.force,
        }
    }
}

pub fn run(args: CertsArgs) -> Result<(), hsm_core::Error> {
    let out = generate(&args.options())?;
    out!("{}", summary(&out));
    Ok(())
}

fn summary(out: &PkiOutput) -> String {
    let mut s = String::new();
    if let Some(root) = &out.root {
        s.push_str(&format!("root CA:          {}\n", root.display()));
    }
    if let Some(int) = &out.intermediate {
        s.push_str(&format!("intermediate CA:  {}\n", int.display()));
    }
    s.push_str(&format!(
        "issuing CA:       {}  (group enrollment: its certificate, or the root's)\n",
        out.issuing_ca.display()
    ));
    for leaf in &out.leaves {
        s.push_str(&format!("device {}:\n", leaf.registration_id));
        s.push_str(&format!(
            "  certificate     {}  (individual enrollment)\n",
            leaf.certificate.display()
        ));
        s.push_str(&format!(
            "  chain           {}  (what the device presents)\n",
            leaf.chain.display()
        ));
        match (&leaf.key, &leaf.from_csr) {
            (Some(k), _) => s.push_str(&format!("  private key     {}\n", k.display())),
            (None, Some(csr)) => s.push_str(&format!("  key             in the HSM (from CSR {})\n", csr.display())),
            (None, None) => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: CertsArgs,
    }

    fn parse(args: &[&str]) -> Result<CertsArgs, clap::Error> {
        T::try_parse_from(std::iter::once("certs").chain(args.iter().copied())).map(|t| t.a)
    }

    #[test]
    fn options_from_arguments() {
        let a = parse(&["-o", "out"]).unwrap();
        let o = a.options();
        assert_eq!(o.device_ids, vec!["device-0001"]);
        assert_eq!(o.key_kind, KeyKind::P256);
        assert!(o.intermediate_cn.is_none() && o.issuer.is_none());

        let a = parse(&["-o", "out", "--csr", "x.csr", "--intermediate", "--key-type", "rsa3072"]).unwrap();
        let o = a.options();
        assert!(o.device_ids.is_empty());
        assert_eq!(o.csr_files, vec![PathBuf::from("x.csr")]);
        assert_eq!(o.intermediate_cn.as_deref(), Some("hsm-abi Test Intermediate CA"));
        assert_eq!(o.key_kind, KeyKind::Rsa(3072));

        let a = parse(&["-o", "o", "--devices", "2", "--device-prefix", "d-", "--device-id", "x"]).unwrap();
        assert_eq!(a.options().device_ids, vec!["d-0001", "d-0002", "x"]);

        assert!(
            parse(&["-o", "o", "--ca-cert", "c.pem"]).is_err(),
            "--ca-cert needs --ca-key"
        );
        assert!(parse(&["-o", "o", "--ca-cert", "c", "--ca-key", "k", "--intermediate"]).is_err());
    }

    #[test]
    fn writes_a_pki_and_summarises_it() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("pki");
        let a = parse(&["-o", out.to_str().unwrap(), "--intermediate", "--devices", "2"]).unwrap();
        let result = generate(&a.options()).unwrap();
        let text = summary(&result);
        assert!(
            text.contains("device device-0002:") && text.contains("intermediate-ca.cert.pem"),
            "{text}"
        );
        for f in ["root-ca.cert.pem", "device-0001.chain.pem", "device-0002.key.pem"] {
            assert!(out.join(f).is_file(), "{f}");
        }
        // The default refuses to overwrite; --force replaces.
        let a = parse(&["-o", out.to_str().unwrap()]).unwrap();
        assert!(run(a).is_err());
        let a = parse(&["-o", out.to_str().unwrap(), "--force"]).unwrap();
        run(a).unwrap();
    }
}
