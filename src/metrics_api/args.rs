//! Command-line flags of the metrics API server, named as Kubernetes' generic API servers name them.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::timefmt::parse_go_duration;

/// How requests are authorized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AuthorizationMode {
    /// A SubjectAccessReview per (user, request), cached.
    #[value(name = "subjectaccessreview")]
    SubjectAccessReview,
    /// Everything allowed; refused unless bound to a loopback address.
    #[value(name = "always-allow")]
    AlwaysAllow,
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_go_duration(s).map_err(|e| e.to_string())
}

/// Flags of the aggregated `custom.metrics.k8s.io` server (flattened into `run`).
#[derive(Debug, Clone, Args)]
pub struct MetricsApiArgs {
    /// Address the HTTPS server listens on.
    #[arg(long, env = "STORM_CONTROLLER_BIND_ADDRESS", default_value = "0.0.0.0")]
    pub bind_address: IpAddr,

    /// Port of the HTTPS server.
    #[arg(long, env = "STORM_CONTROLLER_SECURE_PORT", default_value_t = 6443)]
    pub secure_port: u16,

    /// PEM serving certificate (chain); reloaded when the file changes. Without it a self-signed
    /// certificate for SERVICE_NAME.SERVICE_NAMESPACE.svc is generated in memory.
    #[arg(
        long,
        env = "STORM_CONTROLLER_TLS_CERT_FILE",
        requires = "tls_private_key_file"
    )]
    pub tls_cert_file: Option<PathBuf>,

    /// PEM private key of the serving certificate; reloaded when the file changes.
    #[arg(
        long,
        env = "STORM_CONTROLLER_TLS_PRIVATE_KEY_FILE",
        requires = "tls_cert_file"
    )]
    pub tls_private_key_file: Option<PathBuf>,

    /// Name of the Service in front of the server (for the self-signed certificate's DNS names).
    #[arg(
        long,
        env = "STORM_CONTROLLER_SERVICE_NAME",
        default_value = "storm-metrics-apiserver"
    )]
    pub service_name: String,

    /// Namespace of that Service.
    #[arg(
        long,
        env = "STORM_CONTROLLER_SERVICE_NAMESPACE",
        default_value = "storm-system"
    )]
    pub service_namespace: String,

    /// CA bundle that signs the front proxy's client certificate. Without it the
    /// kube-system/extension-apiserver-authentication ConfigMap is read and watched.
    #[arg(long, env = "STORM_CONTROLLER_REQUESTHEADER_CLIENT_CA_FILE")]
    pub requestheader_client_ca_file: Option<PathBuf>,

    /// CNs allowed for the front proxy's certificate (comma-separated); empty allows any CN signed by the CA.
    #[arg(
        long,
        env = "STORM_CONTROLLER_REQUESTHEADER_ALLOWED_NAMES",
        value_delimiter = ','
    )]
    pub requestheader_allowed_names: Vec<String>,

    /// Headers holding the user name.
    #[arg(
        long,
        env = "STORM_CONTROLLER_REQUESTHEADER_USERNAME_HEADERS",
        value_delimiter = ',',
        default_value = "X-Remote-User"
    )]
    pub requestheader_username_headers: Vec<String>,

    /// Headers holding the user's UID.
    #[arg(
        long,
        env = "STORM_CONTROLLER_REQUESTHEADER_UID_HEADERS",
        value_delimiter = ',',
        default_value = "X-Remote-Uid"
    )]
    pub requestheader_uid_headers: Vec<String>,

    /// Headers holding the groups (each value is one group).
    #[arg(
        long,
        env = "STORM_CONTROLLER_REQUESTHEADER_GROUP_HEADERS",
        value_delimiter = ',',
        default_value = "X-Remote-Group"
    )]
    pub requestheader_group_headers: Vec<String>,

    /// Prefixes of headers holding extra attributes.
    #[arg(
        long,
        env = "STORM_CONTROLLER_REQUESTHEADER_EXTRA_HEADERS_PREFIX",
        value_delimiter = ',',
        default_value = "X-Remote-Extra-"
    )]
    pub requestheader_extra_headers_prefix: Vec<String>,

    /// CA bundle for ordinary client certificates (user = CN, groups = O).
    #[arg(long, env = "STORM_CONTROLLER_CLIENT_CA_FILE")]
    pub client_ca_file: Option<PathBuf>,

    /// `subjectaccessreview` or `always-allow` (loopback bind addresses only).
    #[arg(
        long,
        env = "STORM_CONTROLLER_AUTHORIZATION_MODE",
        value_enum,
        default_value = "subjectaccessreview"
    )]
    pub authorization_mode: AuthorizationMode,

    /// How long an allowed SubjectAccessReview is cached (above the HPA's 15 s period).
    #[arg(long, env = "STORM_CONTROLLER_AUTHORIZATION_CACHE_TTL", value_parser = duration, default_value = "30s")]
    pub authorization_cache_ttl: Duration,

    /// How long a denied SubjectAccessReview is cached.
    #[arg(long, env = "STORM_CONTROLLER_AUTHORIZATION_DENY_CACHE_TTL", value_parser = duration, default_value = "10s")]
    pub authorization_deny_cache_ttl: Duration,

    /// Bound on one SubjectAccessReview call; past it the request fails with 500.
    #[arg(long, env = "STORM_CONTROLLER_AUTHORIZATION_TIMEOUT", value_parser = duration, default_value = "5s")]
    pub authorization_timeout: Duration,

    /// Samples older than this are not served (404/503 for one object, left out of lists).
    /// Default: 3 x the collector's poll interval.
    #[arg(long, env = "STORM_CONTROLLER_METRICS_MAX_AGE", value_parser = duration)]
    pub metrics_max_age: Option<Duration>,

    /// Requests served at once; beyond it 429 with Retry-After: 1.
    #[arg(
        long,
        env = "STORM_CONTROLLER_MAX_REQUESTS_IN_FLIGHT",
        default_value_t = 400
    )]
    pub max_requests_in_flight: usize,

    /// Server-side deadline of a request (a smaller `?timeout=` wins); past it 504.
    #[arg(long, env = "STORM_CONTROLLER_REQUEST_TIMEOUT", value_parser = duration, default_value = "10s")]
    pub request_timeout: Duration,

    /// On shutdown, how long /readyz fails while requests are still served, before the listener closes.
    #[arg(long, env = "STORM_CONTROLLER_SHUTDOWN_DELAY", value_parser = duration, default_value = "5s")]
    pub shutdown_delay: Duration,

    /// On shutdown, how long open connections may drain after the listener closed.
    #[arg(long, env = "STORM_CONTROLLER_SHUTDOWN_GRACE", value_parser = duration, default_value = "10s")]
    pub shutdown_grace: Duration,
}

