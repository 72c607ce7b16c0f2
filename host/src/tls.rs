//! TLS with rustls: the listener's acceptor (ALPN `h2`, optional client certificates) and
//! per-cluster upstream connectors (CA file or system roots, SNI, optional client
//! certificate). Each keeps its PEM paths and can be reloaded in place: new handshakes use
//! the new certificates, open connections keep theirs, a bad file keeps the old ones.

use crate::config::{Config, ListenerTls, UpstreamTls};
use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::TcpStream;

/// Why a certificate, key or CA could not be used.
#[derive(Debug, thiserror::Error)]
#[error("TLS: {what} {}: {message}", path.display())]
pub struct TlsError {
    /// What the file is for.
    pub what: &'static str,
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(what: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let error = |message: String| TlsError {
        what,
        path: path.to_owned(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(e.to_string()))?;
    if certs.is_empty() {
        return Err(error("no PEM certificate in the file".into()));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError {
        what: "private key",
        path: path.to_owned(),
        message: e.to_string(),
    })
}

fn roots(what: &'static str, path: &Path) -> Result<RootCertStore, TlsError> {
    let mut store = RootCertStore::empty();
    for cert in read_certs(what, path)? {
        store.add(cert).map_err(|e| TlsError {
            what,
            path: path.to_owned(),
            message: e.to_string(),
        })?;
    }
    Ok(store)
}

fn system_roots() -> RootCertStore {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!("system CA certificates: {error}");
    }
    let mut store = RootCertStore::empty();
    let (added, ignored) = store.add_parsable_certificates(found.certs);
    tracing::debug!(added, ignored, "system CA certificates loaded");
    store
}

/// The listener's TLS settings, reloadable.
#[derive(Debug)]
pub struct ServerTls {
    files: ListenerTls,
    config: ArcSwap<ServerConfig>,
}

impl ServerTls {
    /// Reads the certificate, key and client CA.
    pub fn load(files: &ListenerTls) -> Result<ServerTls, TlsError> {
        Ok(ServerTls {
            config: ArcSwap::from_pointee(server_config(files)?),
            files: files.clone(),
        })
    }

    /// Re-reads the files; on error the current settings stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.config.store(Arc::new(server_config(&self.files)?));
        Ok(())
    }

    /// An acceptor with the current settings.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.config.load_full())
    }

    fn paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.files.cert.clone(), self.files.key.clone()];
        paths.extend(self.files.client_ca.clone());
        paths
    }
}

fn server_config(files: &ListenerTls) -> Result<ServerConfig, TlsError> {
    let certs = read_certs("certificate", &files.cert)?;
    let key = read_key(&files.key)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions");
    let builder = match &files.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier = WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots("client CA", ca)?),
                provider,
            )
            .build()
            .map_err(|e| TlsError {
                what: "client CA",
                path: ca.clone(),
                message: e.to_string(),
            })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder.with_single_cert(certs, key).map_err(|e| TlsError {
        what: "certificate and key",
        path: files.cert.clone(),
        message: e.to_string(),
    })?;
    // http/1.1 too, so an HTTP/1 client over TLS gets the clear 505 rather than a failed
    // handshake.
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

/// A cluster's upstream TLS settings, reloadable.
#[derive(Debug)]
pub struct ClientTls {
    files: UpstreamTls,
    config: ArcSwap<ClientConfig>,
}

impl ClientTls {
    /// Reads the CA (or the system roots) and the client identity.
    pub fn load(files: &UpstreamTls) -> Result<ClientTls, TlsError> {
        Ok(ClientTls {
            config: ArcSwap::from_pointee(client_config(files)?),
            files: files.clone(),
        })
    }

    /// Re-reads the files; on error the current settings stay.
    pub fn reload(&self) -> Result<(), TlsError> {
        self.config.store(Arc::new(client_config(&self.files)?));
        Ok(())
    }

