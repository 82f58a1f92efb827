//! `hsmctl enrollment`: the DPS enrollment record (service API `IndividualEnrollment` or
//! `EnrollmentGroup`) with the `attestation` object the Provisioning Service expects for a
//! configured identity:
//!
//! - x509 individual: `x509.clientCertificates.primary.certificate` = base64 of the PEM of the
//!   device certificate (DICE: the DeviceID certificate, which survives firmware updates; other
//!   backends: the leaf);
//! - x509 group: `x509.signingCertificates.primary.certificate` = base64 of the PEM of the CA
//!   (the last certificate of the presented chain, or `--certificate`);
//! - TPM: `tpm.endorsementKey` = base64 of the EK (`TPM2B_PUBLIC` as get_ek returns it), and the
//!   registration id = lowercase base32 of SHA-256(EK), unpadded;
//! - symmetric key: `symmetricKey.primaryKey` = the identity's device key, base64 (a key derived from
//!   a group key gives the individual enrollment of that one device).

use std::path::PathBuf;

use base64::Engine as _;
use clap::{Args, ValueEnum};
use hsm_core::config::Config;
use hsm_core::{Error, X509Identity};
use rustls_pki_types::CertificateDer;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Kind {
    X509,
    Tpm,
    SymmetricKey,
}

/// Print the DPS enrollment JSON (individual or group) for the configured identity.
#[derive(Debug, Args)]
pub struct EnrollmentArgs {
    /// Configuration file (default: $HSM_ABI_CONFIG).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Which identity: needed when the configuration has both [x509] and [tpm].
    #[arg(long, value_enum)]
    pub attestation: Option<Kind>,
    /// Make a group enrollment with this enrollment group id (x509 only).
    #[arg(long)]
    pub group: Option<String>,
    /// PEM certificate to enroll instead of the one chosen from the identity's chain (e.g. the
    /// root CA for a group).
    #[arg(long)]
    pub certificate: Option<PathBuf>,
}

pub fn run(args: EnrollmentArgs) -> Result<(), hsm_core::Error> {
    let record = record(&args)?;
    outln!(
        "{}",
        serde_json::to_string_pretty(&record).map_err(|e| Error::Internal(format!("JSON encoding: {e}")))?
    );
    Ok(())
}

/// The record for the configuration `args.config` (default: $HSM_ABI_CONFIG).
pub fn record(args: &EnrollmentArgs) -> Result<Value, Error> {
    let config = match &args.config {
        Some(p) => Config::from_file(p)?,
        None => Config::from_env()?,
    };
    enrollment(&config, args)
}

fn enrollment(config: &Config, args: &EnrollmentArgs) -> Result<Value, Error> {
    let configured: Vec<Kind> = [
        (config.x509.is_some(), Kind::X509),
        (config.tpm.is_some(), Kind::Tpm),
        (config.symmetric_key.is_some(), Kind::SymmetricKey),
    ]
    .into_iter()
    .filter_map(|(present, k)| present.then_some(k))
    .collect();
    let kind = match (args.attestation, configured.as_slice()) {
        (Some(k), _) => k,
        (None, [one]) => *one,
        (None, []) => {
            return Err(Error::config(
                &config.source,
                "x509",
                "has none of [x509], [tpm], [symmetric_key]",
            ));
        }
        (None, _) => {
            return Err(Error::invalid(
                "--attestation",
                format!("{} configures several identities: choose one", config.source),
            ));
        }
    };
    match kind {
        Kind::SymmetricKey => {
            if args.group.is_some() || args.certificate.is_some() {
                return Err(Error::invalid(
                    "--group",
                    "a symmetric-key identity gives its individual enrollment (a group key is not read back)",
                ));
            }
            let id = hsm::open_symmetric(config)?;
            let key = hsm_core::sas::encode_key(&id.symmetric_key()?);
            Ok(json!({
                "registrationId": id.registration_id()?,
                "attestation": { "type": "symmetricKey", "symmetricKey": { "primaryKey": key.as_str() } },
                "provisioningStatus": "enabled"
            }))
        }
        Kind::X509 => x509_enrollment(config, args),
        Kind::Tpm => {
            if args.group.is_some() || args.certificate.is_some() {
                return Err(Error::invalid(
                    "--group",
                    "TPM enrollments are individual and carry the EK, not a certificate",
                ));
            }
            let tpm = hsm::open_tpm_attestation(config, "a TPM enrollment (it carries the EK)")?;
            Ok(tpm_enrollment(&tpm.endorsement_key()?))
        }
    }
}

