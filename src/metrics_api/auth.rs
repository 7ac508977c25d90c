//! Authentication (contract §3.2): the front-proxy client certificate, verified against the
//! requestheader CA with an allowed CN, is the only way `X-Remote-*` headers are trusted; an
//! ordinary client certificate from the client CA names the user by CN and groups by O; everyone
//! else is anonymous.
//!
//! The trust material lives in a [`TrustStore`] that can be swapped at runtime (from the
//! `kube-system/extension-apiserver-authentication` ConfigMap watch or from files).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use http::HeaderMap;
use rustls::DistinguishedName;
use rustls::RootCertStore;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;

/// The user a request is made as.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserInfo {
    /// User name (`system:anonymous` for anonymous requests).
    pub name: String,
    /// UID, if the front proxy sent one.
    pub uid: String,
    /// Groups, in the order received, plus `system:authenticated` for authenticated users.
    pub groups: Vec<String>,
    /// Extra attributes (keys lower case).
    pub extra: BTreeMap<String, Vec<String>>,
}

impl UserInfo {
    /// `system:anonymous` in group `system:unauthenticated`.
    pub fn anonymous() -> UserInfo {
        UserInfo {
            name: "system:anonymous".into(),
            uid: String::new(),
            groups: vec!["system:unauthenticated".into()],
            extra: BTreeMap::new(),
        }
    }

    /// Whether the user is in `system:masters` (authorized without a SubjectAccessReview).
    pub fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }

    fn add_authenticated(mut self) -> UserInfo {
        if !self.groups.iter().any(|g| g == "system:authenticated") {
            self.groups.push("system:authenticated".into());
        }
        self
    }
}

/// Invalid trust material.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A PEM bundle held no certificate or could not be parsed.
    #[error("{what}: no valid PEM certificate found")]
    NoCertificates {
        /// Which bundle.
        what: String,
    },
    /// A certificate was rejected as a trust anchor.
    #[error("{what}: {source}")]
    BadCertificate {
        /// Which bundle.
        what: String,
        /// Why.
        source: rustls::Error,
    },
    /// A ConfigMap value that should be a JSON string array is not one.
    #[error("ConfigMap key {key}: expected a JSON array of strings: {source}")]
    BadList {
        /// The key.
        key: String,
        /// Why.
        source: serde_json::Error,
    },
    /// A file could not be read.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The verifier could not be built.
    #[error("building the client certificate verifier: {0}")]
    Verifier(String),
}

/// Settings of the front-proxy (requestheader) authenticator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHeaderConfig {
    /// The CA bundle the front proxy's client certificate must chain to (several CAs during rotation).
    pub client_ca: Vec<CertificateDer<'static>>,
    /// CNs allowed for the front-proxy certificate; empty allows any CN signed by the CA.
    pub allowed_names: Vec<String>,
    /// Headers holding the user name; the first non-empty one wins.
    pub username_headers: Vec<String>,
    /// Headers holding the UID.
    pub uid_headers: Vec<String>,
    /// Headers holding groups; every value of each is one group.
    pub group_headers: Vec<String>,
    /// Prefixes of headers holding extra attributes.
    pub extra_headers_prefixes: Vec<String>,
}

impl RequestHeaderConfig {
    /// A config trusting `client_ca` with Kubernetes' default header names and any CN.
    pub fn with_defaults(client_ca: Vec<CertificateDer<'static>>) -> RequestHeaderConfig {
        RequestHeaderConfig {
            client_ca,
            allowed_names: Vec::new(),
            username_headers: vec!["X-Remote-User".into()],
            uid_headers: vec!["X-Remote-Uid".into()],
            group_headers: vec!["X-Remote-Group".into()],
            extra_headers_prefixes: vec!["X-Remote-Extra-".into()],
        }
    }
}

/// All trust material of the authenticators.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustConfig {
    /// The front-proxy authenticator; `None` disables it (every `X-Remote-*` header is ignored).
    pub request_header: Option<RequestHeaderConfig>,
    /// CA bundle for ordinary x509 client certificates (user = CN, groups = O); empty disables it.
    pub client_ca: Vec<CertificateDer<'static>>,
}

/// Parses a PEM bundle into certificates; `what` names the bundle in errors.
pub fn parse_pem_bundle(
    pem: &[u8],
    what: &str,
) -> Result<Vec<CertificateDer<'static>>, TrustError> {
    let certs: Vec<_> = CertificateDer::pem_slice_iter(pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TrustError::NoCertificates {
            what: what.to_owned(),
        });
    }
    Ok(certs)
}

