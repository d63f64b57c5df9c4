//! TLS for the listeners: rustls with the ring provider, TLS 1.2 and 1.3,
//! AEAD suites only (rustls has nothing weaker), HTTP/2 by ALPN.

use std::sync::Arc;

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::TlsSettings;

/// Loads the certificate chain and key named in `server.tls_cert` /
/// `server.tls_key` into a server configuration.
pub fn server_config(tls: &TlsSettings) -> anyhow::Result<rustls::ServerConfig> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&tls.cert)
        .with_context(|| format!("server.tls_cert {} cannot be read", tls.cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "server.tls_cert {} is not a PEM certificate chain",
                tls.cert.display()
            )
        })?;
    anyhow::ensure!(
        !certs.is_empty(),
        "server.tls_cert {} holds no certificate",
        tls.cert.display()
    );
    let key = PrivateKeyDer::from_pem_file(&tls.key).with_context(|| {
        format!(
            "server.tls_key {} is not a PEM private key",
            tls.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("server.tls_cert and server.tls_key do not match")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
