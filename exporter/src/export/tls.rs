//! TLS for an `https://` OTLP endpoint: one certificate verifier, built from the system's
//! trusted roots and `exporter.otlp.tls`, shared by the gRPC and HTTP transports so both trust
//! exactly the same servers.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use rustls::{
    DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::CryptoProvider,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject as _};
use spanprobe_config::TlsConfig;

/// The TLS settings could not be turned into a verifier.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("exporter.otlp.tls.ca_file: cannot read `{}` as PEM certificates", path.display())]
    CaFile {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("exporter.otlp.tls.ca_file: `{}` holds no usable certificate", path.display())]
    NoCertificate { path: PathBuf },
    #[error(
        "exporter.otlp: no trusted CA certificates for the https:// endpoint: the system has \
         none (install ca-certificates) and exporter.otlp.tls.ca_file is not set"
    )]
    NoRoots,
    #[error("exporter.otlp.tls: cannot build the certificate verifier")]
    Verifier(#[from] rustls::client::VerifierBuilderError),
    #[error("exporter.otlp.tls: cannot configure TLS")]
    Rustls(#[from] rustls::Error),
}

/// Makes ring the process's rustls provider. reqwest reads it for every client it builds, plain
/// `http://` ones included, and panics when none is installed.
pub fn install_crypto_provider() {
    // An error means a provider is already installed, which is all that is needed.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// How the server's certificate is checked.
#[derive(Debug, Clone)]
pub struct Tls {
    provider: Arc<CryptoProvider>,
    verifier: Arc<dyn ServerCertVerifier>,
}

impl Tls {
    /// The system's roots plus `ca_file` (relative to `base_dir`, the config's folder), or no
    /// verification at all when `insecure_skip_verify` is set.
    pub fn new(config: Option<&TlsConfig>, base_dir: &Path) -> Result<Self, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = config.cloned().unwrap_or_default();
        let verifier: Arc<dyn ServerCertVerifier> = if config.insecure_skip_verify.value {
            tracing::warn!(
                "exporter.otlp.tls.insecure_skip_verify: the collector's certificate is not checked"
            );
            Arc::new(AcceptAnyCertificate(provider.clone()))
        } else {
            let roots = roots(config.ca_file.as_ref().map(|f| base_dir.join(&f.value)))?;
            let webpki =
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()?;
            Arc::new(ExplainRejection {
                inner: webpki,
                explained: AtomicBool::new(false),
            })
        };
        Ok(Self { provider, verifier })
    }

    /// For tonic, which builds its own client config (ALPN `h2`) around a verifier.
    pub fn verifier(&self) -> Arc<dyn ServerCertVerifier> {
        self.verifier.clone()
    }

    /// A complete client config, for the HTTP client.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        Ok(
            rustls::ClientConfig::builder_with_provider(self.provider.clone())
                .with_safe_default_protocol_versions()?
                .dangerous()
                .with_custom_certificate_verifier(self.verifier.clone())
                .with_no_client_auth(),
        )
    }
}

/// The system's trusted roots and the certificates in `ca_file`.
fn roots(ca_file: Option<PathBuf>) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        // A broken system store is not fatal when a CA file is given; say why roots are few.
        tracing::debug!("system CA certificates: {error}");
    }
    roots.add_parsable_certificates(native.certs);
    if let Some(path) = ca_file {
        let certs = CertificateDer::pem_file_iter(&path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::CaFile {
                path: path.clone(),
                source,
            })?;
        let (added, _ignored) = roots.add_parsable_certificates(certs);
        if added == 0 {
            return Err(TlsError::NoCertificate { path });
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    Ok(roots)
}

/// Verifies as `inner` does, and says why a certificate was rejected: the transports only
/// report "network error" or "transport error".
#[derive(Debug)]
struct ExplainRejection {
    inner: Arc<WebPkiServerVerifier>,
    /// Said once: every retry fails the same way.
    explained: AtomicBool,
}

impl ServerCertVerifier for ExplainRejection {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verdict = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        );
        if let Err(error) = &verdict
            && !self.explained.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(
                server = ?server_name,
                "collector certificate rejected: {error}; exporter.otlp.tls.ca_file names a CA \
                 to trust"
            );
        }
        verdict
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `insecure_skip_verify`: any certificate is accepted, but the handshake's signatures are
/// still checked, so the connection is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spanprobe_config::Located;

    fn with_ca(path: &Path) -> TlsConfig {
        TlsConfig {
            ca_file: Some(Located::unplaced(path.to_owned())),
            ..Default::default()
        }
    }

    #[test]
    fn a_missing_ca_file_names_the_key_and_the_path() {
        let err = Tls::new(Some(&with_ca(Path::new("nope.pem"))), Path::new("/etc/app"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "exporter.otlp.tls.ca_file: cannot read `/etc/app/nope.pem` as PEM certificates"
        );
    }

    #[test]
    fn a_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("empty.pem");
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = Tls::new(Some(&with_ca(&path)), Path::new("/"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds no usable certificate"), "{err}");
    }

    #[test]
    fn a_generated_ca_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(dir.path().join("ca.pem"), cert.cert.pem()).unwrap();
        let tls = Tls::new(Some(&with_ca(Path::new("ca.pem"))), dir.path()).unwrap();
        tls.client_config().unwrap();
    }
}
