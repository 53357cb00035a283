//! Throwaway certificate authorities and node certificates for the TLS tests (rcgen).

use raft_core::NodeId;
use raft_transport_tcp::{TlsConfig, node_certificate_name};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

/// A CA that issues node certificates.
pub struct TestCa {
    certificate: rcgen::Certificate,
    key: KeyPair,
}

/// A certificate and its key, as PEM.
pub struct Issued {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl TestCa {
    /// A fresh self-signed CA.
    pub fn new(name: &str) -> TestCa {
        let key = KeyPair::generate().expect("generate CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let certificate = params.self_signed(&key).expect("self-sign CA");
        TestCa { certificate, key }
    }

    /// The CA certificate as PEM.
    pub fn pem(&self) -> String {
        self.certificate.pem()
    }

    /// A certificate for the given DNS names, usable as TLS client and server.
    pub fn issue(&self, names: &[String]) -> Issued {
        let key = KeyPair::generate().expect("generate node key");
        let mut params = CertificateParams::new(names.to_vec()).expect("node params");
        params
            .distinguished_name
            .push(DnType::CommonName, "raft node");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let certificate = params
            .signed_by(&key, &self.certificate, &self.key)
            .expect("sign node certificate");
        Issued {
            certificate_pem: certificate.pem(),
            key_pem: key.serialize_pem(),
        }
    }

    /// The TLS material of a node that proves `claimed_id` (use another id than the node's
    /// own to make an impostor).
    pub fn node_tls(&self, claimed_id: NodeId) -> TlsConfig {
        let issued = self.issue(&[node_certificate_name(claimed_id)]);
        TlsConfig::from_pem(
            self.pem().as_bytes(),
            issued.certificate_pem.as_bytes(),
            issued.key_pem.as_bytes(),
        )
        .expect("valid TLS material")
    }
}

/// A raw rustls client configuration that trusts `trusted` and presents `issued`, for
/// tests that speak TLS to a transport by hand.
pub fn raw_client_config(
    trusted: &TestCa,
    issued: &Issued,
) -> std::sync::Arc<rustls::ClientConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    let ca = CertificateDer::from_pem_slice(trusted.pem().as_bytes()).expect("CA PEM");
    roots.add(ca).expect("CA root");
    let chain =
        vec![CertificateDer::from_pem_slice(issued.certificate_pem.as_bytes()).expect("cert PEM")];
    let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).expect("key PEM");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("TLS 1.3")
        .with_root_certificates(roots)
        .with_client_auth_cert(chain, key)
        .expect("client certificate");
    std::sync::Arc::new(config)
}
