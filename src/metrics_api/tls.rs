//! TLS (contract §3.6): rustls with the ring provider only, TLS 1.2 and 1.3, ALPN `h2` and
//! `http/1.1`; the serving certificate comes from files reloaded when they change, or is generated
//! in memory; client certificates are requested, not required, and judged per request by
//! [`super::auth`].

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, ServerConfig, SignatureScheme};

/// A TLS setup error.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate file holds no certificate.
    #[error("{0}: no PEM certificate found")]
    NoCertificate(PathBuf),
    /// The key file holds no usable key.
    #[error("{path}: no usable private key: {reason}")]
    BadKey {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Certificate generation failed.
    #[error("generating a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Only one of the two files was given.
    #[error("--tls-cert-file and --tls-private-key-file must be given together")]
    HalfConfigured,
}

/// The ring crypto provider every TLS object of the server uses.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certified_key(
    cert_pem: &[u8],
    key_pem: &[u8],
    cert_path: &Path,
    key_path: &Path,
) -> Result<CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert_path.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::BadKey {
        path: key_path.to_owned(),
        reason: e.to_string(),
    })?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| TlsError::BadKey {
            path: key_path.to_owned(),
            reason: e.to_string(),
        })?;
    let ck = CertifiedKey::new(chain, signing);
    ck.keys_match().map_err(|e| TlsError::BadKey {
        path: key_path.to_owned(),
        reason: format!("does not match the certificate: {e}"),
    })?;
    Ok(ck)
}

/// A self-signed serving certificate made in memory.
#[derive(Debug, Clone)]
pub struct SelfSigned {
    /// The certificate and key.
    pub key: Arc<CertifiedKey>,
    /// The certificate in PEM (for a `caBundle` or a client's trust store).
    pub cert_pem: String,
}

/// Generates a self-signed certificate for `<service>.<namespace>.svc` (plus `<service>`,
/// `<service>.<namespace>`, `<service>.<namespace>.svc.cluster.local`, `localhost` and `127.0.0.1`),
/// with EKU serverAuth.
pub fn self_signed(service: &str, namespace: &str) -> Result<SelfSigned, TlsError> {
    let names = vec![
        format!("{service}.{namespace}.svc"),
        format!("{service}.{namespace}.svc.cluster.local"),
        format!("{service}.{namespace}"),
        service.to_owned(),
        "localhost".to_owned(),
        "127.0.0.1".to_owned(),
    ];
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("{service}.{namespace}.svc"),
    );
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let key_der = PrivateKeyDer::try_from(key.serialize_der()).map_err(|e| TlsError::BadKey {
        path: "<generated>".into(),
        reason: e.to_string(),
    })?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&key_der)?;
    Ok(SelfSigned {
        key: Arc::new(CertifiedKey::new(vec![cert.der().clone()], signing)),
        cert_pem: cert.pem(),
    })
}

/// (inode, size, mtime, ctime) of both files: a rename (kubelet's atomic writer, cert-manager) changes
/// the inode, an in-place write the times.
type Fingerprint = Option<[(u64, u64, i64, i64, i64, i64); 2]>;

fn fingerprint(cert: &Path, key: &Path) -> Fingerprint {
    use std::os::unix::fs::MetadataExt;
    let m = |p: &Path| {
        fs::metadata(p).ok().map(|m| {
            (
                m.ino(),
                m.len(),
                m.mtime(),
                m.mtime_nsec(),
                m.ctime(),
                m.ctime_nsec(),
            )
        })
    };
    Some([m(cert)?, m(key)?])
}

fn content_hash(parts: &[&[u8]]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    parts.hash(&mut h);
    h.finish()
}

/// How often the files are re-read even when their metadata looks unchanged (timestamps can be
/// coarse, so two quick writes of equal size may look alike).
const FORCED_RECHECK: Duration = Duration::from_secs(10);

struct Seen {
    fingerprint: Fingerprint,
    content: u64,
    checked: Instant,
}

