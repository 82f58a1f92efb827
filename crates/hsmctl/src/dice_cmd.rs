//! `hsmctl dice init` (create a UDS) and `hsmctl dice chain` (print a DICE identity's
//! DeviceID/Alias chain and registration id for enrollment).

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hsm_core::config::Config;
use hsm_core::{Error, X509Identity};
use hsm_riot::tcbinfo::TcbInfo;
use hsm_riot::{DiceOptions, DiceX509, Firmware, Fwid, Validity};
use sha2::{Digest as _, Sha256};

#[derive(Debug, Subcommand)]
pub enum DiceCommand {
    /// Create a Unique Device Secret file: 32 bytes from the OS random number generator, mode
    /// 0600 (an existing file is never replaced). Prints an [x509] configuration section.
    Init(InitArgs),
    /// Print the DeviceID/Alias certificate chain (PEM) and the registration id to enroll.
    Chain(ChainArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to write the UDS.
    #[arg(long)]
    pub uds_file: PathBuf,
    /// Registration id for the printed configuration section.
    #[arg(long, default_value = "dice-device-0001")]
    pub registration_id: String,
    /// Firmware image for the printed configuration section.
    #[arg(long, default_value = "firmware.bin")]
    pub firmware_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct ChainArgs {
    /// Configuration whose [x509] section has backend = "dice" (default: $HSM_ABI_CONFIG,
    /// unless --uds-file is given).
    #[arg(long, conflicts_with = "uds_file")]
    pub config: Option<PathBuf>,
    /// The UDS file (instead of a configuration).
    #[arg(long, requires = "registration_id")]
    pub uds_file: Option<PathBuf>,
    /// Firmware image to measure (with --uds-file).
    #[arg(long, requires = "uds_file", conflicts_with = "firmware_digest")]
    pub firmware_file: Option<PathBuf>,
    /// SHA-256 of the firmware, hex (with --uds-file).
    #[arg(long, requires = "uds_file")]
    pub firmware_digest: Option<String>,
    /// Registration id: CN of the Alias and DeviceID certificates (with --uds-file).
    #[arg(long)]
    pub registration_id: Option<String>,
    /// Group CA certificate (PEM) that signs the DeviceID certificate (with --uds-file).
    #[arg(long, requires_all = ["ca_key", "uds_file"])]
    pub ca_cert: Option<PathBuf>,
    /// The group CA's private key (PEM).
    #[arg(long, requires = "ca_cert")]
    pub ca_key: Option<PathBuf>,
    /// Also write alias.cert.pem, device-id.cert.pem and chain.pem into this directory.
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Print only the PEM chain.
    #[arg(long)]
    pub pem: bool,
}

pub fn run(cmd: DiceCommand) -> Result<(), hsm_core::Error> {
    match cmd {
        DiceCommand::Init(a) => {
            out!("{}", init(&a)?);
            Ok(())
        }
        DiceCommand::Chain(a) => {
            let id = open(&a)?;
            if let Some(dir) = &a.out_dir {
                write_files(&id, dir)?;
            }
            if a.pem {
                out!("{}", hsm_core::pem::certificates_to_pem(&id.certificate_chain()?));
            } else {
                out!("{}", describe(&id)?);
            }
            Ok(())
        }
    }
}

fn init(a: &InitArgs) -> Result<String, Error> {
    hsm_riot::create_uds_file(&a.uds_file)?;
    hsm_riot::check_registration_id("--registration-id", &a.registration_id)?;
    Ok(format!(
        "wrote a {}-byte UDS to {} (mode 0600); keep it secret, back it up if the identity must survive\n\
         \n\
         [x509]\n\
         backend = \"dice\"\n\
         uds_file = \"{}\"\n\
         firmware_file = \"{}\"   # or firmware_digest = \"<SHA-256, hex>\"\n\
         registration_id = \"{}\"\n",
        hsm_riot::UDS_NEW_LEN,
        a.uds_file.display(),
        a.uds_file.display(),
        a.firmware_file.display(),
        a.registration_id
    ))
}

fn open(a: &ChainArgs) -> Result<DiceX509, Error> {
    match &a.uds_file {
        Some(uds) => {
            let firmware = match (&a.firmware_file, &a.firmware_digest) {
                (Some(f), None) => Firmware::File(f.clone()),
                (None, Some(d)) => Firmware::Digest(Fwid::from_hex("--firmware-digest", d)?),
                _ => {
                    return Err(Error::invalid(
                        "--firmware-file",
                        "give --firmware-file or --firmware-digest with --uds-file",
                    ));
                }
            };
            DiceX509::new(&DiceOptions {
                uds_file: uds.clone(),
                firmware,
                registration_id: a.registration_id.clone().unwrap_or_default(),
                ca: a.ca_cert.clone().zip(a.ca_key.clone()),
                validity: Validity::default(),
            })
        }
        None => {
            let config = match &a.config {
                Some(p) => Config::from_file(p)?,
                None => Config::from_env()?,
            };
            let section = config.section("x509")?;
            if section.backend != "dice" {
                return Err(section.error(
                    "backend",
                    format!(
                        "is \"{}\"; `hsmctl dice chain` needs backend = \"dice\"",
                        section.backend
                    ),
                ));
            }
            DiceX509::from_section(section)
        }
    }
}

fn write_files(id: &DiceX509, dir: &Path) -> Result<(), Error> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io("create output directory", dir, e))?;
    let chain = id.certificate_chain()?;
    let files = [
        ("alias.cert.pem", vec![id.chain().alias.clone()]),
        ("device-id.cert.pem", vec![id.chain().device_id.clone()]),
        ("chain.pem", chain),
    ];
    for (name, certs) in files {
        let p = dir.join(name);
        std::fs::write(&p, hsm_core::pem::certificates_to_pem(&certs)).map_err(|e| Error::io("write", &p, e))?;
    }
    Ok(())
}

