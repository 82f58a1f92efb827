//! Secrets on the command line (issue 12): keys can come from a file, standard input or the
//! environment; the command-line forms still work but warn on stderr; no message quotes a key
//! or a PIN, also for a URI typo that puts `pin-value` in the path.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write as _;
use std::process::{Command, Output, Stdio};

const GROUP_KEY: &str = "9okJC6lKhmgI33KikQOMre4DvF+vacd9NUl2ATGVC44YeJfOCvzyC1C6KzfcqEqVG3BG8p7Vq5TwEGGfadbhiQ==";
const PIN: &str = "Secret-PIN-4711";

fn hsmctl(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_hsmctl"));
    c.args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn a_key_from_a_file_stdin_or_the_environment_and_a_warning_for_the_command_line() {
    let base = ["derive-key", "--registration-id", "device-1"];
    let on_cmdline = hsmctl(&[&base[..], &["--group-key", GROUP_KEY]].concat(), &[], None);
    assert!(on_cmdline.status.success(), "{}", text(&on_cmdline.stderr));
    let expected = text(&on_cmdline.stdout);
    let err = text(&on_cmdline.stderr);
    assert!(
        err.contains("warning: --group-key puts the key on the command line"),
        "{err}"
    );
    assert!(!err.contains(GROUP_KEY), "{err}");

    let from_env = hsmctl(
        &[&base[..], &["--group-key-env", "GROUP_KEY_FOR_TEST"]].concat(),
        &[("GROUP_KEY_FOR_TEST", GROUP_KEY)],
        None,
    );
    assert!(from_env.status.success(), "{}", text(&from_env.stderr));
    assert_eq!(text(&from_env.stdout), expected);
    assert!(from_env.stderr.is_empty(), "{}", text(&from_env.stderr));

    let from_stdin = hsmctl(
        &[&base[..], &["--group-key-file", "-"]].concat(),
        &[],
        Some(&format!("{GROUP_KEY}\n")),
    );
    assert!(from_stdin.status.success(), "{}", text(&from_stdin.stderr));
    assert_eq!(text(&from_stdin.stdout), expected);
    assert!(from_stdin.stderr.is_empty(), "{}", text(&from_stdin.stderr));

    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("group.key");
    std::fs::write(&f, GROUP_KEY).unwrap();
    let from_file = hsmctl(
        &[&base[..], &["--group-key-file", f.to_str().unwrap()]].concat(),
        &[],
        None,
    );
    assert_eq!(text(&from_file.stdout), expected);

    let unset = hsmctl(
        &[&base[..], &["--group-key-env", "NO_SUCH_VARIABLE_4711"]].concat(),
        &[],
        None,
    );
    assert!(!unset.status.success());
    assert!(text(&unset.stderr).contains("NO_SUCH_VARIABLE_4711"));

    // The device key of `sas`, the same way.
    let sas = [
        "sas",
        "dps",
        "--id-scope",
        "0ne00000001",
        "--registration-id",
        "device-1",
        "--expiry",
        "2000000000",
    ];
    let a = hsmctl(&[&sas[..], &["--key", "AAECAw=="]].concat(), &[], None);
    assert!(a.status.success(), "{}", text(&a.stderr));
    assert!(text(&a.stderr).contains("warning: --key puts the key on the command line"));
    let b = hsmctl(&[&sas[..], &["--key-env", "K"]].concat(), &[("K", "AAECAw==")], None);
    assert!(b.status.success(), "{}", text(&b.stderr));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn a_pin_on_the_command_line_warns_and_is_never_quoted() {
    // pin-value given properly: a warning that does not contain the PIN (the command then fails:
    // there is no such module).
    let uri = format!("pkcs11:token=t;object=k?module-path=/nonexistent/module.so&pin-value={PIN}");
    let out = hsmctl(&["pkcs11", "list", "--uri", &uri], &[], None);
    let err = text(&out.stderr);
    assert!(err.contains("warning: a PKCS#11 URI with pin-value"), "{err}");
    assert!(!err.contains(PIN) && !text(&out.stdout).contains(PIN), "{err}");

    // The typo: no `?`, so `pin-value=...` would become part of the object label.
    let typo = format!("pkcs11:token=t;object=k1&pin-value={PIN}");
    let out = hsmctl(&["pkcs11", "list", "--uri", &typo, "--log", "trace"], &[], None);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.contains("the query starts with `?`"), "{err}");
    assert!(!err.contains(PIN) && !text(&out.stdout).contains(PIN), "{err}");

    // A bad character in pin-value: the error does not show it.
    let bad = "pkcs11:token=t?pin-value=12 34";
    let out = hsmctl(&["pkcs11", "list", "--uri", bad], &[], None);
    let err = text(&out.stderr);
    assert!(
        err.contains("must be percent-encoded") && err.contains("not shown"),
        "{err}"
    );
    assert!(!err.contains("` `") && !err.contains("12 34"), "{err}");
}

/// Issue 21, item 6: a configuration with a missing quote after a key names the file, the line
/// and the key, never the key's value, whether hsmctl reads it from --config or HSM_ABI_CONFIG
/// (and also in its log at the most verbose level).
#[test]
fn a_syntax_error_in_the_configuration_does_not_print_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("device.toml");
    std::fs::write(
        &config,
        format!("[symmetric_key]\nbackend = \"file\"\nregistration_id = \"d1\"\nsymmetric_key = \"{GROUP_KEY}\n"),
    )
    .unwrap();
    let path = config.to_str().unwrap();
    for out in [
        hsmctl(
            &["--log", "trace", "provision", "--config", path, "--id-scope", "0ne"],
            &[],
            None,
        ),
        hsmctl(
            &["--log", "trace", "provision", "--id-scope", "0ne"],
            &[("HSM_ABI_CONFIG", path)],
            None,
        ),
        hsmctl(&["sas", "dps", "--id-scope", "0ne", "--config", path], &[], None),
    ] {
        assert!(!out.status.success());
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert!(
            !stdout.contains(GROUP_KEY) && !stderr.contains(GROUP_KEY),
            "{stdout}{stderr}"
        );
        assert!(
            stderr.contains("device.toml") && stderr.contains("line 4") && stderr.contains("symmetric_key = <hidden>"),
            "{stderr}"
        );
    }
}