impl MetricsApiArgs {
    /// The max age to use when `--metrics-max-age` is not given: 3 x `poll_interval`.
    pub fn metrics_max_age_or(&self, poll_interval: Duration) -> Duration {
        self.metrics_max_age.unwrap_or(poll_interval * 3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        api: MetricsApiArgs,
    }

    #[test]
    fn defaults_and_parsing() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        let c = Cli::parse_from(["x"]).api;
        assert_eq!(c.secure_port, 6443);
        assert_eq!(c.bind_address.to_string(), "0.0.0.0");
        assert_eq!(c.authorization_mode, AuthorizationMode::SubjectAccessReview);
        assert_eq!(c.authorization_cache_ttl, Duration::from_secs(30));
        assert_eq!(c.authorization_deny_cache_ttl, Duration::from_secs(10));
        assert_eq!(c.requestheader_username_headers, vec!["X-Remote-User"]);
        assert_eq!(
            c.metrics_max_age_or(Duration::from_secs(15)),
            Duration::from_secs(45)
        );
        let c = Cli::parse_from([
            "x",
            "--authorization-mode",
            "always-allow",
            "--requestheader-allowed-names",
            "a,b",
            "--metrics-max-age",
            "1m30s",
            "--bind-address",
            "127.0.0.1",
        ])
        .api;
        assert_eq!(c.authorization_mode, AuthorizationMode::AlwaysAllow);
        assert_eq!(c.requestheader_allowed_names, vec!["a", "b"]);
        assert_eq!(c.metrics_max_age, Some(Duration::from_secs(90)));
        assert!(Cli::try_parse_from(["x", "--tls-cert-file", "c.pem"]).is_err());
    }
}
