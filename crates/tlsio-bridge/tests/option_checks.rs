//! The PEM options a new IO is given again (the SDK creates one per connection with the same
//! options) are parsed once per process, and a bad value is refused every time. Its own test
//! binary: the count of checks is per process.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use test_support::pki::Ca;
use tlsio_bridge::io::options::{self, TlsOptions, checks_done};

#[test]
fn pem_options_are_checked_once_per_value_and_bad_ones_every_time() {
    let root = Ca::root("option checks root");
    let anchors = root.pem();
    let chain = root.leaf("option checks device").cert_pem();
    let start = checks_done();

    // The first IO: both values parsed.
    let mut first = TlsOptions::default();
    first.set_str(options::OPTION_TRUSTED_CERTS, &anchors).unwrap();
    first.set_str(options::OPTION_X509_ECC_CERT, &chain).unwrap();
    assert_eq!(checks_done(), start + 2);

    // Three more IOs with the same values, as the SDK reconnects: nothing parsed again.
    for _ in 0..3 {
        let mut next = TlsOptions::default();
        next.set_str(options::OPTION_TRUSTED_CERTS, &anchors).unwrap();
        next.set_str(options::OPTION_X509_CERT, &chain).unwrap();
        assert_eq!(next.trusted_certs.as_deref(), Some(anchors.as_str()));
        assert_eq!(next.certificate.as_deref(), Some(chain.as_str()));
    }
    assert_eq!(checks_done(), start + 2);

    // A value checked as a certificate chain is not thereby a checked trust bundle.
    let mut other = TlsOptions::default();
    other.set_str(options::OPTION_TRUSTED_CERTS, &chain).unwrap();
    assert_eq!(checks_done(), start + 3);

    // A bad value is refused each time it is set (never kept as checked).
    let bad = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
    for round in 1..=2 {
        let mut o = TlsOptions::default();
        assert!(o.set_str(options::OPTION_TRUSTED_CERTS, bad).is_err());
        assert!(o.set_str(options::OPTION_X509_CERT, bad).is_err());
        assert!(o.trusted_certs.is_none() && o.certificate.is_none());
        assert_eq!(checks_done(), start + 3 + 2 * round);
    }
}
