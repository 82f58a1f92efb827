/// Every error of the emulator: configuration, files, sockets and TLS set-up.
///
/// Errors that a device's request causes are not here: they become HTTP responses.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration is wrong (names the source file, the key and what was expected) or a
    /// file could not be read: the core's `Config` and `Io` errors, one definition for the
    /// library and the emulator.
    #[error(transparent)]
    Core(#[from] hsm_core::Error),
    /// The listening socket could not be set up.
    #[error("{op} 127.0.0.1:{port}: {source}")]
    Socket {
        /// What was being done (binding, reading the address, starting the listener thread).
        op: &'static str,
        /// The port asked for (0: any free port).
        port: u16,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// The server's own CA or certificate could not be generated.
    #[error("generating the server {what}: {reason}")]
    Certificate {
        /// Which one (the CA, the server certificate, the issuing CA).
        what: &'static str,
        /// What went wrong.
        reason: String,
    },
    /// The durable state store (`--state-dir`) could not be opened or set up.
    #[error("the state store {}: {reason}", .path.display())]
    Store {
        /// The state directory.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The TLS server configuration or an enrollment's trust store could not be built.
    #[error("TLS set-up ({what}): {source}")]
    Tls {
        /// Which configuration or trust store.
        what: String,
        /// rustls's error.
        #[source]
        source: rustls::Error,
    },
}

impl Error {
    pub(crate) fn config(source_name: impl Into<String>, key: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Core(hsm_core::Error::config(source_name, key, message))
    }
}