/// Reads the trust material from the `data` of ConfigMap `kube-system/extension-apiserver-authentication`
/// (keys `client-ca-file`, `requestheader-client-ca-file`, `requestheader-allowed-names`,
/// `requestheader-{username,uid,group}-headers`, `requestheader-extra-headers-prefix`; the list keys
/// are JSON-encoded string arrays). Without `requestheader-client-ca-file` the front-proxy
/// authenticator is off. Missing header lists take Kubernetes' defaults.
pub fn trust_from_configmap_data(
    data: &BTreeMap<String, String>,
) -> Result<TrustConfig, TrustError> {
    let list = |key: &str| -> Result<Option<Vec<String>>, TrustError> {
        match data.get(key).map(|s| s.trim()).filter(|s| !s.is_empty()) {
            None => Ok(None),
            Some(s) => serde_json::from_str::<Vec<String>>(s)
                .map(Some)
                .map_err(|source| TrustError::BadList {
                    key: key.to_owned(),
                    source,
                }),
        }
    };
    let client_ca = match data.get("client-ca-file").filter(|s| !s.trim().is_empty()) {
        Some(pem) => parse_pem_bundle(pem.as_bytes(), "client-ca-file")?,
        None => Vec::new(),
    };
    let request_header = match data
        .get("requestheader-client-ca-file")
        .filter(|s| !s.trim().is_empty())
    {
        None => None,
        Some(pem) => {
            let mut cfg = RequestHeaderConfig::with_defaults(parse_pem_bundle(
                pem.as_bytes(),
                "requestheader-client-ca-file",
            )?);
            cfg.allowed_names = list("requestheader-allowed-names")?.unwrap_or_default();
            if let Some(v) = list("requestheader-username-headers")? {
                cfg.username_headers = v;
            }
            if let Some(v) = list("requestheader-uid-headers")? {
                cfg.uid_headers = v;
            }
            if let Some(v) = list("requestheader-group-headers")? {
                cfg.group_headers = v;
            }
            if let Some(v) = list("requestheader-extra-headers-prefix")? {
                cfg.extra_headers_prefixes = v;
            }
            Some(cfg)
        }
    };
    Ok(TrustConfig {
        request_header,
        client_ca,
    })
}

/// Trust material compiled into verifiers.
pub(crate) struct CompiledTrust {
    pub(crate) config: TrustConfig,
    request_header_verifier: Option<Arc<dyn ClientCertVerifier>>,
    client_ca_verifier: Option<Arc<dyn ClientCertVerifier>>,
    /// Subjects of every trusted CA, advertised in the TLS CertificateRequest.
    pub(crate) hints: Vec<DistinguishedName>,
}

fn build_verifier(
    certs: &[CertificateDer<'static>],
    what: &str,
) -> Result<(Arc<dyn ClientCertVerifier>, Vec<DistinguishedName>), TrustError> {
    let mut roots = RootCertStore::empty();
    for c in certs {
        roots
            .add(c.clone())
            .map_err(|source| TrustError::BadCertificate {
                what: what.to_owned(),
                source,
            })?;
    }
    let hints = roots.subjects();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .allow_unauthenticated()
        .build()
        .map_err(|e| TrustError::Verifier(e.to_string()))?;
    Ok((verifier, hints))
}

impl CompiledTrust {
    fn compile(config: TrustConfig) -> Result<CompiledTrust, TrustError> {
        let mut hints = Vec::new();
        let request_header_verifier = match &config.request_header {
            Some(rh) if !rh.client_ca.is_empty() => {
                let (v, h) = build_verifier(&rh.client_ca, "requestheader client CA")?;
                hints.extend(h);
                Some(v)
            }
            _ => None,
        };
        let client_ca_verifier = if config.client_ca.is_empty() {
            None
        } else {
            let (v, h) = build_verifier(&config.client_ca, "client CA")?;
            hints.extend(h);
            Some(v)
        };
        Ok(CompiledTrust {
            config,
            request_header_verifier,
            client_ca_verifier,
            hints,
        })
    }
}

/// The current trust material, swappable at runtime. Connections verify their client certificate
/// against the version current when a request arrives (re-verified when it changes).
pub struct TrustStore {
    current: ArcSwap<CompiledTrust>,
    generation: AtomicU64,
    loaded: AtomicBool,
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("generation", &self.generation())
            .field("loaded", &self.is_loaded())
            .finish()
    }
}

impl TrustStore {
    /// A store with nothing loaded yet: requests are anonymous and `/readyz` fails until [`TrustStore::set`].
    pub fn pending() -> Arc<TrustStore> {
        Arc::new(TrustStore {
            current: ArcSwap::from_pointee(CompiledTrust {
                config: TrustConfig::default(),
                request_header_verifier: None,
                client_ca_verifier: None,
                hints: Vec::new(),
            }),
            generation: AtomicU64::new(0),
            loaded: AtomicBool::new(false),
        })
    }

