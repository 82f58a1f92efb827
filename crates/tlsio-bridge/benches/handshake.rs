//! Client CPU per full mutual-TLS handshake (TLS 1.3, ECDSA P-256 client key), measured as the
//! client thread's own CPU time (`CLOCK_THREAD_CPUTIME_ID`), against a rustls server thread
//! on 127.0.0.1 that requires the client certificate, keeps no sessions (every handshake is a
//! full one) and answers one byte after the handshake (so a rejected certificate would show).
//!
//! - **rust, in-memory key**: blocking rustls client, key in memory (hsm-core file backend, ring)
//!   behind [`tlsio_bridge::HsmSigningKey`];
//! - **rust, SoftHSM key**: the same with the key in SoftHSM2 (`hsm_pkcs11::open_signer`);
//! - **SoftHSM sign**: CPU of one signature on that key (SoftHSM runs in this thread);
//! - **C tlsio, SoftHSM key**: the SDK's path: `tlsio_rustls_get_interface_description()`'s
//!   table, called as a C program calls it: one IO created with the `pkcs11:` token, then per
//!   handshake open, a `dowork` loop (100 us apart, as a device loop sleeps), send, receive,
//!   close. Its CPU is counted inside the table's calls (the bridge's work); the total with the
//!   caller's loop and sleeps is printed too;
//! - **C tlsio, new IO each**: as the SDK connects (its HTTP transport per registration, its
//!   MQTT transport per reconnect): per handshake a new IO created, its options set, the
//!   handshake as above, and destroyed; CPU inside every one of those calls.
//!
//! Targets (issue 6): rust SoftHSM <= rust in-memory + 1.5 x SoftHSM sign; C tlsio <= 1.1 x
//! rust SoftHSM. Rounds alternate the variants; each ratio is the median of per-round ratios.
//!
//! Run: `cargo bench -p tlsio-bridge --bench handshake` (needs `softhsm2`); `BENCH_ROUNDS=N`,
//! `BENCH_HANDSHAKES=N` change the 9 rounds of 60 handshakes per variant.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
// The C path is called through its C function table, as a C program calls it.
#![allow(unsafe_code)]

use std::ffi::{CString, c_char, c_int, c_uchar, c_void};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use hsm_core::{Curve, KeyAlgorithm, SignatureScheme, SigningKey};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, SanType};
use rustls::server::WebPkiClientVerifier;
use test_support::bench::median;

/// CPU time of the calling thread, in nanoseconds.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: a valid out-pointer; CLOCK_THREAD_CPUTIME_ID is always available on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0);
    u64::try_from(ts.tv_sec).unwrap() * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap()
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct Pki {
    server_ca_pem: String,
    server_chain: Vec<rustls::pki_types::CertificateDer<'static>>,
    server_key: KeyPair,
    client_ca_pem: String,
    client_ca_key: KeyPair,
    client_ca_params: CertificateParams,
}

fn ca(name: &str) -> (String, KeyPair, CertificateParams) {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    (params.self_signed(&key).unwrap().pem(), key, params)
}

fn pki() -> Pki {
    let (server_ca_pem, server_ca_key, server_ca_params) = ca("bench server root");
    let server_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.subject_alt_names = vec![SanType::IpAddress("127.0.0.1".parse().unwrap())];
    let server_cert = p
        .signed_by(&server_key, &Issuer::from_params(&server_ca_params, &server_ca_key))
        .unwrap();
    let (client_ca_pem, client_ca_key, client_ca_params) = ca("bench device root");
    Pki {
        server_ca_pem,
        server_chain: vec![server_cert.der().clone()],
        server_key,
        client_ca_pem,
        client_ca_key,
        client_ca_params,
    }
}

/// A client certificate (PEM) for the public key `spki` (DER SubjectPublicKeyInfo).
fn client_cert(pki: &Pki, cn: &str, spki: &[u8]) -> String {
    let public = rcgen::SubjectPublicKeyInfo::from_der(spki).unwrap();
    let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
    p.distinguished_name.push(DnType::CommonName, cn);
    p.signed_by(&public, &Issuer::from_params(&pki.client_ca_params, &pki.client_ca_key))
        .unwrap()
        .pem()
}

