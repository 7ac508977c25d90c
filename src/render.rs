//! `storm-controller render`: the children the operator would create for the objects in a file,
//! computed offline by the same pure builders the reconcilers use (no cluster, no Nimbus).

use serde::Serialize;
use serde_json::Value;

use crate::controller::cluster::{build, validate};
use crate::controller::topology::build as topology_build;
use crate::controller::worker_pool::build as pool_build;
use crate::crd::{StormCluster, StormTopology, StormWorkerPool};

/// Output format of `render`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Format {
    /// A YAML stream, one document per object.
    #[default]
    Yaml,
    /// A JSON `v1/List`.
    Json,
}

/// Why a file cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The input is not YAML.
    #[error("the input is not a YAML stream: {0}")]
    Parse(String),
    /// A document is not an object of a kind we know.
    #[error("document {index}: {message}")]
    Document {
        /// 1-based position in the stream.
        index: usize,
        /// What is wrong.
        message: String,
    },
}

/// Renders the children of every StormCluster, StormTopology (its submit Job and inline worker
/// pool) and StormWorkerPool (standalone or inline: its supervisor Deployment and HPA) in `input`,
/// a YAML stream. A StormTopology needs its StormCluster (`spec.clusterRef`, same namespace) in the
/// same stream; a standalone StormWorkerPool needs its StormTopology and that topology's cluster.
/// Objects without a namespace are put in `default_namespace`.
pub fn render(input: &str, default_namespace: &str, format: Format) -> Result<String, RenderError> {
    let mut docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| RenderError::Parse(e.to_string()))?;
    for doc in docs.iter_mut().filter(|d| d.is_object()) {
        if doc["metadata"]["namespace"].is_null() {
            doc["metadata"]["namespace"] = default_namespace.into();
        }
    }
    // StormClusters by namespace and name, for the topologies that refer to them.
    let clusters: Vec<StormCluster> = docs
        .iter()
        .filter(|d| d["kind"] == "StormCluster")
        .filter_map(|d| serde_json::from_value(d.clone()).ok())
        .collect();
    let topologies: Vec<StormTopology> = docs
        .iter()
        .filter(|d| d["kind"] == "StormTopology")
        .filter_map(|d| serde_json::from_value(d.clone()).ok())
        .collect();
    let mut children: Vec<Value> = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        let index = i + 1;
        if doc.is_null() {
            continue;
        }
        let kind = doc["kind"].as_str().unwrap_or_default().to_string();
        let api_version = doc["apiVersion"].as_str().unwrap_or_default().to_string();
        let expected = format!("{}/{}", crate::crd::GROUP, crate::crd::VERSION);
        if api_version != expected {
            return Err(RenderError::Document {
                index,
                message: format!("apiVersion {api_version:?} is not {expected}"),
            });
        }
        let fail = |message: String| RenderError::Document { index, message };
        match kind.as_str() {
            "StormCluster" => {
                let cluster: StormCluster = serde_json::from_value(doc)
                    .map_err(|e| fail(format!("not a valid StormCluster: {e}")))?;
                let plan = validate::validate(&cluster).map_err(|e| {
                    fail(format!(
                        "StormCluster {}: {e}",
                        kube::ResourceExt::name_any(&cluster)
                    ))
                })?;
                if let validate::ClusterPlan::Managed(plan) = plan {
                    let c = build::build(&cluster, &plan);
                    push(&mut children, &c.config_map);
                    push(&mut children, &c.nimbus_headless);
                    push(&mut children, &c.nimbus_service);
                    push(&mut children, &c.nimbus);
                    push(&mut children, &c.nimbus_pdb);
                    push(&mut children, &c.supervisors);
                    if let Some((deploy, svc)) = &c.ui {
                        push(&mut children, deploy);
                        push(&mut children, svc);
                    }
                }
            }
            "StormTopology" => {
                let topology: StormTopology = serde_json::from_value(doc)
                    .map_err(|e| fail(format!("not a valid StormTopology: {e}")))?;
                let (job, pool) = render_topology(&topology, &clusters).map_err(fail)?;
                push(&mut children, &job);
                if let Some(pool) = pool {
                    push(&mut children, &pool);
                    render_pool(&mut children, &pool, &topology, &clusters).map_err(fail)?;
                }
            }
            "StormWorkerPool" => {
                let pool: StormWorkerPool = serde_json::from_value(doc)
                    .map_err(|e| fail(format!("not a valid StormWorkerPool: {e}")))?;
                let topology = find(&topologies, &pool.spec.topology_ref.name, &pool).ok_or_else(|| {
                    fail(format!(
                        "StormWorkerPool {}: its StormTopology {} is not in the input; render them together",
                        kube::ResourceExt::name_any(&pool),
                        pool.spec.topology_ref.name
                    ))
                })?;
                render_pool(&mut children, &pool, topology, &clusters).map_err(fail)?;
            }
            other => {
                return Err(fail(format!(
                    "kind {other:?} is not one of StormCluster, StormTopology, StormWorkerPool"
                )));
            }
        }
    }
    Ok(match format {
        Format::Yaml => children
            .iter()
            .map(|c| {
                format!(
                    "---\n{}",
                    serde_saphyr::to_string(c).expect("JSON values serialize to YAML")
                )
            })
            .collect(),
        Format::Json => {
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": children});
            serde_json::to_string_pretty(&list).expect("JSON values serialize") + "\n"
        }
    })
}

