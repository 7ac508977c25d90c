//! Pure validation of a StormCluster spec: what the CEL rules say, checked again in the
//! reconciler (objects stored before a CRD upgrade, or written where admission was bypassed),
//! turned into a plan the builders can trust.

use crate::crd::cluster::{NimbusSpec, StormCluster, SupervisorsSpec, UiSpec, ZooKeeperSpec};
use crate::crd::common::{CLUSTER_OWNED_KEYS, owned_keys_in};
use kube::ResourceExt;

/// A spec the builders can act on.
#[derive(Clone, Debug, PartialEq)]
pub enum ClusterPlan {
    /// The operator runs the cluster.
    Managed(Box<Managed>),
    /// The cluster runs elsewhere; the operator only talks to these Nimbus seeds.
    External {
        /// `(host, port)` of each seed.
        seeds: Vec<(String, u16)>,
    },
}

/// A managed cluster with every default filled in.
#[derive(Clone, Debug, PartialEq)]
pub struct Managed {
    /// Cluster name.
    pub name: String,
    /// Namespace of the cluster and its children.
    pub namespace: String,
    /// Storm image.
    pub image: String,
    /// ZooKeeper ensemble.
    pub zookeeper: ZooKeeperSpec,
    /// Nimbus settings.
    pub nimbus: NimbusSpec,
    /// Shared supervisor pool.
    pub supervisors: SupervisorsSpec,
    /// The UI, when enabled.
    pub ui: Option<UiSpec>,
}

/// Why a spec cannot be acted on. Each variant's name is its Event reason.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum InvalidSpec {
    /// `external` together with managed parts.
    #[error(
        "spec.external excludes the managed parts: remove spec.zookeeper, spec.nimbus, spec.supervisors and spec.ui, or remove spec.external"
    )]
    ExternalWithManagedParts,
    /// A managed cluster without ZooKeeper.
    #[error(
        "spec.zookeeper.servers is required for a cluster the operator runs (or set spec.external.nimbusSeeds)"
    )]
    ZooKeeperMissing,
    /// A managed cluster without an image.
    #[error("spec.image is required for a cluster the operator runs")]
    ImageMissing,
    /// A storm.yaml key the operator owns.
    #[error("spec.config: {0}")]
    OwnedConfigKey(String),
    /// A seed that is not `host` or `host:port`.
    #[error("spec.external.nimbusSeeds: {0:?} is not host or host:port")]
    BadSeed(String),
    /// The object has no namespace (the API always sets one).
    #[error("the StormCluster has no namespace")]
    NoNamespace,
}

impl InvalidSpec {
    /// The Event and condition reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            InvalidSpec::ExternalWithManagedParts => "ExternalWithManagedParts",
            InvalidSpec::ZooKeeperMissing => "ZooKeeperMissing",
            InvalidSpec::ImageMissing => "ImageMissing",
            InvalidSpec::OwnedConfigKey(_) => "OwnedConfigKey",
            InvalidSpec::BadSeed(_) => "BadNimbusSeed",
            InvalidSpec::NoNamespace => "NoNamespace",
        }
    }
}

/// Parses `host` or `host:port`; the port defaults to `default_port`.
pub fn parse_seed(seed: &str, default_port: u16) -> Option<(String, u16)> {
    let (host, port) = match seed.rsplit_once(':') {
        Some((host, port)) => (host, port.parse::<u16>().ok().filter(|p| *p > 0)?),
        None => (seed, default_port),
    };
    let valid_host = !host.is_empty()
        && host.len() <= 253
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    valid_host.then(|| (host.to_string(), port))
}