/// A server thread: full handshakes only, client certificate required, one byte each way.
fn serve(pki: &Pki) -> u16 {
    let provider = tlsio_bridge::provider();
    let roots = tlsio_bridge::roots_from_pem("device root", pki.client_ca_pem.as_bytes()).unwrap();
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .unwrap();
    let key = hsm_core::pem::parse_private_key("server key", pki.server_key.serialize_pem().as_bytes()).unwrap();
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(pki.server_chain.clone(), key)
        .unwrap();
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            let Ok(tcp) = tcp else { continue };
            tcp.set_nodelay(true).unwrap();
            let conn = rustls::ServerConnection::new(config.clone()).unwrap();
            let mut tls = rustls::StreamOwned::new(conn, tcp);
            let mut b = [0u8; 1];
            if tls.read_exact(&mut b).is_ok() {
                let _ = tls.write_all(b"y");
                let _ = tls.flush();
            }
        }
    });
    port
}

/// One handshake with the blocking rustls client; returns the client thread's CPU time.
fn rust_handshake(config: &Arc<rustls::ClientConfig>, port: u16) -> u64 {
    let start = thread_cpu_ns();
    let tcp = TcpStream::connect(("127.0.0.1", port)).unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let conn = rustls::ClientConnection::new(config.clone(), name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(b"x").unwrap();
    let mut b = [0u8; 1];
    tls.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"y");
    thread_cpu_ns() - start
}

fn rust_config(pki: &Pki, chain_pem: &str, key: Arc<dyn SigningKey>) -> Arc<rustls::ClientConfig> {
    let chain = hsm_core::pem::parse_certificates("client", chain_pem.as_bytes()).unwrap();
    let roots = tlsio_bridge::roots_from_pem("server root", pki.server_ca_pem.as_bytes()).unwrap();
    let certified = tlsio_bridge::certified_key_from_parts(chain, key).unwrap();
    let mut config =
        tlsio_bridge::client_config_with_key(roots, Some(certified), tlsio_bridge::TlsVersions::Tls13Only).unwrap();
    config.resumption = rustls::client::Resumption::disabled();
    Arc::new(config)
}

// ---- the C table, as xio.h / tlsio.h declare it ----

type OnOpen = Option<unsafe extern "C" fn(*mut c_void, c_int)>;
type OnBytes = Option<unsafe extern "C" fn(*mut c_void, *const c_uchar, usize)>;
type OnError = Option<unsafe extern "C" fn(*mut c_void)>;
type OnSend = Option<unsafe extern "C" fn(*mut c_void, c_int)>;
type OnClose = Option<unsafe extern "C" fn(*mut c_void)>;

#[repr(C)]
struct IoInterface {
    retrieveoptions: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    create: Option<unsafe extern "C" fn(*mut c_void) -> *mut c_void>,
    destroy: Option<unsafe extern "C" fn(*mut c_void)>,
    open: Option<
        unsafe extern "C" fn(*mut c_void, OnOpen, *mut c_void, OnBytes, *mut c_void, OnError, *mut c_void) -> c_int,
    >,
    close: Option<unsafe extern "C" fn(*mut c_void, OnClose, *mut c_void) -> c_int>,
    send: Option<unsafe extern "C" fn(*mut c_void, *const c_void, usize, OnSend, *mut c_void) -> c_int>,
    dowork: Option<unsafe extern "C" fn(*mut c_void)>,
    setoption: Option<unsafe extern "C" fn(*mut c_void, *const c_char, *const c_void) -> c_int>,
}

#[repr(C)]
struct TlsioConfig {
    hostname: *const c_char,
    port: c_int,
    underlying_io_interface: *const IoInterface,
    underlying_io_parameters: *mut c_void,
}

unsafe extern "C" {
    fn tlsio_rustls_get_interface_description() -> *const IoInterface;
}

/// The caller's pause between `dowork` calls: `BENCH_SLEEP_US` (default 100; 0 yields).
fn pause() {
    static US: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let us = *US.get_or_init(|| env_usize("BENCH_SLEEP_US", 100) as u64);
    if us == 0 {
        std::thread::yield_now();
    } else {
        std::thread::sleep(Duration::from_micros(us));
    }
}

/// Calls made into the table (to report calls per handshake).
static CALLS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

#[derive(Default)]
struct Events {
    opened: c_int,
    open_result: c_int,
    received: usize,
    errors: usize,
    closed: usize,
}

