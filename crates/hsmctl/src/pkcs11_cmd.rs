//! `hsmctl pkcs11 ...`: keys, CSRs, certificates and HMAC secrets on a PKCS#11 token, all
//! addressed by RFC 7512 URIs (`pkcs11:token=...;object=...?module-path=...&pin-source=file:...`).
//! Results go to stdout; URIs printed never carry a PIN.

use std::io::Write as _;
use std::path::PathBuf;

use hsm_core::{Curve, Error, KeyAlgorithm};

/// Key pair types a token key can have.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum KeyType {
    P256,
    P384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    fn algorithm(self) -> KeyAlgorithm {
        match self {
            KeyType::P256 => KeyAlgorithm::Ec(Curve::P256),
            KeyType::P384 => KeyAlgorithm::Ec(Curve::P384),
            KeyType::Rsa2048 => KeyAlgorithm::Rsa { bits: 2048 },
            KeyType::Rsa3072 => KeyAlgorithm::Rsa { bits: 3072 },
            KeyType::Rsa4096 => KeyAlgorithm::Rsa { bits: 4096 },
        }
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum Pkcs11Command {
    /// Generate a key pair on the token (label from `object=`, id random unless `id=`); prints
    /// the private key's URI.
    Keygen {
        /// Token and label, e.g. `pkcs11:token=dev;object=device-key?pin-source=file:/etc/pin`.
        #[arg(long)]
        uri: String,
        #[arg(long, value_enum, default_value = "p256")]
        key_type: KeyType,
    },
    /// Make a PKCS#10 CSR with subject CN=<common-name>, signed by the token key.
    Csr {
        /// The private key's URI.
        #[arg(long)]
        uri: String,
        /// The subject common name (the DPS registration id).
        #[arg(long)]
        common_name: String,
        /// Write the PEM here instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Import a certificate (PEM or DER) as a certificate object with the URI's label and id
    /// (without `id=`, the id of the private key with that label); prints its URI.
    ImportCert {
        #[arg(long)]
        uri: String,
        /// The certificate file (one certificate: the leaf).
        #[arg(long)]
        file: PathBuf,
    },
    /// List the objects matching the URI (all objects of the token when it names none).
    List {
        #[arg(long)]
        uri: String,
    },
    /// Store an HMAC-SHA256 key (CKK_GENERIC_SECRET, not extractable) on the token: imported
    /// from a file holding the base64 key, or generated on the token; prints its URI.
    ImportSecret {
        #[arg(long)]
        uri: String,
        /// File with the base64 key (as DPS shows a symmetric key).
        #[arg(long, conflicts_with = "generate_bytes", required_unless_present = "generate_bytes")]
        key_file: Option<PathBuf>,
        /// Generate a key of this many bytes on the token instead.
        #[arg(long)]
        generate_bytes: Option<usize>,
    },
}

fn print(text: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|()| {
            if text.ends_with('\n') {
                Ok(())
            } else {
                out.write_all(b"\n")
            }
        })
        .and_then(|()| out.flush())
        .map_err(|e| Error::io("write", "stdout", e))
}

/// Run one `hsmctl pkcs11` subcommand.
pub fn run(cmd: Pkcs11Command) -> Result<(), Error> {
    match cmd {
        Pkcs11Command::Keygen { uri, key_type } => {
            let key = hsm_pkcs11::tools::generate_key_pair(&uri, key_type.algorithm())?;
            print(&key.to_token_string())
        }
        Pkcs11Command::Csr { uri, common_name, out } => {
            let csr = hsm_pkcs11::tools::make_csr(&uri, &common_name)?;
            match out {
                Some(path) => std::fs::write(&path, csr).map_err(|e| Error::io("write CSR", path, e)),
                None => print(&csr),
            }
        }
        Pkcs11Command::ImportCert { uri, file } => {
            let data = hsm_core::pem::read_file("read certificate", &file)?;
            let cert = hsm_pkcs11::tools::import_certificate(&uri, &data)?;
            print(&cert.to_token_string())
        }
        Pkcs11Command::List { uri } => {
            let objects = hsm_pkcs11::tools::list_objects(&uri)?;
            print(&objects.join("\n"))
        }
        Pkcs11Command::ImportSecret {
            uri,
            key_file,
            generate_bytes,
        } => {
            let stored = match (key_file, generate_bytes) {
                (Some(path), None) => {
                    let text = hsm_core::fs::read_bounded_string("read key file", &path, hsm_core::fs::SECRET_MAX)?;
                    let key = hsm_core::sas::decode_key(&path.display().to_string(), text.trim())?;
                    hsm_pkcs11::tools::import_secret(&uri, &key)?
                }
                (None, Some(n)) => hsm_pkcs11::tools::generate_secret(&uri, n)?,
                _ => return Err(Error::invalid("import-secret", "give --key-file or --generate-bytes")),
            };
            print(&stored.to_token_string())
        }
    }
}
