//! Open the `[x509]` identity of a configuration file in one call and sign a message with its key
//! (on the token, TPM or file the configuration names; the private key is never read).
//!
//! ```text
//! cargo run -p hsm --example sign -- device.toml "message to sign"
//! ```
//!
//! Prints the registration id (the leaf's common name), the signature scheme and the signature in
//! hex.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(config), message) = (args.next(), args.next()) else {
        eprintln!("usage: sign CONFIG.toml [MESSAGE]");
        return ExitCode::from(2);
    };
    let message = message.unwrap_or_else(|| "hello".into());
    match sign(&config, message.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn sign(config: &str, message: &[u8]) -> hsm::Result<()> {
    let identity = hsm::open_x509_file(config)?;
    let key = identity.signing_key()?;
    let scheme = key
        .schemes()
        .first()
        .copied()
        .ok_or_else(|| hsm::Error::unsupported("this key", "any signature scheme"))?;
    let signature = key.sign(scheme, message)?;
    println!("registration id: {}", identity.common_name()?);
    println!("scheme: {scheme:?}");
    let hex: String = signature.iter().map(|b| format!("{b:02x}")).collect();
    println!("signature: {hex}");
    Ok(())
}