fn x509_enrollment(config: &Config, args: &EnrollmentArgs) -> Result<Value, Error> {
    let section = config.section("x509")?;
    // The DICE backend is opened directly: its individual enrollment is the DeviceID.
    let (chain, device_cert, registration_id) = if section.backend == "dice" {
        let id = hsm_riot::DiceX509::from_section(section)?;
        (id.certificate_chain()?, id.chain().device_id.clone(), id.common_name()?)
    } else {
        let id = hsm::open_x509(config)?;
        let chain = id.certificate_chain()?;
        let leaf = chain
            .first()
            .cloned()
            .ok_or_else(|| Error::parse("x509 identity", "the certificate chain is empty"))?;
        (chain, leaf, id.common_name()?)
    };
    let explicit = match &args.certificate {
        Some(p) => {
            let certs = hsm_core::pem::parse_certificates(
                &format!("certificate {}", p.display()),
                &hsm_core::pem::read_file("read certificate", p)?,
            )?;
            Some(certs[0].clone())
        }
        None => None,
    };
    Ok(match &args.group {
        None => individual_x509(&registration_id, &explicit.unwrap_or(device_cert)),
        Some(group) => {
            let ca = match explicit {
                Some(c) => c,
                None => group_ca(&chain)?,
            };
            group_x509(group, &ca)
        }
    })
}

