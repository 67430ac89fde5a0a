//! The status page's TLS: a rustls server configuration from PEM text.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The server's configuration for `cert` (a chain, leaf first) and `key`;
/// the error says which of the two is wrong and why.
pub fn server_config(cert: &[u8], key: &[u8]) -> Result<Arc<rustls::ServerConfig>, String> {
    let chain = CertificateDer::pem_slice_iter(cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cert: not a PEM certificate ({e})"))?;
    if chain.is_empty() {
        return Err("cert: no certificate in it".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key)
        .map_err(|e| format!("key: not a PEM private key ({e})"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| format!("key: does not go with the certificate ({e})"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
