//! Opening the transport: TCP, and TLS over it with rustls (the `ring` provider).

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use serde::Deserialize;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// TLS as written in a carrier's config (`[tls]`). The presence of the table turns TLS on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file of the CA certificates to trust for this carrier. Default none.
    pub ca_file: Option<PathBuf>,
    /// Also trust the operating system's roots. Default: true when `ca_file` is absent,
    /// false when it is given.
    pub system_roots: Option<bool>,
    /// PEM file of our client certificate chain, for carriers that want mutual TLS. Default
    /// none. Needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM file of the client certificate's private key. Default none.
    pub client_key: Option<PathBuf>,
    /// The name to send in SNI and check the certificate against. Default: the host of the
    /// first entry of `hosts`.
    pub server_name: Option<String>,
}

/// TLS settings loaded and ready to connect with.
#[derive(Clone)]
pub struct TlsSettings {
    connector: TlsConnector,
    server_name: ServerName<'static>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// Why TLS settings could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("{key} {path}: {problem}")]
    File {
        /// The config key naming the file.
        key: &'static str,
        /// The file.
        path: String,
        /// What went wrong.
        problem: String,
    },
    /// No certificate to trust: no `ca_file`, and the system store was off or empty.
    #[error("no CA certificate to trust (set ca_file or system_roots)")]
    NoRoots,
    /// `client_cert` without `client_key`, or the other way round.
    #[error("client_cert and client_key go together")]
    ClientPair,
    /// The server name is not a valid DNS name or IP address.
    #[error("server_name {0:?} is not a DNS name or IP address")]
    ServerName(String),
    /// rustls refused the combination (e.g. a key that does not match the certificate).
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

fn read_certs(key: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let fail = |problem: String| TlsError::File {
        key,
        path: path.display().to_string(),
        problem,
    };
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .map_err(|e| fail(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| fail(e.to_string()))?;
    if certs.is_empty() {
        return Err(fail("no certificate in the file".into()));
    }
    Ok(certs)
}

impl TlsConfig {
    /// Reads the files and builds the client configuration. `default_host` is the server
    /// name when none is configured.
    pub fn load(&self, default_host: &str) -> Result<TlsSettings, TlsError> {
        let mut roots = rustls::RootCertStore::empty();
        if let Some(path) = &self.ca_file {
            for cert in read_certs("ca_file", path)? {
                roots.add(cert).map_err(|e| TlsError::File {
                    key: "ca_file",
                    path: path.display().to_string(),
                    problem: e.to_string(),
                })?;
            }
        }
        if self.system_roots.unwrap_or(self.ca_file.is_none()) {
            // Unreadable entries of the system store are skipped, as browsers do.
            let native = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(native.certs);
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots);
        let config = match (&self.client_cert, &self.client_key) {
            (Some(cert), Some(key)) => {
                let chain = read_certs("client_cert", cert)?;
                let key = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::File {
                    key: "client_key",
                    path: key.display().to_string(),
                    problem: e.to_string(),
                })?;
                builder.with_client_auth_cert(chain, key)?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err(TlsError::ClientPair),
        };
        let name = self.server_name.as_deref().unwrap_or(default_host);
        let server_name = ServerName::try_from(name.to_owned())
            .map_err(|_| TlsError::ServerName(name.to_owned()))?;
        Ok(TlsSettings {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
        })
    }
}

impl TlsSettings {
    /// Runs the TLS handshake over an open TCP connection.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        self.connector.connect(self.server_name.clone(), tcp).await
    }
}

/// Opens a TCP connection within `timeout`, with Nagle off (PDUs are written in batches
/// already; a small PDU must not wait for an ACK).
pub async fn connect_tcp(host: &str, port: u16, timeout: Duration) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}