/// The CA of a group: the last certificate of the presented chain, which must be a CA and not
/// the leaf.
fn group_ca(chain: &[CertificateDer<'static>]) -> Result<CertificateDer<'static>, Error> {
    let last = match chain {
        [_, .., last] => last,
        _ => {
            return Err(Error::invalid(
                "--group",
                "the identity's chain holds only its leaf: give the group CA with --certificate",
            ));
        }
    };
    let (_, c) = x509_parser::parse_x509_certificate(last).map_err(|e| Error::parse("certificate", e))?;
    if !c.is_ca() {
        return Err(Error::invalid(
            "--group",
            format!(
                "the last certificate of the chain ({}) is not a CA: give one with --certificate",
                c.subject()
            ),
        ));
    }
    Ok(last.clone())
}

fn pem_b64(cert: &CertificateDer<'_>) -> String {
    base64::engine::general_purpose::STANDARD.encode(hsm_core::pem::certificates_to_pem(std::slice::from_ref(cert)))
}

fn individual_x509(registration_id: &str, cert: &CertificateDer<'_>) -> Value {
    json!({
        "registrationId": registration_id,
        "attestation": {
            "type": "x509",
            "x509": { "clientCertificates": { "primary": { "certificate": pem_b64(cert) } } }
        },
        "provisioningStatus": "enabled"
    })
}

fn group_x509(group: &str, ca: &CertificateDer<'_>) -> Value {
    json!({
        "enrollmentGroupId": group,
        "attestation": {
            "type": "x509",
            "x509": { "signingCertificates": { "primary": { "certificate": pem_b64(ca) } } }
        },
        "provisioningStatus": "enabled"
    })
}

fn tpm_enrollment(ek: &[u8]) -> Value {
    json!({
        "registrationId": hsm_tpm::registration_id(ek),
        "attestation": {
            "type": "tpm",
            "tpm": { "endorsementKey": base64::engine::general_purpose::STANDARD.encode(ek) }
        },
        "provisioningStatus": "enabled"
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_pem(v: &Value) -> Vec<CertificateDer<'static>> {
        let pem = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap();
        hsm_core::pem::parse_certificates("enrollment certificate", &pem).unwrap()
    }

    fn args(group: Option<&str>) -> EnrollmentArgs {
        EnrollmentArgs {
            config: None,
            attestation: None,
            group: group.map(str::to_string),
            certificate: None,
        }
    }

    #[test]
    fn tpm_record_matches_the_shared_vector() {
        let ek: Vec<u8> = (0u8..64).collect();
        let v = tpm_enrollment(&ek);
        assert_eq!(
            v["registrationId"],
            "7xvltlhtoebwfpjgldg4tiu6r6ohk76ptaiwaoumir6ndwivceea"
        );
        assert_eq!(v["attestation"]["type"], "tpm");
        let b = base64::engine::general_purpose::STANDARD
            .decode(v["attestation"]["tpm"]["endorsementKey"].as_str().unwrap())
            .unwrap();
        assert_eq!(b, ek);
    }

    #[test]
    fn dice_individual_and_group_records() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("uds.bin");
        hsm_riot::create_uds_file(&uds).unwrap();
        std::fs::write(dir.path().join("fw.bin"), b"fw").unwrap();
        let base = "[x509]\nbackend = \"dice\"\nuds_file = \"uds.bin\"\nfirmware_file = \"fw.bin\"\nregistration_id = \"dice-7\"\n";
        let cfg = Config::from_toml(base, "t.toml", dir.path()).unwrap();
        let id = hsm_riot::DiceX509::from_section(cfg.section("x509").unwrap()).unwrap();

        let v = enrollment(&cfg, &args(None)).unwrap();
        assert_eq!(v["registrationId"], "dice-7");
        assert_eq!(v["attestation"]["type"], "x509");
        let certs = decode_pem(&v["attestation"]["x509"]["clientCertificates"]["primary"]["certificate"]);
        assert_eq!(certs, vec![id.chain().device_id.clone()]);

        // Group: the DeviceID signed by a group CA; the record carries that CA.
        let pki = hsm_riot::pki::generate(&hsm_riot::pki::PkiOptions {
            out_dir: dir.path().join("pki"),
            root_cn: "Root".into(),
            intermediate_cn: None,
            device_ids: vec![],
            csr_files: vec![],
            key_kind: hsm_riot::pki::KeyKind::P256,
            leaf_days: 1,
            ca_days: 10,
            issuer: None,
            overwrite: false,
        })
        .unwrap();
        let text = format!("{base}ca_certificate = \"pki/root-ca.cert.pem\"\nca_key = \"pki/root-ca.key.pem\"\n");
        let cfg = Config::from_toml(&text, "t.toml", dir.path()).unwrap();
        let v = enrollment(&cfg, &args(Some("fleet"))).unwrap();
        assert_eq!(v["enrollmentGroupId"], "fleet");
        assert!(v.get("registrationId").is_none());
        let certs = decode_pem(&v["attestation"]["x509"]["signingCertificates"]["primary"]["certificate"]);
        let root = hsm_core::pem::parse_certificates("r", &std::fs::read(pki.root.unwrap()).unwrap()).unwrap();
        assert_eq!(certs, root);
    }

    #[test]
    fn group_needs_a_ca_in_the_chain() {
        let e = group_ca(&[CertificateDer::from(vec![0u8])]).unwrap_err().to_string();
        assert!(e.contains("--certificate"), "{e}");
        let cfg = Config::from_toml("[tpm]\nbackend = \"tpm\"\n", "t.toml", std::path::Path::new("")).unwrap();
        let e = enrollment(&cfg, &args(Some("g"))).unwrap_err().to_string();
        assert!(e.contains("TPM enrollments are individual"), "{e}");
    }
}