/// Serves the certificate from `--tls-cert-file`/`--tls-private-key-file`, re-reading them when they
/// change: on each handshake the files' metadata is compared (two `stat` calls) and, every 10 s at
/// the least, their content. While new files are unusable (e.g. half written) the previous
/// certificate stays in use.
pub struct ReloadingCertResolver {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    seen: Mutex<Seen>,
}

impl std::fmt::Debug for ReloadingCertResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingCertResolver")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish()
    }
}

impl ReloadingCertResolver {
    /// Loads the files once; errors if they are unusable now.
    pub fn new(
        cert_path: impl Into<PathBuf>,
        key_path: impl Into<PathBuf>,
    ) -> Result<ReloadingCertResolver, TlsError> {
        let (cert_path, key_path) = (cert_path.into(), key_path.into());
        let fingerprint = fingerprint(&cert_path, &key_path);
        let (cert, key) = Self::read(&cert_path, &key_path)?;
        let ck = certified_key(&cert, &key, &cert_path, &key_path)?;
        let seen = Seen {
            fingerprint,
            content: content_hash(&[&cert, &key]),
            checked: Instant::now(),
        };
        Ok(ReloadingCertResolver {
            cert_path,
            key_path,
            current: ArcSwap::from_pointee(ck),
            seen: Mutex::new(seen),
        })
    }

    fn read(cert_path: &Path, key_path: &Path) -> Result<(Vec<u8>, Vec<u8>), TlsError> {
        let cert = fs::read(cert_path).map_err(|source| TlsError::Read {
            path: cert_path.to_owned(),
            source,
        })?;
        let key = fs::read(key_path).map_err(|source| TlsError::Read {
            path: key_path.to_owned(),
            source,
        })?;
        Ok((cert, key))
    }

    /// Re-reads the files if they changed; returns whether a new certificate was loaded.
    pub fn refresh(&self) -> bool {
        let now = fingerprint(&self.cert_path, &self.key_path);
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || (seen.fingerprint == now && seen.checked.elapsed() < FORCED_RECHECK) {
            return false;
        }
        seen.fingerprint = now;
        seen.checked = Instant::now();
        let Ok((cert, key)) = Self::read(&self.cert_path, &self.key_path) else {
            return false;
        };
        let content = content_hash(&[&cert, &key]);
        if content == seen.content {
            return false;
        }
        seen.content = content;
        match certified_key(&cert, &key, &self.cert_path, &self.key_path) {
            Ok(ck) => {
                self.current.store(Arc::new(ck));
                tracing::info!(cert = %self.cert_path.display(), "reloaded the serving certificate");
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "the serving certificate files changed but cannot be used; keeping the previous certificate");
                false
            }
        }
    }
}

impl ResolvesServerCert for ReloadingCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.refresh();
        Some(self.current.load_full())
    }
}

/// Serves one fixed certificate.
#[derive(Debug)]
pub struct FixedCertResolver(pub Arc<CertifiedKey>);

impl ResolvesServerCert for FixedCertResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }
}

/// Requests a client certificate without requiring one and accepts any chain at the TLS layer
/// (proof of key possession is still checked); the chain is judged per request against the
/// current trust material, as Go's delegating authenticator does.
#[derive(Debug)]
pub(crate) struct RequestClientCert {
    hints: Vec<DistinguishedName>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl RequestClientCert {
    pub(crate) fn new(hints: Vec<DistinguishedName>) -> RequestClientCert {
        RequestClientCert {
            hints,
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ClientCertVerifier for RequestClientCert {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Builds the server configuration: TLS 1.3 and 1.2 (ring's AEAD suites only), ALPN h2 + http/1.1,
/// client certificates requested with `hints` as acceptable CAs.
pub(crate) fn server_config(
    resolver: Arc<dyn ResolvesServerCert>,
    hints: Vec<DistinguishedName>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_client_cert_verifier(Arc::new(RequestClientCert::new(hints)))
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(cfg))
}