    /// A store loaded with `config`.
    pub fn new(config: TrustConfig) -> Result<Arc<TrustStore>, TrustError> {
        let store = TrustStore::pending();
        store.set(config)?;
        Ok(store)
    }

    /// Replaces the trust material (e.g. after the ConfigMap changed). On error the old material stays.
    pub fn set(&self, config: TrustConfig) -> Result<(), TrustError> {
        if self.is_loaded() && self.current.load().config == config {
            return Ok(());
        }
        let compiled = CompiledTrust::compile(config)?;
        self.current.store(Arc::new(compiled));
        self.generation.fetch_add(1, Ordering::SeqCst);
        self.loaded.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Whether trust material has been loaded at least once.
    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::SeqCst)
    }

    /// Increases each time the material changes.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::SeqCst)
    }

    pub(crate) fn current(&self) -> Arc<CompiledTrust> {
        self.current.load_full()
    }
}

/// What a connection's client certificate proves, computed once per connection and trust generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertIdentity {
    /// No certificate, or one no trusted CA signed.
    None,
    /// A front-proxy certificate with an allowed CN; `client` is what the client CA says of the
    /// same certificate, used when no username header is present (Go's authenticator chain).
    FrontProxy {
        /// (CN, O values) if the certificate also chains to the client CA.
        client: Option<(String, Vec<String>)>,
    },
    /// A front-proxy certificate whose CN is not allowed: every request is 401.
    NameNotAllowed(String),
    /// An ordinary client certificate from the client CA.
    Client {
        /// The CN.
        user: String,
        /// The O values.
        groups: Vec<String>,
    },
}