unsafe extern "C" fn on_open(ctx: *mut c_void, r: c_int) {
    // SAFETY: the context is the `Events` of the running handshake.
    let e = unsafe { &mut *ctx.cast::<Events>() };
    e.opened += 1;
    e.open_result = r;
}
unsafe extern "C" fn on_bytes(ctx: *mut c_void, _b: *const c_uchar, n: usize) {
    // SAFETY: as above.
    unsafe { (*ctx.cast::<Events>()).received += n };
}
unsafe extern "C" fn on_error(ctx: *mut c_void) {
    // SAFETY: as above.
    unsafe { (*ctx.cast::<Events>()).errors += 1 };
}
unsafe extern "C" fn on_close(ctx: *mut c_void) {
    // SAFETY: as above.
    unsafe { (*ctx.cast::<Events>()).closed += 1 };
}

/// One IO of the C table, its options set once.
struct CTlsio {
    table: &'static IoInterface,
    handle: *mut c_void,
}

impl CTlsio {
    /// A new IO, its options set (CPU time inside the table's calls added to `inside`).
    fn new(port: u16, trusted_pem: &str, chain_pem: &str, token: &str) -> Self {
        Self::new_timed(port, trusted_pem, chain_pem, token, &mut 0)
    }

    fn new_timed(port: u16, trusted_pem: &str, chain_pem: &str, token: &str, inside: &mut u64) -> Self {
        // Make sure libhsm_abi is linked into this benchmark.
        let _ = hsm_abi::ffi::errors::last_error();
        // SAFETY: a static table.
        let table = unsafe { &*tlsio_rustls_get_interface_description() };
        let host = c"127.0.0.1";
        let mut cfg = TlsioConfig {
            hostname: host.as_ptr(),
            port: c_int::from(port),
            underlying_io_interface: std::ptr::null(),
            underlying_io_parameters: std::ptr::null_mut(),
        };
        let options: Vec<(CString, CString)> = [
            ("TrustedCerts", trusted_pem),
            ("x509certificate", chain_pem),
            ("x509privatekey", token),
        ]
        .into_iter()
        .map(|(n, v)| (CString::new(n).unwrap(), CString::new(v).unwrap()))
        .collect();
        let t0 = thread_cpu_ns();
        // SAFETY: a valid TLSIO_CONFIG; options are NUL-terminated strings.
        unsafe {
            let handle = (table.create.unwrap())((&raw mut cfg).cast());
            assert!(!handle.is_null());
            for (n, v) in &options {
                assert_eq!(
                    (table.setoption.unwrap())(handle, n.as_ptr(), v.as_ptr().cast()),
                    0,
                    "{n:?}"
                );
            }
            let v: c_int = 13;
            assert_eq!(
                (table.setoption.unwrap())(handle, c"tls_version".as_ptr(), (&raw const v).cast()),
                0
            );
            *inside += thread_cpu_ns() - t0;
            CTlsio { table, handle }
        }
    }

    /// What the SDK does per connection (its HTTP transport per registration, its MQTT
    /// transport per reconnect): a new IO with the same options, one handshake, destroy. CPU
    /// inside the table's calls, create and destroy included.
    fn fresh_handshake(port: u16, trusted_pem: &str, chain_pem: &str, token: &str) -> u64 {
        let mut inside = 0;
        let io = Self::new_timed(port, trusted_pem, chain_pem, token, &mut inside);
        inside += io.handshake().1;
        let t0 = thread_cpu_ns();
        drop(io);
        inside + (thread_cpu_ns() - t0)
    }

    /// One handshake through the table: the client thread's CPU time in total (with the
    /// caller's own loop and sleeps) and inside the table's functions only.
    fn handshake(&self) -> (u64, u64) {
        let mut ev = Events::default();
        let ctx = (&raw mut ev).cast::<c_void>();
        let mut inside = 0u64;
        let mut timed = |f: &mut dyn FnMut()| {
            let t0 = thread_cpu_ns();
            f();
            inside += thread_cpu_ns() - t0;
            CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        };
        let start = thread_cpu_ns();
        // SAFETY: a live handle; the callbacks' context outlives the open/close cycle.
        unsafe {
            let t = self.table;
            let h = self.handle;
            let mut rc = -1;
            timed(&mut || rc = (t.open.unwrap())(h, Some(on_open), ctx, Some(on_bytes), ctx, Some(on_error), ctx));
            assert_eq!(rc, 0);
            while (*ctx.cast::<Events>()).opened == 0 {
                timed(&mut || (t.dowork.unwrap())(h));
                pause();
            }
            // The SDK's numbering (MU_DEFINE_ENUM: IO_OPEN_RESULT_INVALID = 0, IO_OPEN_OK = 1).
            assert_eq!(
                (*ctx.cast::<Events>()).open_result,
                1, // IO_OPEN_OK, asserted against the SDK header by scripts/sdk-interop.sh
                "open failed"
            );
            timed(&mut || rc = (t.send.unwrap())(h, b"x".as_ptr().cast(), 1, None, ctx));
            assert_eq!(rc, 0);
            while (*ctx.cast::<Events>()).received == 0 && (*ctx.cast::<Events>()).errors == 0 {
                timed(&mut || (t.dowork.unwrap())(h));
                pause();
            }
            assert_eq!((*ctx.cast::<Events>()).received, 1);
            timed(&mut || rc = (t.close.unwrap())(h, Some(on_close), ctx));
            assert_eq!(rc, 0);
            assert_eq!((*ctx.cast::<Events>()).closed, 1);
        }
        (thread_cpu_ns() - start, inside)
    }
}