/// The object of kind `K` named `name` in the namespace of `near`.
fn find<'a, K: kube::ResourceExt, N: kube::ResourceExt>(
    objects: &'a [K],
    name: &str,
    near: &N,
) -> Option<&'a K> {
    objects
        .iter()
        .find(|o| o.name_any() == name && o.namespace() == near.namespace())
}

/// The supervisor Deployment and HPA of `pool`, which runs `topology`.
fn render_pool(
    children: &mut Vec<Value>,
    pool: &StormWorkerPool,
    topology: &StormTopology,
    clusters: &[StormCluster],
) -> Result<(), String> {
    use kube::ResourceExt;
    let name = pool.name_any();
    pool_build::validate(pool).map_err(|e| format!("StormWorkerPool {name}: {e}"))?;
    let cluster_name = &topology.spec.cluster_ref.name;
    let cluster = find(clusters, cluster_name, topology).ok_or_else(|| {
        format!(
            "StormWorkerPool {name}: the StormCluster {cluster_name} of its topology is not in the input; render them together"
        )
    })?;
    match validate::validate(cluster)
        .map_err(|e| format!("StormWorkerPool {name}: StormCluster {cluster_name}: {e}"))?
    {
        validate::ClusterPlan::Managed(plan) => {
            let replicas = pool.spec.template.replicas;
            push(
                children,
                &pool_build::deployment(pool, cluster, &plan, replicas),
            );
            if let Some(hpa) = pool_build::hpa(pool, cluster_name) {
                push(children, &hpa);
            }
            Ok(())
        }
        validate::ClusterPlan::External { .. } => Err(format!(
            "StormWorkerPool {name}: its StormCluster {cluster_name} is external; a worker pool needs a cluster the operator runs"
        )),
    }
}

/// The submit Job and inline pool of `topology`, with its cluster looked up in `clusters`.
fn render_topology(
    topology: &StormTopology,
    clusters: &[StormCluster],
) -> Result<
    (
        k8s_openapi::api::batch::v1::Job,
        Option<crate::crd::StormWorkerPool>,
    ),
    String,
> {
    use kube::ResourceExt;
    let name = topology.name_any();
    let namespace = topology.namespace().unwrap_or_default();
    let cluster_name = &topology.spec.cluster_ref.name;
    let cluster = find(clusters, cluster_name, topology).ok_or_else(|| {
            format!(
                "StormTopology {name}: its StormCluster {cluster_name} (namespace {namespace}) is not in the input; render them together"
            )
        })?;
    let plan = validate::validate(cluster)
        .map_err(|e| format!("StormTopology {name}: StormCluster {cluster_name}: {e}"))?;
    let version = topology_build::desired_version(topology);
    let storm_name = crate::storm_provider::storm_name(topology);
    let job = topology_build::submit_job(
        topology,
        cluster,
        &plan,
        &storm_name,
        &version,
        topology_build::DEFAULT_FETCH_IMAGE,
    )
    .map_err(|e| format!("StormTopology {name}: {e}"))?;
    Ok((job, topology_build::inline_worker_pool(topology)))
}

fn push<T: Serialize>(out: &mut Vec<Value>, object: &T) {
    out.push(serde_json::to_value(object).expect("Kubernetes objects serialize"));
}
