//! The `[tls]` (listener) and `[clusters.NAME.tls]` (upstream) sections: certificate, key
//! and CA files, checked to exist when the configuration is loaded.

use super::{ConfigError, invalid};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// `[tls]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileListenerTls {
    cert: PathBuf,
    key: PathBuf,
    client_ca: Option<PathBuf>,
}

/// `[clusters.NAME.tls]` as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct FileUpstreamTls {
    ca: Option<PathBuf>,
    server_name: Option<String>,
    cert: Option<PathBuf>,
    key: Option<PathBuf>,
}

/// TLS on the gRPC listener (ALPN `h2`).
#[derive(Clone, Debug, PartialEq)]
pub struct ListenerTls {
    /// PEM certificate chain, leaf first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM CA certificates; when set, clients must present a certificate it signed (mTLS).
    pub client_ca: Option<PathBuf>,
}

/// TLS to a cluster's endpoints.
#[derive(Clone, Debug, PartialEq)]
pub struct UpstreamTls {
    /// PEM CA certificates to trust; `None`: the system's roots.
    pub ca: Option<PathBuf>,
    /// Name sent as SNI and checked against the certificate; `None`: the endpoint's host.
    pub server_name: Option<String>,
    /// Client certificate chain and key for mTLS, if any.
    pub client_identity: Option<(PathBuf, PathBuf)>,
}

fn existing_file(key: &str, path: &Path) -> Result<PathBuf, ConfigError> {
    if path.is_file() {
        Ok(path.to_owned())
    } else {
        Err(invalid(
            key,
            format!("{} is not a readable file", path.display()),
        ))
    }
}

impl FileListenerTls {
    pub(super) fn check(self) -> Result<ListenerTls, ConfigError> {
        Ok(ListenerTls {
            cert: existing_file("tls.cert", &self.cert)?,
            key: existing_file("tls.key", &self.key)?,
            client_ca: self
                .client_ca
                .map(|p| existing_file("tls.client_ca", &p))
                .transpose()?,
        })
    }
}

impl FileUpstreamTls {
    pub(super) fn check(self, cluster_key: &str) -> Result<UpstreamTls, ConfigError> {
        let key = |name: &str| format!("{cluster_key}.tls.{name}");
        let client_identity = match (self.cert, self.key) {
            (None, None) => None,
            (Some(cert), Some(private_key)) => Some((
                existing_file(&key("cert"), &cert)?,
                existing_file(&key("key"), &private_key)?,
            )),
            (Some(_), None) => return Err(invalid(key("key"), "`cert` is set without `key`")),
            (None, Some(_)) => return Err(invalid(key("cert"), "`key` is set without `cert`")),
        };
        if let Some(name) = &self.server_name
            && rustls_pki_types::ServerName::try_from(name.as_str()).is_err()
        {
            return Err(invalid(
                key("server_name"),
                format!("{name:?} is not a DNS name or IP address"),
            ));
        }
        Ok(UpstreamTls {
            ca: self.ca.map(|p| existing_file(&key("ca"), &p)).transpose()?,
            server_name: self.server_name,
            client_identity,
        })
    }
}