/// Classifies a presented chain (leaf first) against the trust material.
pub(crate) fn classify(trust: &CompiledTrust, chain: &[CertificateDer<'static>]) -> CertIdentity {
    let Some((leaf, intermediates)) = chain.split_first() else {
        return CertIdentity::None;
    };
    let now = UnixTime::now();
    let client = || -> Option<(String, Vec<String>)> {
        let v = trust.client_ca_verifier.as_ref()?;
        v.verify_client_cert(leaf, intermediates, now).ok()?;
        let s = subject_names(leaf)?;
        (!s.common_name.is_empty()).then_some((s.common_name, s.organizations))
    };
    if let (Some(v), Some(rh)) = (&trust.request_header_verifier, &trust.config.request_header)
        && v.verify_client_cert(leaf, intermediates, now).is_ok()
    {
        let cn = subject_names(leaf)
            .map(|s| s.common_name)
            .unwrap_or_default();
        if rh.allowed_names.is_empty() || rh.allowed_names.contains(&cn) {
            return CertIdentity::FrontProxy { client: client() };
        }
        return CertIdentity::NameNotAllowed(cn);
    }
    match client() {
        Some((user, groups)) => CertIdentity::Client { user, groups },
        None => CertIdentity::None,
    }
}

/// Authenticates a request from its connection's certificate identity and its headers.
/// `X-Remote-*`-style headers are read only for [`CertIdentity::FrontProxy`].
pub(crate) fn authenticate(
    trust: &CompiledTrust,
    identity: &CertIdentity,
    headers: &HeaderMap,
) -> Result<UserInfo, String> {
    match identity {
        CertIdentity::NameNotAllowed(cn) => {
            let allowed = trust
                .config
                .request_header
                .as_ref()
                .map(|r| r.allowed_names.join(", "))
                .unwrap_or_default();
            return Err(format!(
                "x509: subject with cn={cn} is not in the allowed list: [{allowed}]"
            ));
        }
        CertIdentity::FrontProxy { client } => {
            if let Some(rh) = &trust.config.request_header
                && let Some(user) = from_request_headers(rh, headers)
            {
                return Ok(user.add_authenticated());
            }
            if let Some((user, groups)) = client {
                let u = UserInfo {
                    name: user.clone(),
                    uid: String::new(),
                    groups: groups.clone(),
                    extra: BTreeMap::new(),
                };
                return Ok(u.add_authenticated());
            }
        }
        CertIdentity::Client { user, groups } => {
            let u = UserInfo {
                name: user.clone(),
                uid: String::new(),
                groups: groups.clone(),
                extra: BTreeMap::new(),
            };
            return Ok(u.add_authenticated());
        }
        CertIdentity::None => {}
    }
    Ok(UserInfo::anonymous())
}

fn from_request_headers(rh: &RequestHeaderConfig, headers: &HeaderMap) -> Option<UserInfo> {
    let first_value = |names: &[String]| -> Option<String> {
        names.iter().find_map(|n| {
            headers
                .get_all(n.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find(|v| !v.is_empty())
                .map(str::to_owned)
        })
    };
    let name = first_value(&rh.username_headers)?;
    let uid = first_value(&rh.uid_headers).unwrap_or_default();
    let mut groups = Vec::new();
    for h in &rh.group_headers {
        groups.extend(
            headers
                .get_all(h.as_str())
                .iter()
                .filter_map(|v| v.to_str().ok())
                .map(str::to_owned),
        );
    }
    let mut extra: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (hname, value) in headers {
        let hname = hname.as_str(); // lower case
        for prefix in &rh.extra_headers_prefixes {
            let prefix = prefix.to_ascii_lowercase();
            if let Some(rest) = hname.strip_prefix(prefix.as_str())
                && !rest.is_empty()
                && let Ok(v) = value.to_str()
            {
                let key = percent_encoding::percent_decode_str(rest)
                    .decode_utf8_lossy()
                    .to_lowercase();
                extra.entry(key).or_default().push(v.to_owned());
            }
        }
    }
    Some(UserInfo {
        name,
        uid,
        groups,
        extra,
    })
}

/// The names in a certificate's subject that authentication uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectNames {
    /// The (last) CN.
    pub common_name: String,
    /// Every O.
    pub organizations: Vec<String>,
}

/// Reads CN and O from an X.509 certificate's subject (a minimal DER walk; `None` if malformed).
pub fn subject_names(cert: &[u8]) -> Option<SubjectNames> {
    let (tag, cert_body, _) = der_tlv(cert)?;
    if tag != 0x30 {
        return None;
    }
    let (tag, mut tbs, _) = der_tlv(cert_body)?;
    if tag != 0x30 {
        return None;
    }
    // [0] version (optional), serial, signature, issuer, validity, subject.
    let (tag, _, rest) = der_tlv(tbs)?;
    if tag == 0xA0 {
        tbs = rest;
    }
    for _ in 0..4 {
        let (_, _, rest) = der_tlv(tbs)?;
        tbs = rest;
    }
    let (tag, mut subject, _) = der_tlv(tbs)?;
    if tag != 0x30 {
        return None;
    }
    let mut out = SubjectNames::default();
    while !subject.is_empty() {
        let (tag, mut set, rest) = der_tlv(subject)?;
        subject = rest;
        if tag != 0x31 {
            return None;
        }
        while !set.is_empty() {
            let (_, atv, rest) = der_tlv(set)?;
            set = rest;
            let (otag, oid, value) = der_tlv(atv)?;
            if otag != 0x06 {
                return None;
            }
            let (vtag, v, _) = der_tlv(value)?;
            let text = match vtag {
                0x0C | 0x13 | 0x16 | 0x14 => String::from_utf8_lossy(v).into_owned(),
                _ => continue,
            };
            match oid {
                [0x55, 0x04, 0x03] => out.common_name = text,
                [0x55, 0x04, 0x0A] => out.organizations.push(text),
                _ => {}
            }
        }
    }
    Some(out)
}

/// Splits one DER TLV off `input`: (tag, content, rest).
fn der_tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len0, mut rest) = rest.split_first()?;
    let len = if len0 < 0x80 {
        len0 as usize
    } else {
        let n = (len0 & 0x7F) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut l = 0usize;
        for &b in &rest[..n] {
            l = (l << 8) | b as usize;
        }
        rest = &rest[n..];
        l
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, DnType, KeyPair};

    fn cert_with(cn: &str, orgs: &[&str]) -> Vec<u8> {
        let mut p = CertificateParams::new(vec!["x.example".to_owned()]).unwrap();
        p.distinguished_name.push(DnType::CommonName, cn);
        for o in orgs {
            p.distinguished_name.push(DnType::OrganizationName, *o);
        }
        let key = KeyPair::generate().unwrap();
        p.self_signed(&key).unwrap().der().to_vec()
    }

    #[test]
    fn reads_cn_and_organizations() {
        // rcgen keeps one value per attribute type, so one O here; the parser collects every O.
        let der = cert_with("front-proxy-client", &["system:masters"]);
        let s = subject_names(&der).unwrap();
        assert_eq!(s.common_name, "front-proxy-client");
        assert_eq!(s.organizations, vec!["system:masters".to_owned()]);
        assert_eq!(subject_names(&der[..20]), None);
        assert_eq!(subject_names(b""), None);
    }

    fn ca_pem() -> String {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        p.distinguished_name
            .push(DnType::CommonName, "front-proxy-ca");
        p.self_signed(&KeyPair::generate().unwrap()).unwrap().pem()
    }

    #[test]
    fn configmap_data() {
        let bundle = format!("{}{}", ca_pem(), ca_pem());
        let data: BTreeMap<String, String> = [
            ("client-ca-file", ca_pem()),
            ("requestheader-client-ca-file", bundle),
            (
                "requestheader-allowed-names",
                r#"["front-proxy-client","aggregator"]"#.to_owned(),
            ),
            (
                "requestheader-username-headers",
                r#"["X-Remote-User"]"#.to_owned(),
            ),
            (
                "requestheader-group-headers",
                r#"["X-Remote-Group"]"#.to_owned(),
            ),
            (
                "requestheader-extra-headers-prefix",
                r#"["X-Remote-Extra-"]"#.to_owned(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let t = trust_from_configmap_data(&data).unwrap();
        let rh = t.request_header.clone().unwrap();
        assert_eq!(rh.client_ca.len(), 2);
        assert_eq!(rh.allowed_names, vec!["front-proxy-client", "aggregator"]);
        assert_eq!(rh.uid_headers, vec!["X-Remote-Uid"]);
        assert_eq!(t.client_ca.len(), 1);
        assert!(TrustStore::new(t).is_ok());

        // Only the client CA: the front proxy is off.
        let only_client: BTreeMap<String, String> =
            [("client-ca-file".to_owned(), ca_pem())].into();
        assert!(
            trust_from_configmap_data(&only_client)
                .unwrap()
                .request_header
                .is_none()
        );

        // Empty allowed names means any CN; a bad list or bad PEM is an error.
        let mut d2 = data.clone();
        d2.insert("requestheader-allowed-names".into(), "[]".into());
        assert!(
            trust_from_configmap_data(&d2)
                .unwrap()
                .request_header
                .unwrap()
                .allowed_names
                .is_empty()
        );
        d2.insert(
            "requestheader-group-headers".into(),
            "X-Remote-Group".into(),
        );
        assert!(matches!(
            trust_from_configmap_data(&d2),
            Err(TrustError::BadList { .. })
        ));
        let mut d3 = data;
        d3.insert("requestheader-client-ca-file".into(), "not a pem".into());
        assert!(matches!(
            trust_from_configmap_data(&d3),
            Err(TrustError::NoCertificates { .. })
        ));
    }

    #[test]
    fn store_generation_changes_only_on_change() {
        let store = TrustStore::pending();
        assert!(!store.is_loaded());
        let cfg = TrustConfig {
            request_header: Some(RequestHeaderConfig::with_defaults(
                parse_pem_bundle(ca_pem().as_bytes(), "t").unwrap(),
            )),
            client_ca: Vec::new(),
        };
        store.set(cfg.clone()).unwrap();
        let g = store.generation();
        store.set(cfg).unwrap();
        assert_eq!(store.generation(), g);
        store.set(TrustConfig::default()).unwrap();
        assert_eq!(store.generation(), g + 1);
        assert!(store.is_loaded());
    }

    #[test]
    fn headers_only_with_front_proxy_identity() {
        let cfg = TrustConfig {
            request_header: Some(RequestHeaderConfig::with_defaults(Vec::new())),
            client_ca: Vec::new(),
        };
        let trust = CompiledTrust::compile(cfg).unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-remote-user", "alice".parse().unwrap());
        h.append("x-remote-group", "g1".parse().unwrap());
        h.append("x-remote-group", "g2,g3".parse().unwrap());
        h.append("x-remote-extra-scopes%2Fa", "s1".parse().unwrap());
        h.append("X-Remote-Extra-Scopes%2FA", "s2".parse().unwrap());
        let u = authenticate(&trust, &CertIdentity::FrontProxy { client: None }, &h).unwrap();
        assert_eq!(u.name, "alice");
        assert_eq!(u.groups, vec!["g1", "g2,g3", "system:authenticated"]);
        assert_eq!(
            u.extra.get("scopes/a").unwrap(),
            &vec!["s1".to_owned(), "s2".to_owned()]
        );
        assert_eq!(
            authenticate(&trust, &CertIdentity::None, &h).unwrap(),
            UserInfo::anonymous()
        );
        assert!(authenticate(&trust, &CertIdentity::NameNotAllowed("x".into()), &h).is_err());
        // A verified front proxy without a user header yields nothing: anonymous.
        assert_eq!(
            authenticate(
                &trust,
                &CertIdentity::FrontProxy { client: None },
                &HeaderMap::new()
            )
            .unwrap(),
            UserInfo::anonymous()
        );
    }
}
