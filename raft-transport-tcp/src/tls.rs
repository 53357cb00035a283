//! Mutual TLS between peers: certificates, keys and the identity check.
//!
//! Every node holds a certificate issued by the cluster's CA whose DNS subject alternative
//! name is [`node_certificate_name`] of its id. The dialler connects with that name as the
//! TLS server name, so ordinary server verification proves it reached the node it meant;
//! the acceptor requires a client certificate from the same CA
//! ([`WebPkiClientVerifier`]) and then checks that the id the dialler claims in its hello is
//! named by that certificate ([`certificate_names_node`]). Nothing else is trusted.
//!
//! Certificates are read once, when the [`TlsConfig`] is built; to rotate them, restart the
//! node with new files.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use raft_core::NodeId;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::error::{PemOrigin, PemRole, TlsError};

/// The DNS subject alternative name a node certificate carries to prove node id `id`:
/// `node-<id>.raft`.
pub fn node_certificate_name(id: NodeId) -> String {
    format!("node-{id}.raft")
}

/// A node's TLS material: the cluster CA roots, its own certificate chain and private key.
///
/// Built once from PEM (files or bytes) and checked then: every part must parse, the key
/// must fit the certificate, and the certificate must be issued by the CA. Node
/// certificates need the DNS name [`node_certificate_name`] of their node id and, if they
/// list extended key usages at all, both `serverAuth` and `clientAuth` (each node is a TLS
/// server for its inbound connections and a client for its outbound ones).
///
/// Cloning is cheap (the material is shared). Give it to a transport with
/// [`crate::TcpConfig::with_tls`].
#[derive(Clone)]
pub struct TlsConfig {
    material: Arc<Material>,
}

struct Material {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    /// Checks this node's own certificate at transport start, with its node name.
    server_verifier: Arc<WebPkiServerVerifier>,
    chain: Vec<CertificateDer<'static>>,
    cert_origin: PemOrigin,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print key material; where the certificate came from is enough.
        f.debug_struct("TlsConfig")
            .field("certificate", &self.material.cert_origin)
            .finish_non_exhaustive()
    }
}

impl TlsConfig {
    /// Reads PEM files: the cluster CA certificate(s), this node's certificate chain (its
    /// own certificate first), and its private key (PKCS#8, SEC1 or RSA).
    ///
    /// # Errors
    /// [`TlsError`] naming the file and what is wrong with it.
    pub fn from_pem_files(ca: &Path, cert: &Path, key: &Path) -> Result<TlsConfig, TlsError> {
        let read = |role: PemRole, path: &Path| {
            std::fs::read(path).map_err(|source| TlsError::Read {
                role,
                path: path.to_path_buf(),
                source,
            })
        };
        let ca_pem = read(PemRole::CaCertificates, ca)?;
        let cert_pem = read(PemRole::Certificate, cert)?;
        let key_pem = read(PemRole::PrivateKey, key)?;
        TlsConfig::build(
            (&ca_pem, PemOrigin::File(ca.to_path_buf())),
            (&cert_pem, PemOrigin::File(cert.to_path_buf())),
            (&key_pem, PemOrigin::File(key.to_path_buf())),
        )
    }

    /// The same as [`TlsConfig::from_pem_files`], from PEM bytes already in memory.
    ///
    /// # Errors
    /// [`TlsError`] saying which part is wrong and how.
    pub fn from_pem(ca: &[u8], cert: &[u8], key: &[u8]) -> Result<TlsConfig, TlsError> {
        TlsConfig::build(
            (ca, PemOrigin::Memory),
            (cert, PemOrigin::Memory),
            (key, PemOrigin::Memory),
        )
    }