impl Drop for CTlsio {
    fn drop(&mut self) {
        // SAFETY: destroyed once.
        unsafe { (self.table.destroy.unwrap())(self.handle) };
    }
}

fn mean_us(samples: &[u64]) -> f64 {
    samples.iter().sum::<u64>() as f64 / samples.len() as f64 / 1000.0
}

fn main() {
    let rounds = env_usize("BENCH_ROUNDS", 9);
    let per_round = env_usize("BENCH_HANDSHAKES", 60);
    let pki = pki();
    let port = serve(&pki);

    // In-memory key (hsm-core file backend over ring).
    let mem_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mem_signer: Arc<dyn SigningKey> =
        Arc::new(hsm_core::file::FileKey::from_pem("bench key", mem_key.serialize_pem().as_bytes()).unwrap());
    let mem_chain = client_cert(&pki, "bench-memory", &mem_signer.public_key_spki().unwrap());
    let mem_config = rust_config(&pki, &mem_chain, mem_signer);

    // SoftHSM2 key, generated on a token in a temp dir.
    let hsm = hsm_pkcs11::testing::SoftHsm::create().expect("SoftHSM2 must be installed (apt-get install softhsm2)");
    // SAFETY: single-threaded here (the server thread does not touch the environment), before
    // the PKCS#11 module is loaded.
    unsafe { std::env::set_var("SOFTHSM2_CONF", hsm.conf()) };
    hsm.init_token("bench", "so-pin-0000", "user-pin-1234").unwrap();
    let pin = hsm.pin_file("user.pin", "user-pin-1234\n").unwrap();
    let base = format!(
        "pkcs11:token=bench;object=tls;id=%01?module-path={}&pin-source=file:{}",
        hsm.module().display(),
        pin.display()
    );
    let uri = hsm_pkcs11::tools::generate_key_pair(&base, KeyAlgorithm::Ec(Curve::P256)).unwrap();
    let token = uri.to_token_string();
    let hsm_signer = hsm_pkcs11::open_signer(&token).unwrap();
    let hsm_chain = client_cert(&pki, "bench-softhsm", &hsm_signer.public_key_spki().unwrap());
    let hsm_config = rust_config(&pki, &hsm_chain, hsm_signer.clone());
    let c_io = CTlsio::new(port, &pki.server_ca_pem, &hsm_chain, &token);

    // Profiling aid: `BENCH_ONLY=rust`, `c` or `c-new` runs only that SoftHSM variant.
    match std::env::var("BENCH_ONLY").as_deref() {
        Ok("rust") => {
            let n: u64 = (0..rounds * per_round).map(|_| rust_handshake(&hsm_config, port)).sum();
            println!(
                "rust, SoftHSM key: {:.1} us",
                n as f64 / (rounds * per_round) as f64 / 1000.0
            );
            return;
        }
        Ok("c-new") => {
            let n: u64 = (0..rounds * per_round)
                .map(|_| CTlsio::fresh_handshake(port, &pki.server_ca_pem, &hsm_chain, &token))
                .sum();
            println!(
                "C tlsio, new IO per handshake: {:.1} us",
                n as f64 / (rounds * per_round) as f64 / 1000.0
            );
            return;
        }
        Ok("c") => {
            let n: u64 = (0..rounds * per_round).map(|_| c_io.handshake().1).sum();
            println!(
                "C tlsio, SoftHSM key: {:.1} us",
                n as f64 / (rounds * per_round) as f64 / 1000.0
            );
            return;
        }
        _ => {}
    }
    // Warm-up.
    for _ in 0..10 {
        rust_handshake(&mem_config, port);
        rust_handshake(&hsm_config, port);
        c_io.handshake();
        CTlsio::fresh_handshake(port, &pki.server_ca_pem, &hsm_chain, &token);
    }

    let (mut mem_all, mut hsm_all, mut c_all, mut sign_all) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut budget_ratio, mut c_ratio, mut c_total_ratio, mut c_total_all) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut fresh_all, mut fresh_ratio) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let mem: Vec<u64> = (0..per_round).map(|_| rust_handshake(&mem_config, port)).collect();
        let hsm_hs: Vec<u64> = (0..per_round).map(|_| rust_handshake(&hsm_config, port)).collect();
        let (c_total, c): (Vec<u64>, Vec<u64>) = (0..per_round).map(|_| c_io.handshake()).unzip();
        let fresh: Vec<u64> = (0..per_round)
            .map(|_| CTlsio::fresh_handshake(port, &pki.server_ca_pem, &hsm_chain, &token))
            .collect();
        let sign: Vec<u64> = (0..per_round * 4)
            .map(|i| {
                let start = thread_cpu_ns();
                hsm_signer
                    .sign(SignatureScheme::EcdsaP256Sha256, format!("message {i}").as_bytes())
                    .unwrap();
                thread_cpu_ns() - start
            })
            .collect();
        let (m, h, cc, s) = (mean_us(&mem), mean_us(&hsm_hs), mean_us(&c), mean_us(&sign));
        budget_ratio.push(h / (m + 1.5 * s));
        c_ratio.push(cc / h);
        c_total_ratio.push(mean_us(&c_total) / h);
        fresh_ratio.push(mean_us(&fresh) / h);
        fresh_all.extend(fresh);
        c_total_all.extend(c_total);
        mem_all.extend(mem);
        hsm_all.extend(hsm_hs);
        c_all.extend(c);
        sign_all.extend(sign);
    }
    let calls = CALLS.load(std::sync::atomic::Ordering::Relaxed) as f64 / (2 * (10 + rounds * per_round)) as f64;
    // The cost of reading the clock around each call, which the inside figure includes.
    let clock_ns = {
        let t0 = thread_cpu_ns();
        for _ in 0..1000 {
            std::hint::black_box(thread_cpu_ns());
        }
        (thread_cpu_ns() - t0) as f64 / 1000.0
    };
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    println!("client CPU per full TLS 1.3 mutual-TLS handshake (P-256), {rounds} rounds x {per_round}");
    println!(
        "load average: {}",
        load.split_whitespace().take(3).collect::<Vec<_>>().join(" ")
    );
    println!("  rust, in-memory key : {:8.1} us", mean_us(&mem_all));
    println!("  rust, SoftHSM key   : {:8.1} us", mean_us(&hsm_all));
    println!("  SoftHSM sign        : {:8.1} us", mean_us(&sign_all));
    println!(
        "  C tlsio, SoftHSM key: {:8.1} us inside the table's calls",
        mean_us(&c_all)
    );
    println!(
        "                        {:8.1} us with the caller's dowork loop (BENCH_SLEEP_US between calls)",
        mean_us(&c_total_all)
    );
    println!(
        "  C tlsio, new IO each : {:8.1} us inside the table's calls (create, options, handshake, destroy)",
        mean_us(&fresh_all)
    );
    println!("  ({calls:.1} table calls per handshake; reading the thread CPU clock costs {clock_ns:.0} ns)");
    let b = median(budget_ratio);
    let r = median(c_ratio);
    println!(
        "rust SoftHSM / (in-memory + 1.5 x sign): {b:.3} (target <= 1.0: {})",
        if b <= 1.0 { "met" } else { "NOT met" }
    );
    println!(
        "C tlsio / rust SoftHSM:                  {r:.3} (target <= 1.1: {})",
        if r <= 1.1 { "met" } else { "NOT met" }
    );
    println!("(with the caller's loop: {:.3})", median(c_total_ratio));
    let f = median(fresh_ratio);
    println!(
        "C tlsio, new IO each / rust SoftHSM:     {f:.3} (target <= 1.1: {})",
        if f <= 1.1 { "met" } else { "NOT met" }
    );
}
