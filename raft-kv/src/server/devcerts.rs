//! Throwaway credentials for a local cluster (rcgen): a CA, one certificate per node, a
//! client certificate and three tokens (admin, write, read), written into a credentials
//! directory laid out as [`crate::server::credentials::files`] describes.
//!
//! A node certificate carries the DNS names `node-<id>.raft` (the peer identity the Raft
//! transport checks) and `localhost`, the IP `127.0.0.1`, and any extra names asked for.
//! Keys are ECDSA P-256. The CA key is kept next to the certificates so more nodes can be
//! issued later; all of it is for development only.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use raft_transport_tcp::node_certificate_name;

use crate::server::credentials::files;

/// Why credentials could not be generated or written.
#[derive(Debug, thiserror::Error)]
pub enum DevCertsError {
    /// Certificate generation failed.
    #[error("generating certificates: {0}")]
    Generate(#[from] rcgen::Error),
    /// A file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The CA file name of the CA's private key.
const CA_KEY: &str = "ca.key";

/// A fresh random token: 32 bytes from the OS, hex.
pub fn random_token() -> Result<String, DevCertsError> {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| rcgen::Error::RingUnspecified)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write(dir: &Path, name: &str, contents: &str, secret: bool) -> Result<(), DevCertsError> {
    let path = dir.join(name);
    let error = |source| DevCertsError::Write {
        path: path.clone(),
        source,
    };
    std::fs::write(&path, contents).map_err(error)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(error)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    Ok(())
}

fn leaf_params(
    common_name: &str,
    names: Vec<String>,
    usages: Vec<ExtendedKeyUsagePurpose>,
) -> Result<CertificateParams, DevCertsError> {
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = usages;
    Ok(params)
}

/// Writes a CA, certificates for nodes `1..=nodes` (with `extra_names` as further SANs), a
/// client certificate, a token file and an admin token into `dir`. Leaves `dir` untouched
/// when it already holds a CA (a dev cluster restarted over its data keeps its identity).
pub fn generate(dir: &Path, nodes: u64, extra_names: &[String]) -> Result<(), DevCertsError> {
    if dir.join(files::CA_CERT).is_file() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|source| DevCertsError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "raft-kv dev cluster CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key)?;
    for id in 1..=nodes {
        let mut names = vec![
            node_certificate_name(id),
            "localhost".to_string(),
            "127.0.0.1".to_string(),
        ];
        names.extend(extra_names.iter().cloned());
        let usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let params = leaf_params(&node_certificate_name(id), names, usages)?;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &ca, &ca_key)?;
        write(dir, &files::node_cert(id), &cert.pem(), false)?;
        write(dir, &files::node_key(id), &key.serialize_pem(), true)?;
    }
    let params = leaf_params(
        "raft-kv client",
        Vec::new(),
        vec![ExtendedKeyUsagePurpose::ClientAuth],
    )?;
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca, &ca_key)?;
    write(dir, files::CLIENT_CERT, &cert.pem(), false)?;
    write(dir, files::CLIENT_KEY, &key.serialize_pem(), true)?;
    let admin = random_token()?;
    let tokens = format!(
        "# Bearer tokens of the dev cluster (see SECURITY.md).\n\
         [[tokens]]\nprincipal = \"admin\"\nrole = \"admin\"\ntoken = \"{admin}\"\n\n\
         [[tokens]]\nprincipal = \"writer\"\nrole = \"write\"\ntoken = \"{}\"\n\n\
         [[tokens]]\nprincipal = \"reader\"\nrole = \"read\"\ntoken = \"{}\"\n",
        random_token()?,
        random_token()?
    );
    write(dir, files::TOKENS, &tokens, true)?;
    write(dir, files::ADMIN_TOKEN, &format!("{admin}\n"), true)?;
    write(dir, CA_KEY, &ca_key.serialize_pem(), true)?;
    // The CA certificate last: its presence marks the directory complete.
    write(dir, files::CA_CERT, &ca.pem(), false)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::tls::{self, TlsFiles};

    /// Goal: the generated files load as an HTTPS identity, as a Raft peer identity and as a
    /// client trusting the CA;
    /// the token file parses; a second run keeps the first run's CA.
    #[test]
    fn generated_credentials_load() {
        let dir = tempfile::tempdir().unwrap();
        generate(dir.path(), 2, &["example.test".into()]).unwrap();
        let files = TlsFiles {
            ca: dir.path().join(files::CA_CERT),
            cert: dir.path().join(files::node_cert(2)),
            key: dir.path().join(files::node_key(2)),
        };
        tls::server_config(&files).unwrap();
        // The Raft transport accepts it as node 2's peer identity.
        raft_transport_tcp::TlsConfig::from_pem_files(&files.ca, &files.cert, &files.key).unwrap();
        tls::client_config(
            &files.ca,
            Some((
                &dir.path().join(files::CLIENT_CERT),
                &dir.path().join(files::CLIENT_KEY),
            )),
        )
        .unwrap();
        crate::server::auth::Auth::from_file(&dir.path().join(files::TOKENS)).unwrap();
        let ca = std::fs::read(&files.ca).unwrap();
        generate(dir.path(), 2, &[]).unwrap();
        assert_eq!(std::fs::read(&files.ca).unwrap(), ca);
    }
}
