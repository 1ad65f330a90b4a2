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
        let roots = if config.is_some_and(|tls| tls.insecure_skip_verify.value) {
            tracing::warn!(
                "exporter.otlp.tls.insecure_skip_verify: the collector's certificate is not checked"
            );
            None
        } else {
            let ca_file = config.and_then(|tls| tls.ca_file.as_ref());
            let roots = roots(ca_file.map(|file| base_dir.join(&file.value)))?;
            Some(
                WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                    .build()?,
            )
        };
        let verifier = Arc::new(Verifier {
            provider: provider.clone(),
            roots,
            explained: AtomicBool::new(false),
        });
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

/// Checks the server's certificate against the trusted roots (`None`: accepts any, for
/// `insecure_skip_verify`) and says why one was rejected, since the transports only report
/// "network error". Handshake signatures are always checked, so the connection is at least
/// encrypted to whoever holds the presented certificate's key.
#[derive(Debug)]
struct Verifier {
    provider: Arc<CryptoProvider>,
    roots: Option<Arc<WebPkiServerVerifier>>,
    /// Said once: every retry fails the same way.
    explained: AtomicBool,
}

impl ServerCertVerifier for Verifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(roots) = &self.roots else {
            return Ok(ServerCertVerified::assertion());
        };
        let verdict =
            roots.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now);
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
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
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
