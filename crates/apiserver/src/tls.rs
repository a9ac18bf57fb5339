//! TLS material for the test bed: a freshly generated CA, a serving
//! certificate for `127.0.0.1` and `localhost` signed by it, and the rustls
//! server configuration (ring provider only).
//!
//! Owns certificate generation; it must not accept connections.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// Generating certificates or the TLS configuration failed.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen failed.
    #[error("generating a certificate failed")]
    Generate(#[source] rcgen::Error),
    /// rustls rejected the configuration.
    #[error("building the TLS configuration failed")]
    Config(#[source] rustls::Error),
}

/// A CA and a serving certificate signed by it.
#[derive(Debug)]
pub struct TlsMaterial {
    /// The CA certificate in PEM, for `certificate-authority-data`.
    pub ca_pem: String,
    /// The serving certificate in DER.
    pub cert_der: CertificateDer<'static>,
    /// The serving key (PKCS#8 DER).
    key_der: Vec<u8>,
}

impl TlsMaterial {
    /// Generates a new CA and a serving certificate for 127.0.0.1, ::1 and localhost.
    pub fn generate() -> Result<Self, TlsError> {
        let ca_key = KeyPair::generate().map_err(TlsError::Generate)?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(TlsError::Generate)?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "freshet-testbed-ca");
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let ca_cert = ca_params.self_signed(&ca_key).map_err(TlsError::Generate)?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate().map_err(TlsError::Generate)?;
        let mut params = CertificateParams::new(vec![
            "127.0.0.1".to_string(),
            "::1".to_string(),
            "localhost".to_string(),
        ])
        .map_err(TlsError::Generate)?;
        params
            .distinguished_name
            .push(DnType::CommonName, "freshet-testbed-apiserver");
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(TlsError::Generate)?;
        Ok(Self {
            ca_pem: ca_cert.pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        })
    }

    /// The rustls server configuration (ring provider, HTTP/1.1 over ALPN).
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut cfg = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_single_cert(
                vec![self.cert_der.clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone())),
            )
            .map_err(TlsError::Config)?;
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(cfg))
    }
}