    fn build(
        (ca, ca_origin): (&[u8], PemOrigin),
        (cert, cert_origin): (&[u8], PemOrigin),
        (key, key_origin): (&[u8], PemOrigin),
    ) -> Result<TlsConfig, TlsError> {
        let roots = Arc::new(parse_roots(ca, &ca_origin)?);
        let chain = parse_certificates(cert, PemRole::Certificate, &cert_origin)?;
        let key = parse_key(key, &key_origin)?;
        let provider = Arc::new(provider());
        let bad_ca = |detail: String| TlsError::BadCa {
            origin: ca_origin.clone(),
            detail,
        };
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|error| bad_ca(error.to_string()))?;
        let server_verifier =
            WebPkiServerVerifier::builder_with_provider(Arc::clone(&roots), Arc::clone(&provider))
                .build()
                .map_err(|error| bad_ca(error.to_string()))?;
        let key_rejected = |source: rustls::Error| TlsError::KeyRejected {
            key_origin: key_origin.clone(),
            cert_origin: cert_origin.clone(),
            source,
        };
        let mut server = server_builder(&provider)?
            .with_client_cert_verifier(Arc::clone(&client_verifier))
            .with_single_cert(chain.clone(), key.clone_key())
            .map_err(key_rejected)?;
        // Peers never resume sessions: tickets would only cost CPU and bytes.
        server.send_tls13_tickets = 0;
        let client = client_builder(&provider)?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain.clone(), key)
            .map_err(key_rejected)?;
        let (end_entity, intermediates) = split_chain(&chain, &cert_origin)?;
        client_verifier
            .verify_client_cert(end_entity, intermediates, UnixTime::now())
            .map_err(|source| TlsError::CertificateRejected {
                origin: cert_origin.clone(),
                source,
            })?;
        let material = Material {
            server: Arc::new(server),
            client: Arc::new(client),
            server_verifier,
            chain,
            cert_origin,
        };
        Ok(TlsConfig {
            material: Arc::new(material),
        })
    }

    /// Checks that this node's certificate proves `node_id` to its peers: issued by the
    /// CA, valid now, usable by a TLS server, and naming [`node_certificate_name`].
    ///
    /// # Errors
    /// [`TlsError::NotForNode`] or [`TlsError::CertificateRejected`].
    pub fn check_node_id(&self, node_id: NodeId) -> Result<(), TlsError> {
        let material = &self.material;
        let origin = &material.cert_origin;
        let name = node_server_name(node_id).map_err(|_| TlsError::NotForNode {
            node_id,
            origin: origin.clone(),
        })?;
        let (end_entity, intermediates) = split_chain(&material.chain, origin)?;
        let verified = rustls::client::danger::ServerCertVerifier::verify_server_cert(
            material.server_verifier.as_ref(),
            end_entity,
            intermediates,
            &name,
            &[],
            UnixTime::now(),
        );
        match verified {
            Ok(_) => Ok(()),
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Err(TlsError::NotForNode {
                node_id,
                origin: origin.clone(),
            }),
            Err(source) => Err(TlsError::CertificateRejected {
                origin: origin.clone(),
                source,
            }),
        }
    }

    /// Performs the acceptor's side of TLS handshakes.
    pub(crate) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(Arc::clone(&self.material.server))
    }

    /// Performs the dialler's side of TLS handshakes.
    pub(crate) fn connector(&self) -> TlsConnector {
        TlsConnector::from(Arc::clone(&self.material.client))
    }
}

/// The TLS server name that proves node `id`.
pub(crate) fn node_server_name(id: NodeId) -> Result<ServerName<'static>, rustls::Error> {
    ServerName::try_from(node_certificate_name(id))
        .map_err(|error| rustls::Error::General(error.to_string()))
}

/// Whether a (verified) end-entity certificate names node `id`.
pub(crate) fn certificate_names_node(certificate: &CertificateDer<'_>, id: NodeId) -> bool {
    let Ok(name) = node_server_name(id) else {
        return false;
    };
    webpki::EndEntityCert::try_from(certificate)
        .is_ok_and(|end_entity| end_entity.verify_is_valid_for_subject_name(&name).is_ok())
}

/// ring, with AES-128-GCM preferred: as strong as peers need, and cheaper per byte than
/// the default AES-256-GCM on the large appends and snapshot chunks peers exchange.
fn provider() -> CryptoProvider {
    use rustls::crypto::ring::cipher_suite;
    CryptoProvider {
        cipher_suites: vec![
            cipher_suite::TLS13_AES_128_GCM_SHA256,
            cipher_suite::TLS13_AES_256_GCM_SHA384,
            cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
        ],
        ..rustls::crypto::ring::default_provider()
    }
}

fn server_builder(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ServerConfig, rustls::WantsVerifier>, TlsError> {
    // Both ends are ours, so only TLS 1.3.
    ServerConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Provider { source })
}

fn client_builder(
    provider: &Arc<CryptoProvider>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::WantsVerifier>, TlsError> {
    ClientConfig::builder_with_provider(Arc::clone(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|source| TlsError::Provider { source })
}

fn parse_certificates(
    pem: &[u8],
    role: PemRole,
    origin: &PemOrigin,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certificates = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            role,
            origin: origin.clone(),
            source,
        })?;
    if certificates.is_empty() {
        return Err(TlsError::Missing {
            role,
            origin: origin.clone(),
        });
    }
    Ok(certificates)
}

fn parse_roots(pem: &[u8], origin: &PemOrigin) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for certificate in parse_certificates(pem, PemRole::CaCertificates, origin)? {
        roots.add(certificate).map_err(|error| TlsError::BadCa {
            origin: origin.clone(),
            detail: error.to_string(),
        })?;
    }
    Ok(roots)
}

fn parse_key(pem: &[u8], origin: &PemOrigin) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::Missing {
            role: PemRole::PrivateKey,
            origin: origin.clone(),
        },
        source => TlsError::Pem {
            role: PemRole::PrivateKey,
            origin: origin.clone(),
            source,
        },
    })
}

/// The end-entity certificate and the intermediates after it.
fn split_chain<'a>(
    chain: &'a [CertificateDer<'static>],
    origin: &PemOrigin,
) -> Result<(&'a CertificateDer<'static>, &'a [CertificateDer<'static>]), TlsError> {
    chain.split_first().ok_or_else(|| TlsError::Missing {
        role: PemRole::Certificate,
        origin: origin.clone(),
    })
}
