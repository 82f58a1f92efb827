//! When a certificate is due for renewal (at 80 % of its validity), and what `hsmctl certificate status`
//! shows of it.

use hsm_core::Result;
use rustls_pki_types::CertificateDer;

/// What `hsmctl certificate status` shows of one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateInfo {
    /// The subject's distinguished name.
    pub subject: String,
    /// The issuer's distinguished name.
    pub issuer: String,
    /// Validity, seconds since the epoch.
    pub not_before: i64,
    /// End of the validity, seconds since the epoch.
    pub not_after: i64,
    /// When renewal is due: at 80 % of the validity (DPS issues for 7 to 90 days).
    pub renew_at: i64,
}

/// The fraction of the validity after which renewal is due.
pub const RENEW_AT_PERCENT: i64 = 80;

impl CertificateInfo {
    /// Read the certificate `leaf`.
    pub fn of(leaf: &CertificateDer<'_>) -> Result<Self> {
        use hsm_core::x509;
        let c = x509::parse("certificate", leaf)?.tbs_certificate;
        let (from, to) = (
            x509::unix_time(&c.validity.not_before),
            x509::unix_time(&c.validity.not_after),
        );
        Ok(CertificateInfo {
            subject: x509::name_to_string(&c.subject),
            issuer: x509::name_to_string(&c.issuer),
            not_before: from,
            not_after: to,
            renew_at: from + (to - from) * RENEW_AT_PERCENT / 100,
        })
    }

    /// Whether renewal is due at `now` (seconds since the epoch).
    pub fn renewal_due(&self, now: i64) -> bool {
        now >= self.renew_at
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn renewal_is_due_at_80_percent_of_the_validity() {
        let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
        let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        p.not_before = rcgen::date_time_ymd(2026, 1, 1);
        p.not_after = rcgen::date_time_ymd(2026, 1, 31);
        let cert = p.self_signed(&key).unwrap();
        let info = CertificateInfo::of(cert.der()).unwrap();
        let day = 86_400;
        assert_eq!(info.not_after - info.not_before, 30 * day);
        assert_eq!(info.renew_at, info.not_before + 24 * day);
        assert!(!info.renewal_due(info.renew_at - 1));
        assert!(info.renewal_due(info.renew_at));
    }
}
