//! The TPM misbehaving: swtpm restarted mid-run, concurrent callers, a frozen TPM, the command timeout.

use hsm_core::SasSigner;
use hsm_tpm::{EkTemplate, Tpm, TpmOptions};

use crate::common::Swtpm;
use crate::{activate, opts};

#[test]
fn swtpm_restart_mid_run_recovers() {
    let mut sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let data = b"before and after";
    let expected = hsm_core::sas::hmac_sha256(&key, data).to_vec();
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
    sw.restart();
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
    // Stopped for good: a clear error, no hang.
    sw.stop();
    let e = t.sign_with_identity(data).unwrap_err().to_string();
    assert!(e.contains("TPM"), "{e}");
    sw.restart();
    assert_eq!(t.sign_with_identity(data).unwrap(), expected);
}

#[test]
fn concurrent_callers_are_serialized() {
    let sw = Swtpm::start();
    let mut t = Tpm::open(opts(&sw, EkTemplate::Sdk)).unwrap();
    let key = activate(&mut t);
    let t = std::sync::Arc::new(t);
    let threads: Vec<_> = (0..4)
        .map(|n| {
            let t = t.clone();
            let key = key.clone();
            std::thread::spawn(move || {
                for i in 0..50 {
                    let data = format!("thread {n} call {i}");
                    assert_eq!(
                        t.hmac(data.as_bytes()).unwrap(),
                        hsm_core::sas::hmac_sha256(&key, data.as_bytes())
                    );
                }
            })
        })
        .collect();
    for th in threads {
        th.join().unwrap();
    }
}

/// Issue 12, defect 5: a frozen TPM (swtpm stopped with SIGSTOP) fails a sign within the
/// command timeout with an error naming the TCTI and the timeout; a second caller waiting
/// behind it fails as soon as the first gives up, a third at once; after SIGCONT signing works
/// again (over a new connection).
#[test]
fn a_frozen_tpm_fails_signing_within_the_command_timeout() {
    use std::time::{Duration, Instant};

    let sw = Swtpm::start();
    let mut o = opts(&sw, EkTemplate::Sdk);
    o.command_timeout = Duration::from_millis(1500);
    let mut t = Tpm::open(o.clone()).unwrap();
    assert_eq!(t.connection().command_timeout(), Duration::from_millis(1500));
    let key = activate(&mut t);
    let other = Tpm::open(o).unwrap();
    assert_eq!(
        other.sign_with_identity(b"x").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"x").to_vec()
    );

    sw.signal("STOP");
    let start = Instant::now();
    let port = sw.port();
    let second = std::thread::spawn(move || {
        // Once the first command waits in the stopped TPM's socket, the first caller holds the connection.
        test_support::wait::until_true(
            "the first command to reach the stopped TPM",
            Duration::from_secs(10),
            || test_support::wait::unread(port) > 0,
        );
        let t0 = Instant::now();
        let r = other.sign_with_identity(b"second");
        (r, t0.elapsed(), other)
    });
    let e = t.sign_with_identity(b"first").unwrap_err().to_string();
    let first_took = start.elapsed();
    let (r2, second_took, other) = second.join().unwrap();
    let e2 = r2.unwrap_err().to_string();
    let t0 = Instant::now();
    let e3 = t.sign_with_identity(b"third").unwrap_err().to_string();
    let third_took = t0.elapsed();
    sw.signal("CONT");

    assert!(
        first_took >= Duration::from_millis(1400) && first_took < Duration::from_millis(2500),
        "{first_took:?}"
    );
    assert!(
        e.contains(&sw.tcti()) && e.contains("1500 ms") && e.contains("did not answer"),
        "{e}"
    );
    // The second caller waited behind the first and gave up when it did, not 1.5 s later.
    assert!(second_took < Duration::from_millis(1500), "{second_took:?}: {e2}");
    assert!(e2.contains(&sw.tcti()) && e2.contains("1500 ms"), "{e2}");
    assert!(third_took < Duration::from_millis(200), "{third_took:?}");
    assert!(e3.contains("earlier command"), "{e3}");

    // The TPM answers again: after the stuck command returns, signing works (reconnected).
    let sig = test_support::wait::until(
        "signing to recover after SIGCONT",
        test_support::wait::DEADLINE,
        || match t.sign_with_identity(b"again") {
            Ok(s) => Some(s),
            Err(e) => {
                assert!(e.to_string().contains("earlier command"), "{e}");
                None
            }
        },
    );
    assert_eq!(sig, hsm_core::sas::hmac_sha256(&key, b"again").to_vec());
    assert_eq!(
        other.sign_with_identity(b"y").unwrap(),
        hsm_core::sas::hmac_sha256(&key, b"y").to_vec()
    );
    // Long input (the raw HMAC sequence path) is bounded the same way.
    sw.signal("STOP");
    let t0 = Instant::now();
    let e = t.sign_with_identity(&[1u8; 3000]).unwrap_err().to_string();
    let took = t0.elapsed();
    sw.signal("CONT");
    assert!(
        took < Duration::from_millis(2500) && e.contains("1500 ms"),
        "{took:?}: {e}"
    );
}

#[test]
fn command_timeout_is_configurable_and_checked() {
    let dir = tempfile::tempdir().unwrap();
    let parse = |extra: &str| {
        let text = format!("[tpm]\nbackend = \"tpm\"\ntcti = \"swtpm:port=1\"\n{extra}\n");
        let cfg = hsm_core::config::Config::from_toml(&text, "t.toml", dir.path()).unwrap();
        TpmOptions::from_section(cfg.section("tpm").unwrap())
    };
    assert_eq!(parse("").unwrap().command_timeout, hsm_tpm::DEFAULT_COMMAND_TIMEOUT);
    assert_eq!(
        parse("command_timeout = 2.5").unwrap().command_timeout,
        std::time::Duration::from_millis(2500)
    );
    assert_eq!(
        parse("command_timeout = 30").unwrap().command_timeout,
        std::time::Duration::from_secs(30)
    );
    for bad in ["command_timeout = 0", "command_timeout = -1", "command_timeout = 1e9"] {
        let e = parse(bad).unwrap_err().to_string();
        assert!(e.contains("command_timeout"), "{bad}: {e}");
    }
}
