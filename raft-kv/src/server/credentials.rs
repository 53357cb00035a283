//! What a client presents to a secured cluster: the CA to check nodes against (and
//! optionally its own certificate), and a bearer token; and where the CLI finds them.
//!
//! The CLI looks, in order, at `--ca`/`--cert`/`--key`/`--token` (or `RAFT_KV_CA`,
//! `RAFT_KV_CERT`, `RAFT_KV_KEY`, `RAFT_KV_TOKEN`), then at a credentials directory:
//! `--credentials-dir` (`RAFT_KV_CREDENTIALS_DIR`), else `./raft-kv-data/credentials`,
//! which `raft-kv dev-cluster` writes. So next to a dev cluster every command just works.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http;

use crate::server::tls::{self, TlsError};

/// Files `raft-kv dev-cluster` writes into its credentials directory.
pub mod files {
    /// The CA certificate.
    pub const CA_CERT: &str = "ca.pem";
    /// A client certificate issued by the CA.
    pub const CLIENT_CERT: &str = "client.pem";
    /// Its key.
    pub const CLIENT_KEY: &str = "client.key";
    /// An admin bearer token (one line).
    pub const ADMIN_TOKEN: &str = "admin.token";
    /// The token file nodes load (`--tokens`).
    pub const TOKENS: &str = "tokens.toml";
    /// Node `id`'s certificate file name.
    pub fn node_cert(id: u64) -> String {
        format!("node-{id}.pem")
    }
    /// Node `id`'s key file name.
    pub fn node_key(id: u64) -> String {
        format!("node-{id}.key")
    }
}

/// The credentials directory of a dev cluster with data dir `data_dir`.
pub fn dev_credentials_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("credentials")
}

/// TLS client settings and a bearer token; both optional (a plaintext, open cluster needs
/// neither).
#[derive(Clone, Default)]
pub struct Credentials {
    /// Trust and identity for `https` endpoints; endpoints without a scheme use TLS when
    /// this is set.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("tls", &self.tls.is_some())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl Credentials {
    /// The TLS settings for `endpoint`: required for `https://`, none for `http://`, and
    /// these credentials' own for an endpoint without a scheme.
    pub fn tls_for(&self, endpoint: &str) -> Result<Option<Arc<rustls::ClientConfig>>, String> {
        if endpoint.starts_with("https://") {
            let config = self.tls.clone();
            return config
                .map(Some)
                .ok_or_else(|| format!("{endpoint}: https needs the cluster's CA (--ca)"));
        }
        if endpoint.starts_with("http://") {
            return Ok(None);
        }
        Ok(self.tls.clone())
    }

    /// The `Authorization` header value for the token, if any.
    pub fn authorization(&self) -> Result<Option<http::HeaderValue>, String> {
        let Some(token) = &self.token else {
            return Ok(None);
        };
        http::HeaderValue::from_str(&format!("Bearer {token}"))
            .map(Some)
            .map_err(|_| "the token has characters a header cannot carry".to_string())
    }
}

/// Why credentials could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// A certificate or key file is unusable.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// A token file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A certificate was given without its key, or the other way round.
    #[error("give --cert and --key together")]
    HalfIdentity,
}

/// Credential sources as given on the command line or in the environment.
#[derive(Clone, Debug, Default)]
pub struct CredentialSources {
    /// CA certificate file.
    pub ca: Option<PathBuf>,
    /// Client certificate file.
    pub cert: Option<PathBuf>,
    /// Client key file.
    pub key: Option<PathBuf>,
    /// Bearer token.
    pub token: Option<String>,
    /// A directory laid out as [`files`] describes.
    pub dir: Option<PathBuf>,
}

impl CredentialSources {
    /// Fills what was not given explicitly from the credentials directory: the one named,
    /// else `./raft-kv-data/credentials` if it exists.
    fn with_directory_defaults(mut self) -> Self {
        let dir = self.dir.clone().or_else(|| {
            let local = dev_credentials_dir(Path::new("raft-kv-data"));
            local.is_dir().then_some(local)
        });
        let Some(dir) = dir else { return self };
        let existing = |name: &str| {
            let path = dir.join(name);
            path.is_file().then_some(path)
        };
        if self.ca.is_none() {
            self.ca = existing(files::CA_CERT);
            if self.cert.is_none() && self.key.is_none() {
                self.cert = existing(files::CLIENT_CERT);
                self.key = existing(files::CLIENT_KEY);
            }
        }
        if self.token.is_none()
            && let Some(path) = existing(files::ADMIN_TOKEN)
        {
            self.token = std::fs::read_to_string(path)
                .ok()
                .map(|t| t.trim().to_string());
        }
        self
    }

    /// Loads the credentials.
    pub fn load(self) -> Result<Credentials, CredentialsError> {
        let sources = self.with_directory_defaults();
        let identity = match (&sources.cert, &sources.key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => return Err(CredentialsError::HalfIdentity),
        };
        let tls = match &sources.ca {
            Some(ca) => Some(tls::client_config(ca, identity)?),
            None => None,
        };
        Ok(Credentials {
            tls,
            token: sources.token.filter(|t| !t.is_empty()),
        })
    }
}
