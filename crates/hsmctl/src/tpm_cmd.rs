//! `hsmctl tpm ek` (EK, template detection, registration ids), `hsmctl tpm keygen` (a
//! TPM-resident ECDSA P-256 key) and `hsmctl tpm csr` (a CSR signed inside the TPM).

use std::path::PathBuf;

use base64::Engine as _;
use clap::{ArgGroup, Args, Subcommand};
use hsm_core::config::Config;
use hsm_core::{Error, SigningKey};
use hsm_tpm::{EkTemplate, HierarchyAuth, KeyLocation, SignerToken, Tpm, TpmConn, TpmOptions};

#[derive(Debug, Subcommand)]
pub enum TpmCommand {
    /// Print the EK at 0x81010001, which template (sdk or tcg) it matches, and the
    /// registration id each template gives on this TPM.
    Ek(EkArgs),
    /// Create an ECDSA P-256 key inside the TPM (under the SRK) and persist it at a handle or
    /// save it as a key blob; prints its `tpm:` token and public key.
    Keygen(KeygenArgs),
    /// Make a PKCS#10 CSR for a TPM key, signed inside the TPM.
    Csr(CsrArgs),
}

#[derive(Debug, Args)]
pub struct EkArgs {
    /// TCTI (default: the configuration's, else $TPM2TOOLS_TCTI, $TCTI, device:/dev/tpmrm0).
    #[arg(long)]
    pub tcti: Option<String>,
    /// Configuration file whose [tpm] section gives tcti and hierarchy auth.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Create and persist the EK and SRK when missing, with this EK template (sdk or tcg).
    #[arg(long, value_name = "TEMPLATE")]
    pub create: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("where").required(true).args(["handle", "blob"])))]
pub struct KeygenArgs {
    /// TCTI (default: $TPM2TOOLS_TCTI, $TCTI, device:/dev/tpmrm0).
    #[arg(long)]
    pub tcti: Option<String>,
    /// Persistent handle for the key, e.g. 0x81000200.
    #[arg(long)]
    pub handle: Option<String>,
    /// Key blob file to write instead (never overwritten).
    #[arg(long)]
    pub blob: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CsrArgs {
    /// The key: a `tpm:` token (`tpm:handle=0x81000200[;tcti=...]` or `tpm:blob=PATH[;tcti=...]`).
    #[arg(long)]
    pub key: String,
    /// Subject common name (the registration id for DPS).
    #[arg(long)]
    pub common_name: String,
    /// Write the CSR here instead of standard output.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

pub fn run(cmd: TpmCommand) -> Result<(), hsm_core::Error> {
    match cmd {
        TpmCommand::Ek(a) => ek(a),
        TpmCommand::Keygen(a) => keygen(a),
        TpmCommand::Csr(a) => csr(a),
    }
}

fn ek(a: EkArgs) -> Result<(), Error> {
    let mut opts = match &a.config {
        Some(path) => TpmOptions::from_section(Config::from_file(path)?.section("tpm")?)?,
        None => TpmOptions::new(hsm_tpm::default_tcti()),
    };
    if let Some(t) = a.tcti {
        opts.tcti = t;
    }
    let conn = match &a.create {
        Some(template) => {
            opts.ek_template = template.parse::<EkTemplate>()?;
            let tpm = Tpm::open(opts.clone())?;
            let created = tpm.keys_created();
            outln!(
                "EK {}, SRK {}",
                if created.ek {
                    "created and persisted at 0x81010001"
                } else {
                    "already present"
                },
                if created.srk {
                    "created and persisted at 0x81000001"
                } else {
                    "already present"
                }
            );
            tpm.connection().clone()
        }
        // Without --create nothing is persisted: the report only reads and compares.
        None => TpmConn::shared_with_auth(
            &opts.tcti,
            HierarchyAuth {
                owner: opts.owner_auth.clone(),
                endorsement: opts.endorsement_auth.clone(),
            },
        )?,
    };
    let report = hsm_tpm::ek_report(&conn)?;
    outln!("TCTI: {}", conn.tcti());
    match (&report.persisted, report.matching_template()) {
        (Some(ek), Some(t)) => {
            outln!("persisted EK at 0x81010001: matches the {} template", t.name());
            outln!("registration id: {}", hsm_tpm::registration_id(ek));
            outln!(
                "endorsement key (base64, for the enrollment): {}",
                base64::engine::general_purpose::STANDARD.encode(ek)
            );
        }
        (Some(ek), None) => {
            outln!("persisted EK at 0x81010001: matches neither the sdk nor the tcg template");
            outln!("registration id: {}", hsm_tpm::registration_id(ek));
            outln!(
                "endorsement key (base64, for the enrollment): {}",
                base64::engine::general_purpose::STANDARD.encode(ek)
            );
        }
        (None, _) => outln!("no EK persisted at 0x81010001 (the SDK creates one from the sdk template)"),
    }
    for (t, ek) in &report.candidates {
        let mark = if report.persisted.as_ref() == Some(ek) {
            " (persisted)"
        } else {
            ""
        };
        outln!(
            "candidate {:<3} template: registration id {}{mark}",
            t.name(),
            hsm_tpm::registration_id(ek)
        );
    }
    Ok(())
}

fn keygen(a: KeygenArgs) -> Result<(), Error> {
    let tcti = a.tcti.unwrap_or_else(hsm_tpm::default_tcti);
    let location = match (a.handle, a.blob) {
        (Some(h), None) => KeyLocation::Persistent(hsm_tpm::parse_persistent_handle(&h)?),
        (None, Some(p)) => {
            KeyLocation::Blob(std::path::absolute(&p).map_err(|e| Error::io("resolve key blob path", &p, e))?)
        }
        _ => return Err(Error::invalid("keygen", "give --handle or --blob")),
    };
    let conn = TpmConn::shared(&tcti)?;
    let key = hsm_tpm::generate_key(conn, location.clone())?;
    let token = SignerToken {
        location,
        tcti: Some(tcti),
    };
    outln!("token: {}", token.encode()?);
    out!("{}", pem("PUBLIC KEY", &key.public_key_spki()?));
    Ok(())
}

fn csr(a: CsrArgs) -> Result<(), Error> {
    let t = match hsm_core::token::KeyToken::decode(&a.key)? {
        hsm_core::token::KeyToken::Tpm(t) => t,
        other => {
            return Err(Error::invalid(
                "--key",
                format!("expected a `tpm:` token, got a {} one", other.kind()),
            ));
        }
    };
    let tcti = t.tcti.clone().unwrap_or_else(hsm_tpm::default_tcti);
    let key = hsm_tpm::TpmKey::open(TpmConn::shared(&tcti)?, t.location)?;
    let csr = key.csr_pem(&a.common_name)?;
    match a.out {
        Some(path) => std::fs::write(&path, csr).map_err(|e| Error::io("write CSR", &path, e)),
        None => {
            out!("{csr}");
            Ok(())
        }
    }
}
