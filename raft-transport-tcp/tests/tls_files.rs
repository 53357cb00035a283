//! Loading TLS material from files: what works, and that every mistake names the file and
//! what is wrong with it, so an operator can fix it without reading code.

mod common;

use std::path::{Path, PathBuf};

use common::pki::TestCa;
use raft_transport_tcp::{PemOrigin, PemRole, TlsConfig, TlsError, node_certificate_name};

/// The three files of one node, written into `directory`.
struct NodeFiles {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn write_node_files(directory: &Path, ca: &TestCa, id: u64) -> NodeFiles {
    let issued = ca.issue(&[node_certificate_name(id)]);
    let files = NodeFiles {
        ca: directory.join("ca.pem"),
        cert: directory.join(format!("node-{id}.pem")),
        key: directory.join(format!("node-{id}.key")),
    };
    std::fs::write(&files.ca, ca.pem()).expect("write CA");
    std::fs::write(&files.cert, &issued.certificate_pem).expect("write certificate");
    std::fs::write(&files.key, &issued.key_pem).expect("write key");
    files
}

fn load(files: &NodeFiles) -> Result<TlsConfig, TlsError> {
    TlsConfig::from_pem_files(&files.ca, &files.cert, &files.key)
}

/// Goal: good files load, and the loaded material proves its node id and no other.
#[test]
fn good_files_load_and_prove_their_node() {
    let directory = tempfile::tempdir().expect("temp dir");
    let files = write_node_files(directory.path(), &TestCa::new("cluster CA"), 4);
    let tls = load(&files).expect("valid files");
    assert!(tls.check_node_id(4).is_ok());
    assert!(matches!(
        tls.check_node_id(5),
        Err(TlsError::NotForNode { node_id: 5, .. })
    ));
}

/// Goal: each kind of mistake gets its own error, and its message names the file.
#[test]
fn mistakes_name_the_file_and_the_problem() {
    let directory = tempfile::tempdir().expect("temp dir");
    let ca = TestCa::new("cluster CA");
    let files = write_node_files(directory.path(), &ca, 1);
    let message_names = |error: &TlsError, path: &Path| {
        let message = error.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
    };

    let missing = NodeFiles {
        ca: directory.path().join("absent.pem"),
        ..write_node_files(directory.path(), &ca, 1)
    };
    let error = load(&missing).expect_err("no CA file");
    assert!(matches!(
        error,
        TlsError::Read {
            role: PemRole::CaCertificates,
            ..
        }
    ));
    message_names(&error, &missing.ca);

    std::fs::write(&files.cert, "not a certificate\n").expect("overwrite");
    let error = load(&files).expect_err("no certificate in the file");
    assert!(matches!(
        &error,
        TlsError::Missing { role: PemRole::Certificate, origin: PemOrigin::File(path) }
            if *path == files.cert
    ));
    message_names(&error, &files.cert);

    // A key that belongs to another certificate.
    let files = write_node_files(directory.path(), &ca, 1);
    let other = ca.issue(&[node_certificate_name(1)]);
    std::fs::write(&files.key, &other.key_pem).expect("overwrite");
    let error = load(&files).expect_err("key does not match");
    assert!(matches!(error, TlsError::KeyRejected { .. }), "{error}");
    message_names(&error, &files.key);

    // A certificate from another CA than the one the node trusts.
    let files = write_node_files(directory.path(), &ca, 1);
    let foreign = TestCa::new("foreign CA");
    std::fs::write(&files.ca, foreign.pem()).expect("overwrite");
    let error = load(&files).expect_err("issued by another CA");
    assert!(
        matches!(error, TlsError::CertificateRejected { .. }),
        "{error}"
    );
    message_names(&error, &files.cert);
}