    /// Runs the TLS handshake on `tcp` to endpoint `address` (`host:port`), with ALPN `h2`.
    pub async fn connect(
        &self,
        address: &str,
        tcp: TcpStream,
    ) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
        let host = match &self.files.server_name {
            Some(name) => name.clone(),
            None => endpoint_host(address).to_owned(),
        };
        let name = ServerName::try_from(host.clone())
            .map_err(|e| format!("{address}: TLS server name {host:?}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(self.config.load_full())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("{address}: TLS handshake failed: {e}"))?;
        if stream.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(format!(
                "{address}: the upstream did not agree to HTTP/2 (ALPN h2)"
            ));
        }
        Ok(stream)
    }

    fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.files.ca.iter().cloned().collect();
        if let Some((cert, key)) = &self.files.client_identity {
            paths.extend([cert.clone(), key.clone()]);
        }
        paths
    }
}

/// The host of `host:port`, without IPv6 brackets.
fn endpoint_host(address: &str) -> &str {
    let host = address.rsplit_once(':').map_or(address, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

fn client_config(files: &UpstreamTls) -> Result<ClientConfig, TlsError> {
    let roots = match &files.ca {
        Some(ca) => roots("CA", ca)?,
        None => system_roots(),
    };
    let builder = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports the default versions")
        .with_root_certificates(roots);
    let mut config = match &files.client_identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs("client certificate", cert)?, read_key(key)?)
            .map_err(|e| TlsError {
                what: "client certificate and key",
                path: cert.clone(),
                message: e.to_string(),
            })?,
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// Every TLS setting of a running proxy: the listener's and each cluster's.
#[derive(Debug, Default)]
pub struct Certificates {
    listener: Option<Arc<ServerTls>>,
    clusters: Vec<Option<Arc<ClientTls>>>,
}

impl Certificates {
    /// Loads every certificate the configuration names.
    pub fn load(config: &Config) -> Result<Certificates, TlsError> {
        Ok(Certificates {
            listener: config
                .tls
                .as_ref()
                .map(|t| ServerTls::load(t).map(Arc::new))
                .transpose()?,
            clusters: config
                .clusters
                .iter()
                .map(|c| {
                    c.tls
                        .as_ref()
                        .map(|t| ClientTls::load(t).map(Arc::new))
                        .transpose()
                })
                .collect::<Result<_, _>>()?,
        })
    }

    /// The listener's TLS, if it has one.
    pub fn listener(&self) -> Option<&Arc<ServerTls>> {
        self.listener.as_ref()
    }

    /// The TLS of cluster `index` (configuration order), if it has one.
    pub fn cluster(&self, index: usize) -> Option<Arc<ClientTls>> {
        self.clusters.get(index).cloned().flatten()
    }

    /// Every file in use, for the watch.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut paths: Vec<PathBuf> = self.listener.iter().flat_map(|l| l.paths()).collect();
        for cluster in self.clusters.iter().flatten() {
            paths.extend(cluster.paths());
        }
        paths
    }

    /// Re-reads every file; each setting whose files are bad keeps its current value.
    /// Returns how many settings were reloaded and the errors.
    pub fn reload(&self) -> (usize, Vec<TlsError>) {
        let mut reloaded = 0;
        let mut errors = Vec::new();
        let results = self
            .listener
            .iter()
            .map(|l| l.reload())
            .chain(self.clusters.iter().flatten().map(|c| c.reload()));
        for result in results {
            match result {
                Ok(()) => reloaded += 1,
                Err(err) => {
                    tracing::error!(
                        "certificate reload refused, the previous one keeps serving: {err}"
                    );
                    errors.push(err);
                }
            }
        }
        if reloaded > 0 {
            tracing::info!(reloaded, "certificates reloaded");
        }
        (reloaded, errors)
    }

    /// True when no TLS is configured.
    pub fn is_empty(&self) -> bool {
        self.listener.is_none() && self.clusters.iter().all(Option::is_none)
    }
}

#[cfg(test)]
mod tests {
    use super::endpoint_host;

    #[test]
    fn endpoint_host_strips_port_and_brackets() {
        assert_eq!(endpoint_host("example.com:443"), "example.com");
        assert_eq!(endpoint_host("[::1]:50051"), "::1");
        assert_eq!(endpoint_host("127.0.0.1:1"), "127.0.0.1");
    }
}