/// Checks a StormCluster and fills in defaults.
pub fn validate(cluster: &StormCluster) -> Result<ClusterPlan, InvalidSpec> {
    let spec = &cluster.spec;
    if let Some((_, message)) = owned_keys_in(&spec.config, CLUSTER_OWNED_KEYS)
        .into_iter()
        .next()
    {
        return Err(InvalidSpec::OwnedConfigKey(message));
    }
    let thrift_port = u16::try_from(spec.thrift.port).unwrap_or(6627);
    if let Some(external) = &spec.external {
        if spec.zookeeper.is_some()
            || spec.nimbus.is_some()
            || spec.supervisors.is_some()
            || spec.ui.is_some()
        {
            return Err(InvalidSpec::ExternalWithManagedParts);
        }
        let seeds = external
            .nimbus_seeds
            .iter()
            .map(|s| parse_seed(s, thrift_port).ok_or_else(|| InvalidSpec::BadSeed(s.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(ClusterPlan::External { seeds });
    }
    let zookeeper = spec
        .zookeeper
        .clone()
        .ok_or(InvalidSpec::ZooKeeperMissing)?;
    if zookeeper.servers.is_empty() {
        return Err(InvalidSpec::ZooKeeperMissing);
    }
    let image = spec
        .image
        .clone()
        .filter(|i| !i.is_empty())
        .ok_or(InvalidSpec::ImageMissing)?;
    let namespace = cluster.namespace().ok_or(InvalidSpec::NoNamespace)?;
    let nimbus = spec.nimbus.clone().unwrap_or_else(|| {
        serde_json::from_value(serde_json::json!({}))
            .expect("NimbusSpec has defaults for every field")
    });
    let supervisors = spec.supervisors.clone().unwrap_or_else(|| {
        serde_json::from_value(serde_json::json!({}))
            .expect("SupervisorsSpec has defaults for every field")
    });
    let ui = spec.ui.clone().filter(|ui| ui.enabled);
    Ok(ClusterPlan::Managed(Box::new(Managed {
        name: cluster.name_any(),
        namespace,
        image,
        zookeeper,
        nimbus,
        supervisors,
        ui,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cluster(yaml: &str) -> StormCluster {
        serde_saphyr::from_str(yaml).expect("fixture parses")
    }

    const MANAGED: &str = "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: s, namespace: ns}\nspec:\n  image: apache/storm:2.8.1\n  zookeeper: {servers: [zk]}\n";

    #[test]
    fn managed_cluster_gets_defaults() {
        let ClusterPlan::Managed(m) = validate(&cluster(MANAGED)).unwrap() else {
            panic!("managed");
        };
        assert_eq!(m.nimbus.replicas, 1);
        assert_eq!(m.supervisors.replicas, 1);
        assert_eq!(m.supervisors.slots_per_supervisor, 4);
        assert_eq!(m.zookeeper.port, 2181);
        assert!(m.ui.is_none(), "no ui section means no UI");
        assert_eq!(m.namespace, "ns");
    }

    #[test]
    fn disabled_ui_is_no_ui() {
        let c = cluster(&format!("{MANAGED}  ui: {{enabled: false}}\n"));
        let ClusterPlan::Managed(m) = validate(&c).unwrap() else {
            panic!()
        };
        assert!(m.ui.is_none());
        let c = cluster(&format!("{MANAGED}  ui: {{}}\n"));
        let ClusterPlan::Managed(m) = validate(&c).unwrap() else {
            panic!()
        };
        assert!(m.ui.is_some());
    }

    #[test]
    fn external_seeds_get_the_thrift_port() {
        let c = cluster(
            "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: s, namespace: ns}\nspec:\n  thrift: {port: 7000}\n  external: {nimbusSeeds: [a, 'b:6627']}\n",
        );
        assert_eq!(
            validate(&c).unwrap(),
            ClusterPlan::External {
                seeds: vec![("a".into(), 7000), ("b".into(), 6627)]
            }
        );
    }

    #[test]
    fn bad_specs_are_named() {
        let ext_and_zk = cluster(
            "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: s, namespace: ns}\nspec:\n  zookeeper: {servers: [zk]}\n  external: {nimbusSeeds: [a]}\n",
        );
        assert_eq!(
            validate(&ext_and_zk),
            Err(InvalidSpec::ExternalWithManagedParts)
        );
        let no_zk = cluster(
            "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: s, namespace: ns}\nspec: {image: x}\n",
        );
        assert_eq!(validate(&no_zk), Err(InvalidSpec::ZooKeeperMissing));
        let no_image = cluster(
            "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: s, namespace: ns}\nspec: {zookeeper: {servers: [zk]}}\n",
        );
        assert_eq!(validate(&no_image), Err(InvalidSpec::ImageMissing));
        let owned = cluster(&format!("{MANAGED}  config: {{nimbus.seeds: [x]}}\n"));
        let err = validate(&owned).unwrap_err();
        assert_eq!(err.reason(), "OwnedConfigKey");
        assert!(
            err.to_string().contains("spec.external.nimbusSeeds"),
            "{err}"
        );
        let bad_seed = cluster(
            "apiVersion: storm.apache.org/v1alpha1\nkind: StormCluster\nmetadata: {name: s, namespace: ns}\nspec:\n  external: {nimbusSeeds: ['a:notaport']}\n",
        );
        assert_eq!(
            validate(&bad_seed),
            Err(InvalidSpec::BadSeed("a:notaport".into()))
        );
    }

    #[test]
    fn seeds_parse() {
        assert_eq!(
            parse_seed("n-0.svc:6627", 1),
            Some(("n-0.svc".into(), 6627))
        );
        assert_eq!(parse_seed("n", 6627), Some(("n".into(), 6627)));
        assert_eq!(parse_seed("n:0", 6627), None);
        assert_eq!(parse_seed(":1", 6627), None);
        assert_eq!(parse_seed("a b:1", 6627), None);
    }
}
