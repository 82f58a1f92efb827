//! The issued identity's store (`[x509] backend = "issued"`) as `hsmctl provision
//! --issue-certificate` and `hsmctl certificate` both use it: the store of a configuration and its
//! status report.

use hsm_core::config::Config;
use hsm_issued::CertificateInfo;
use hsm_issued::Store;

use crate::CliError;

/// The store of the configuration's `[x509] backend = "issued"` section.
pub fn store(config: &Config) -> Result<Store, CliError> {
    let section = config.section("x509")?;
    if section.backend != "issued" {
        return Err(CliError::Usage(format!(
            "{}: [x509] has backend \"{}\"; certificates are issued into a backend = \"issued\" store",
            config.source, section.backend
        )));
    }
    Ok(hsm_issued::store_from_section(section, hsm::open_signer)?)
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn time(t: i64) -> String {
    x509_parser::time::ASN1Time::from_timestamp(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| t.to_string())
}

/// The status report: current certificate, renewal due date, pending and retired generations.
pub fn status(store: &Store, now: i64) -> Result<String, CliError> {
    let state = store.state()?;
    let mut s = format!(
        "store:            {}\nregistration id:  {}\n",
        store.dir().display(),
        store.registration_id()
    );
    match &state.current {
        None => s.push_str("certificate:      none issued yet (hsmctl certificate request)\n"),
        Some(g) => {
            let chain = store.read_chain(g)?;
            let leaf = chain
                .first()
                .ok_or_else(|| hsm_core::Error::parse("certificate chain", "the chain is empty"))?;
            let info = CertificateInfo::of(leaf)?;
            s.push_str(&format!("generation:       {}\n", g.generation));
            s.push_str(&format!("subject:          {}\n", info.subject));
            s.push_str(&format!("issuer:           {}\n", info.issuer));
            s.push_str(&format!("key:              {}\n", g.key));
            s.push_str(&format!(
                "valid:            {} to {}\n",
                time(info.not_before),
                time(info.not_after)
            ));
            let due = if now > info.not_after {
                "  (EXPIRED: renew now)"
            } else if info.renewal_due(now) {
                "  (due now)"
            } else {
                ""
            };
            s.push_str(&format!(
                "renewal due:      {} ({} % of the validity){due}\n",
                time(info.renew_at),
                hsm_issued::RENEW_AT_PERCENT
            ));
        }
    }
    if let Some(g) = &state.retired {
        s.push_str(&format!(
            "previous:         generation {} kept until the current one is confirmed (hsmctl certificate confirm)\n",
            g.generation
        ));
    }
    if let Some(g) = &state.pending {
        s.push_str(&format!(
            "pending:          generation {} (a request not answered yet; the next request makes a new key)\n",
            g.generation
        ));
    }
    Ok(s)
}
