//! `verify_issued_chain`: chains for another key, a wrong CN, a broken link, or expired are refused.

use dps_device::{Error, verify_issued_chain};

use crate::common::*;
use crate::setup::*;

#[tokio::test]
async fn verify_refuses_a_chain_for_another_key_a_wrong_cn_and_a_broken_link() {
    let emu = emulator(vec![sym_enrollment("verify-me")]);
    let (_, csr, chain) = register_issued(&emu, false, "verify-me").await;
    let (_, other_csr) = self::csr("verify-me");
    let refused = |r: Result<(), Error>| match r {
        Err(Error::IssuedChain(m)) => m,
        other => panic!("expected IssuedChain, got {other:?}"),
    };
    let m = refused(verify_issued_chain(&chain, &other_csr, "verify-me"));
    assert!(m.contains("not the key of our CSR"), "{m}");
    let m = refused(verify_issued_chain(&chain, &csr, "another-id"));
    assert!(m.contains("is not the registration id 'another-id'"), "{m}");
    let stranger = Ca::root("dps-emulator issuing CA");
    let m = refused(verify_issued_chain(
        &[chain[0].clone(), stranger.der().to_vec()],
        &csr,
        "verify-me",
    ));
    assert!(m.contains("certificate 0 is not signed by certificate 1"), "{m}");
    let m = refused(verify_issued_chain(&chain[..1], &csr, "verify-me"));
    assert!(m.contains("root is not self-signed"), "{m}");
    let m = refused(verify_issued_chain(&[], &csr, "verify-me"));
    assert!(m.contains("empty"), "{m}");
}

#[test]
fn verify_refuses_an_expired_chain() {
    let ca = Ca::root_with("CA", KeyType::P384, |_| {});
    let (key, csr) = csr("expired");
    let mut leaf = test_support::pki::params("expired");
    leaf.not_before = rcgen::date_time_ymd(2020, 1, 1);
    leaf.not_after = rcgen::date_time_ymd(2020, 2, 1);
    let leaf = ca.issue(leaf, key);
    let chain = vec![leaf.leaf().to_vec(), ca.der().to_vec()];
    match verify_issued_chain(&chain, &csr, "expired") {
        Err(Error::IssuedChain(m)) => assert!(m.contains("certificate 0 is not valid now"), "{m}"),
        other => panic!("expected IssuedChain, got {other:?}"),
    }
}
