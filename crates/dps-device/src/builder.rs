//! [`ProvisioningClient::builder`]: a client from the id scope alone, with the global endpoint, HTTPS
//! and the Mozilla root store (webpki-roots) unless told otherwise; the operating system's store
//! ([`ClientBuilder::system_roots`]), a PEM file or a root store of the caller's instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Error, Options, ProvisioningClient, Transport};

/// The global device endpoint of Azure DPS: the builder's default.
pub const GLOBAL_ENDPOINT: &str = "global.azure-devices-provisioning.net";

/// Which CAs verify the service.
#[derive(Debug)]
enum Trust {
    /// The Mozilla root store (webpki-roots), as for the public Azure endpoints.
    Mozilla,
    /// The caller's store.
    Roots(rustls::RootCertStore),
    /// The CAs of a PEM file, read by `build`.
    PemFile(PathBuf),
    /// The operating system's store (rustls-native-certs: `SSL_CERT_FILE`/`SSL_CERT_DIR` when set),
    /// read by `build`.
    System,
}

/// Builds a [`ProvisioningClient`] (or its blocking facade); from [`ProvisioningClient::builder`].
#[derive(Debug)]
#[must_use = "a builder does nothing until build()"]
pub struct ClientBuilder {
    id_scope: String,
    endpoint: String,
    transport: Transport,
    trust: Trust,
    options: Options,
}

impl ProvisioningClient {
    /// A client for `id_scope`: [`GLOBAL_ENDPOINT`], [`Transport::Https`], the Mozilla root store and
    /// [`Options::default`] until the builder's calls say otherwise.
    ///
    /// ```no_run
    /// # async fn f(identity: std::sync::Arc<dyn hsm_core::X509Identity>) -> Result<(), dps_device::Error> {
    /// use dps_device::{Attestation, ProvisioningClient, Transport};
    /// let client = ProvisioningClient::builder("0ne00000000")
    ///     .transport(Transport::Mqtt)
    ///     .timeout(std::time::Duration::from_secs(30))
    ///     .build()?;
    /// let assignment = client.register(&Attestation::X509(identity), None).await?;
    /// # Ok(()) }
    /// ```
    pub fn builder(id_scope: &str) -> ClientBuilder {
        ClientBuilder {
            id_scope: id_scope.to_string(),
            endpoint: GLOBAL_ENDPOINT.to_string(),
            transport: Transport::Https,
            trust: Trust::Mozilla,
            options: Options::default(),
        }
    }
}

impl ClientBuilder {
    /// The device endpoint, `host[:port]` (the port defaults to the transport's,
    /// [`Transport::default_port`]).
    pub fn endpoint(mut self, endpoint: &str) -> Self {
        self.endpoint = endpoint.to_string();
        self
    }

    /// How to reach the service (default [`Transport::Https`]); TPM attestation is HTTPS only.
    pub fn transport(mut self, transport: Transport) -> Self {
        self.transport = transport;
        self
    }

    /// Trust the CA certificates of a PEM file (read by [`ClientBuilder::build`]) instead of the
    /// Mozilla root store.
    pub fn trust_pem_file(mut self, path: impl AsRef<Path>) -> Self {
        self.trust = Trust::PemFile(path.as_ref().to_path_buf());
        self
    }

    /// Trust these roots instead of the Mozilla root store.
    pub fn trust_roots(mut self, roots: rustls::RootCertStore) -> Self {
        self.trust = Trust::Roots(roots);
        self
    }

    /// Trust the operating system's root store (read by [`ClientBuilder::build`]; the
    /// `SSL_CERT_FILE` and `SSL_CERT_DIR` variables name another, as for OpenSSL) instead of the
    /// Mozilla root store: for a device whose roots are managed with the system's (a corporate
    /// TLS-inspecting proxy's CA, an updated bundle).
    pub fn system_roots(mut self) -> Self {
        self.trust = Trust::System;
        self
    }

    /// The one deadline of a registration ([`Options::timeout`]).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.options.timeout = timeout;
        self
    }

    /// Every option at once (a later [`ClientBuilder::timeout`] still applies).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// The client; fails when the trusted PEM file cannot be read or holds no usable CA, or the
    /// system store has no usable CA.
    pub fn build(self) -> Result<ProvisioningClient, Error> {
        let roots = match self.trust {
            Trust::Mozilla => rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            },
            Trust::Roots(roots) => roots,
            Trust::PemFile(path) => read_roots(&path)?,
            Trust::System => system_roots()?,
        };
        Ok(ProvisioningClient::new(
            &self.endpoint,
            &self.id_scope,
            self.transport,
            roots,
            self.options,
        ))
    }

    /// The blocking facade of the same client.
    pub fn build_blocking(self) -> Result<crate::blocking::ProvisioningClient, Error> {
        crate::blocking::ProvisioningClient::from_client(self.build()?)
    }
}

/// The operating system's roots that rustls can use as anchors; an error when there are none.
fn system_roots() -> Result<rustls::RootCertStore, Error> {
    let found = rustls_native_certs::load_native_certs();
    let mut roots = rustls::RootCertStore::empty();
    // A store may hold certificates rustls cannot use as anchors: those are left out.
    let (_usable, _unusable) = roots.add_parsable_certificates(found.certs);
    if roots.is_empty() {
        let source: crate::Source = match found.errors.into_iter().next() {
            Some(e) => Box::new(e),
            None => "no usable CA certificate in it".into(),
        };
        return Err(Error::SystemRoots { source });
    }
    Ok(roots)
}

fn read_roots(path: &Path) -> Result<rustls::RootCertStore, Error> {
    let what = format!("trusted CA file {}", path.display());
    let roots = hsm_core::pem::read_file("read trusted CA", path)
        .and_then(|pem| tlsio_bridge::roots_from_pem(&what, &pem))
        .map_err(|source| Error::TrustRoots {
            path: path.to_path_buf(),
            source,
        })?;
    match roots.is_empty() {
        true => Err(Error::InvalidRequest(format!("{what} holds no CA certificate"))),
        false => Ok(roots),
    }
}