fn cert_line(what: &str, der: &[u8]) -> Result<String, Error> {
    let (_, c) = x509_parser::parse_x509_certificate(der).map_err(|e| Error::parse(what, e))?;
    let spki_hash = Sha256::digest(c.public_key().raw);
    Ok(format!(
        "{what}:\n  subject  {}\n  issuer   {}\n  serial   {}\n  validity {} .. {}\n  key      SHA-256(SPKI) {}\n",
        c.subject(),
        c.issuer(),
        c.raw_serial_as_string(),
        c.validity().not_before,
        c.validity().not_after,
        data_encoding::HEXLOWER.encode(&spki_hash)
    ))
}

fn describe(id: &DiceX509) -> Result<String, Error> {
    let chain = id.chain();
    let mut s = format!("registration id: {}\n", id.registration_id());
    s.push_str(&format!("firmware id (SHA-256): {}\n", id.fwid().to_hex()));
    s.push_str(&format!("alias key token: {}\n", id.alias_token()));
    s.push_str(&cert_line("Alias certificate", &chain.alias)?);
    if let Some(tcb) = TcbInfo::from_certificate(&chain.alias)? {
        let fwid = tcb.sha256_fwid().map(|d| data_encoding::HEXLOWER.encode(d));
        s.push_str(&format!(
            "  DiceTcbInfo (2.23.133.5.4.1): layer {}, fwid sha256 {}\n",
            tcb.layer.map(|l| l.to_string()).unwrap_or_else(|| "-".into()),
            fwid.unwrap_or_else(|| "-".into())
        ));
    }
    s.push_str(&cert_line("DeviceID certificate", &chain.device_id)?);
    if chain.ca_chain.is_empty() {
        s.push_str(
            "enrollment: individual, registration id above, primary certificate = the DeviceID certificate \
             (second below)\n",
        );
    } else {
        s.push_str(&format!(
            "enrollment: group, signing certificate = the group CA ({}), or its root\n",
            hsm_core::pem::common_name(&chain.ca_chain[0]).unwrap_or_else(|_| "no CN".into())
        ));
    }
    s.push_str("chain (Alias, DeviceID, CA...):\n");
    s.push_str(&hsm_core::pem::certificates_to_pem(&chain.to_vec()));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(subcommand)]
        c: DiceCommand,
    }

    fn parse(args: &[&str]) -> Result<DiceCommand, clap::Error> {
        T::try_parse_from(std::iter::once("dice").chain(args.iter().copied())).map(|t| t.c)
    }

    #[test]
    fn init_then_chain_from_files_and_from_a_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let uds = dir.path().join("uds.bin");
        let DiceCommand::Init(a) = parse(&["init", "--uds-file", uds.to_str().unwrap()]).unwrap() else {
            panic!("init expected")
        };
        let text = init(&a).unwrap();
        assert!(text.contains("backend = \"dice\""), "{text}");
        assert!(
            init(&a).unwrap_err().to_string().contains("uds.bin"),
            "never overwrites"
        );
        std::fs::write(dir.path().join("firmware.bin"), b"fw").unwrap();

        let cmd = parse(&[
            "chain",
            "--uds-file",
            uds.to_str().unwrap(),
            "--firmware-file",
            dir.path().join("firmware.bin").to_str().unwrap(),
            "--registration-id",
            "dice-device-0001",
            "--out-dir",
            dir.path().join("out").to_str().unwrap(),
        ])
        .unwrap();
        let DiceCommand::Chain(a) = cmd else {
            panic!("chain expected")
        };
        let id = open(&a).unwrap();
        write_files(&id, a.out_dir.as_deref().unwrap()).unwrap();
        let text = describe(&id).unwrap();
        for s in [
            "registration id: dice-device-0001",
            "DiceTcbInfo (2.23.133.5.4.1): layer 1, fwid sha256 ",
            "enrollment: individual",
            "alias key token: dice:uds-file=",
            "-----BEGIN CERTIFICATE-----",
        ] {
            assert!(text.contains(s), "missing {s}: {text}");
        }
        let dev = std::fs::read(dir.path().join("out/device-id.cert.pem")).unwrap();
        assert_eq!(
            hsm_core::pem::parse_certificates("d", &dev).unwrap(),
            vec![id.chain().device_id.clone()]
        );

        // The same identity through the configuration file written by `init`.
        let cfg = dir.path().join("hsm.toml");
        let section = format!(
            "[x509]\nbackend = \"dice\"\nuds_file = \"{}\"\nfirmware_file = \"firmware.bin\"\nregistration_id = \"dice-device-0001\"\n",
            uds.display()
        );
        std::fs::write(&cfg, section).unwrap();
        let DiceCommand::Chain(a) = parse(&["chain", "--config", cfg.to_str().unwrap()]).unwrap() else {
            panic!("chain expected")
        };
        assert_eq!(open(&a).unwrap().chain().device_id, id.chain().device_id);
    }

    #[test]
    fn chain_needs_a_dice_configuration() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("c.toml");
        std::fs::write(
            &cfg,
            "[x509]\nbackend = \"file\"\ncertificate = \"a\"\nprivate_key = \"b\"\n",
        )
        .unwrap();
        let DiceCommand::Chain(a) = parse(&["chain", "--config", cfg.to_str().unwrap()]).unwrap() else {
            panic!("chain expected")
        };
        let e = open(&a).unwrap_err().to_string();
        assert!(
            e.contains("x509.backend") && e.contains("needs backend = \"dice\""),
            "{e}"
        );
        assert!(
            parse(&["chain", "--uds-file", "u"]).is_err(),
            "--uds-file needs --registration-id"
        );
    }
}
