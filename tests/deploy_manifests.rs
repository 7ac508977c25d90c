//! The install manifests fit together the way a cluster needs them to: `charts/manifests/operator.yaml`
//! (Namespace, Deployment), `apiservice/*.yaml` (APIServices, Service, ServiceAccount, metrics API
//! RBAC), `charts/manifests/*.yaml` (the controllers' RBAC), `hack/Dockerfile` (the image the Deployment
//! runs) and the objects of `hack/e2e/` that `hack/e2e-kind.sh` applies. kubernetes-validate (in
//! `.ci/run`) checks each object against its schema; these tests check what no schema can: names,
//! labels and ports that must agree across files, and the container's arguments parsed by the real
//! command line.

mod support;

use std::collections::BTreeMap;

use clap::Parser as _;
use k8s_openapi::api::apps::v1::{Deployment, DeploymentSpec};
use k8s_openapi::api::core::v1::{Container, Namespace, PodSpec, Probe, Service, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, Role, RoleBinding, Subject};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::kube_aggregator::pkg::apis::apiregistration::v1::APIService;
use serde::de::DeserializeOwned;
use serde_json::Value;
use storm_controller::cli::{Cli, Command, RunArgs};
use storm_controller::crd::{self, StormCluster, StormTopology};

/// Every object of one YAML stream, with the file it came from.
fn objects(rel: &str) -> Vec<(String, Value)> {
    let text =
        std::fs::read_to_string(support::repo_path(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(&text).unwrap_or_else(|e| panic!("{rel} does not parse: {e}"));
    docs.into_iter()
        .filter(|d| d.is_object())
        .map(|d| (rel.to_string(), d))
        .collect()
}

/// Every object of the `*.yaml` files in `dir`.
fn objects_in(dir: &str) -> Vec<(String, Value)> {
    let mut files: Vec<String> = std::fs::read_dir(support::repo_path(dir))
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml"))
        .map(|name| format!("{dir}/{name}"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{dir} has no YAML files");
    files.iter().flat_map(|f| objects(f)).collect()
}

/// What a cluster gets from the operator's install: charts/manifests/, apiservice/, charts/manifests/.
fn install() -> Vec<(String, Value)> {
    let mut all = objects_in("charts/manifests");
    all.extend(objects_in("apiservice"));
    all.extend(objects_in("charts/manifests"));
    all
}

fn of_kind<K: DeserializeOwned>(all: &[(String, Value)], kind: &str) -> Vec<K> {
    all.iter()
        .filter(|(_, o)| o["kind"] == kind)
        .map(|(file, o)| {
            serde_json::from_value(o.clone())
                .unwrap_or_else(|e| panic!("{file}: a {kind} that does not parse: {e}"))
        })
        .collect()
}

fn one<K: DeserializeOwned>(all: &[(String, Value)], kind: &str) -> K {
    let mut found = of_kind::<K>(all, kind);
    assert_eq!(found.len(), 1, "expected exactly one {kind}");
    found.remove(0)
}

fn operator() -> Deployment {
    one(&objects("charts/manifests/operator.yaml"), "Deployment")
}

fn deployment_spec(deployment: &Deployment) -> DeploymentSpec {
    deployment.spec.clone().expect("the Deployment has a spec")
}

fn pod_spec(deployment: &Deployment) -> PodSpec {
    deployment_spec(deployment)
        .template
        .spec
        .clone()
        .expect("the Deployment has a pod spec")
}

fn container(deployment: &Deployment) -> Container {
    let containers = pod_spec(deployment).containers;
    assert_eq!(containers.len(), 1, "one container: storm-controller");
    containers.into_iter().next().unwrap()
}

fn pod_labels(deployment: &Deployment) -> BTreeMap<String, String> {
    deployment_spec(deployment)
        .template
        .metadata
        .as_ref()
        .and_then(|m| m.labels.clone())
        .unwrap_or_default()
}

fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The container's port of that name.
fn named_port(container: &Container, name: &str) -> i32 {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("the container has no port named {name}"))
        .container_port
}

/// The container port a probe or Service `targetPort` means.
fn resolve(container: &Container, port: &IntOrString) -> i32 {
    match port {
        IntOrString::String(name) => named_port(container, name),
        IntOrString::Int(number) => {
            assert!(
                container
                    .ports
                    .iter()
                    .flatten()
                    .any(|p| p.container_port == *number),
                "port {number} is not a containerPort of the operator"
            );
            *number
        }
    }
}

/// `run`'s flags as the real command line parses the container's arguments (the image's
/// ENTRYPOINT is the binary, so `args` follow the program name).
fn run_args(container: &Container) -> RunArgs {
    let args = container.args.clone().expect("the container has args");
    let argv = std::iter::once("storm-controller".to_string()).chain(args.iter().cloned());
    match Cli::try_parse_from(argv) {
        Ok(Cli {
            command: Command::Run(run),
        }) => *run,
        Ok(other) => panic!("the container runs {:?}, not run", other.command),
        Err(e) => panic!("the container's args {args:?} do not parse: {e}"),
    }
}

#[test]
fn the_service_selects_the_operator_pods_on_ports_the_container_has() {
    let all = install();
    let deployment = operator();
    let services = of_kind::<Service>(&all, "Service");
    assert_eq!(
        services.len(),
        1,
        "apiservice/service.yaml is the one Service"
    );
    let service = &services[0];
    assert_eq!(
        service.metadata.namespace, deployment.metadata.namespace,
        "the Service selects pods of its own namespace only"
    );
    let spec = service.spec.clone().expect("service spec");
    let selector = spec.selector.clone().unwrap_or_default();
    let labels = pod_labels(&deployment);
    assert!(
        selects(&selector, &labels),
        "Service selector {selector:?} does not select the pod labels {labels:?}"
    );
    let deployment_selector = deployment_spec(&deployment)
        .selector
        .match_labels
        .clone()
        .unwrap_or_default();
    assert!(
        selects(&deployment_selector, &labels),
        "the Deployment's selector {deployment_selector:?} misses its own pods {labels:?}"
    );

    let container = container(&deployment);
    let args = run_args(&container);
    let ports = spec.ports.clone().unwrap_or_default();
    assert!(!ports.is_empty());
    for port in &ports {
        let target = port
            .target_port
            .clone()
            .unwrap_or(IntOrString::Int(port.port));
        assert_eq!(
            resolve(&container, &target),
            i32::from(args.metrics_api.secure_port),
            "Service port {} must reach the metrics API's --secure-port",
            port.port
        );
    }

    // The APIServices send the aggregator to this Service, on a port it has.
    let service_name = service.metadata.name.clone();
    let service_namespace = service.metadata.namespace.clone();
    let apiservices = of_kind::<APIService>(&all, "APIService");
    assert_eq!(apiservices.len(), 2, "v1beta2 and v1beta1");
    for api in apiservices {
        let target = api
            .spec
            .as_ref()
            .and_then(|s| s.service.clone())
            .expect("an APIService backed by a Service");
        assert_eq!(target.name, service_name);
        assert_eq!(target.namespace, service_namespace);
        let port = target.port.unwrap_or(443);
        assert!(
            ports.iter().any(|p| p.port == port),
            "the APIService uses port {port}, the Service has {ports:?}"
        );
    }
}

#[test]
fn the_container_args_parse_with_the_real_cli_and_match_the_ports_and_the_service() {
    let all = install();
    let deployment = operator();
    let container = container(&deployment);
    assert_eq!(
        container.command, None,
        "no command: the image's ENTRYPOINT is the binary"
    );
    let args = run_args(&container);

    assert_eq!(
        named_port(&container, "https"),
        i32::from(args.metrics_api.secure_port),
        "containerPort https is the metrics API's --secure-port"
    );
    assert_eq!(
        named_port(&container, "admin"),
        i32::from(args.admin.admin_address.port()),
        "containerPort admin is --admin-address's port"
    );
    assert!(
        !args.admin.admin_address.ip().is_loopback()
            && !args.metrics_api.bind_address.is_loopback(),
        "the kubelet and the Service reach the pod IP, not loopback"
    );
    assert!(!args.controllers.no_controllers && !args.serve.no_metrics_api);
    assert!(args.serve.standalone_nimbus.is_none());

    // The self-signed certificate is made for <service>.<namespace>.svc.
    let service: Service = one(&all, "Service");
    assert_eq!(
        Some(args.metrics_api.service_name.clone()),
        service.metadata.name
    );
    assert_eq!(
        Some(args.metrics_api.service_namespace.clone()),
        service.metadata.namespace
    );

    // Two replicas act at once only with leader election, in a Lease the RBAC allows.
    let replicas = deployment_spec(&deployment).replicas.unwrap_or(1);
    assert!(replicas >= 2, "two replicas keep the metrics API available");
    assert!(
        args.controllers.leader_elect,
        "{replicas} replicas need --leader-elect"
    );
    let roles = of_kind::<Role>(&all, "Role");
    let lease_role = roles
        .iter()
        .find(|r| {
            r.rules
                .iter()
                .flatten()
                .any(|rule| rule.resources.iter().flatten().any(|res| res == "leases"))
        })
        .expect("a Role for the leader Lease");
    let lease_namespace = args
        .controllers
        .leader_election_namespace
        .clone()
        .or_else(|| deployment.metadata.namespace.clone());
    assert_eq!(
        lease_role.metadata.namespace, lease_namespace,
        "the Lease (POD_NAMESPACE unless --leader-election-namespace) is where the Role allows it"
    );

    // POD_NAME is the Lease holder, POD_NAMESPACE the Lease's namespace; nothing else comes from
    // the environment, so the args parsed above are the whole configuration.
    let env = container.env.clone().unwrap_or_default();
    for (name, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let var = env
            .iter()
            .find(|e| e.name == name)
            .unwrap_or_else(|| panic!("{name} is not set"));
        let path = var
            .value_from
            .as_ref()
            .and_then(|v| v.field_ref.as_ref())
            .map(|f| f.field_path.as_str());
        assert_eq!(path, Some(field), "{name} comes from the downward API");
    }
    assert!(
        env.iter().all(|e| !e.name.starts_with("STORM_CONTROLLER_")),
        "configuration goes in args, where this test parses it"
    );
}

#[test]
fn the_probes_reach_the_endpoints_that_serve_them() {
    let deployment = operator();
    let container = container(&deployment);
    let args = run_args(&container);
    let admin = i32::from(args.admin.admin_address.port());
    let metrics_api = i32::from(args.metrics_api.secure_port);
    let probe = |p: Option<Probe>, what: &str| {
        let get = p
            .and_then(|p| p.http_get)
            .unwrap_or_else(|| panic!("{what} is an httpGet probe"));
        (
            resolve(&container, &get.port),
            get.path.unwrap_or_default(),
            get.scheme.unwrap_or_else(|| "HTTP".into()),
        )
    };
    // /livez of the plain-HTTP admin server.
    assert_eq!(
        probe(container.liveness_probe.clone(), "liveness"),
        (admin, "/livez".to_string(), "HTTP".to_string())
    );
    // /readyz of the metrics API, which speaks only TLS.
    assert_eq!(
        probe(container.readiness_probe.clone(), "readiness"),
        (metrics_api, "/readyz".to_string(), "HTTPS".to_string())
    );
}

#[test]
fn every_binding_names_the_service_account_the_deployment_runs_as() {
    let all = install();
    let deployment = operator();
    let pod = pod_spec(&deployment);
    let account = pod
        .service_account_name
        .clone()
        .expect("serviceAccountName is set");
    let namespace = deployment.metadata.namespace.clone().expect("namespaced");

    let accounts = of_kind::<ServiceAccount>(&all, "ServiceAccount");
    assert!(
        accounts
            .iter()
            .any(|a| a.metadata.name.as_deref() == Some(&account)
                && a.metadata.namespace.as_deref() == Some(&namespace)),
        "no ServiceAccount {namespace}/{account} in the manifests"
    );
    let namespaces = of_kind::<Namespace>(&all, "Namespace");
    assert!(
        namespaces
            .iter()
            .any(|n| n.metadata.name.as_deref() == Some(&namespace)),
        "charts/manifests/ creates the namespace {namespace}"
    );

    let mut subjects: Vec<(String, Subject)> = Vec::new();
    for b in of_kind::<ClusterRoleBinding>(&all, "ClusterRoleBinding") {
        let name = b.metadata.name.clone().unwrap_or_default();
        subjects.extend(b.subjects.into_iter().flatten().map(|s| (name.clone(), s)));
    }
    for b in of_kind::<RoleBinding>(&all, "RoleBinding") {
        let name = b.metadata.name.clone().unwrap_or_default();
        subjects.extend(b.subjects.into_iter().flatten().map(|s| (name.clone(), s)));
    }
    assert!(
        subjects.len() >= 5,
        "controllers, leader election, auth-delegator, auth-reader, metrics-source-reader: {subjects:?}"
    );
    for (binding, subject) in subjects {
        assert_eq!(subject.kind, "ServiceAccount", "{binding}");
        assert_eq!(subject.name, account, "{binding}");
        assert_eq!(
            subject.namespace.as_deref(),
            Some(namespace.as_str()),
            "{binding}"
        );
    }
}

#[test]
fn the_pod_is_locked_down_and_matches_the_image() {
    let deployment = operator();
    let pod = pod_spec(&deployment);
    let container = container(&deployment);
    let pod_security = pod.security_context.clone().expect("pod securityContext");
    assert_eq!(pod_security.run_as_non_root, Some(true));
    assert_eq!(
        pod_security.seccomp_profile.map(|s| s.type_),
        Some("RuntimeDefault".to_string())
    );
    let security = container.security_context.clone().expect("securityContext");
    assert_eq!(security.allow_privilege_escalation, Some(false));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert_eq!(
        security.capabilities.and_then(|c| c.drop),
        Some(vec!["ALL".to_string()])
    );
    let resources = container.resources.clone().expect("resources");
    assert!(
        resources
            .requests
            .is_some_and(|r| r.contains_key("cpu") && r.contains_key("memory"))
    );
    assert!(resources.limits.is_some_and(|l| l.contains_key("memory")));
    let anti_affinity = pod
        .affinity
        .and_then(|a| a.pod_anti_affinity)
        .expect("podAntiAffinity");
    assert!(
        anti_affinity
            .required_during_scheduling_ignored_during_execution
            .is_none(),
        "required anti-affinity would leave the second replica Pending on a one-node cluster (kind)"
    );
    assert!(
        anti_affinity
            .preferred_during_scheduling_ignored_during_execution
            .iter()
            .flatten()
            .any(|w| w.pod_affinity_term.topology_key == "kubernetes.io/hostname"),
        "replicas spread over nodes"
    );

    // hack/Dockerfile: the user the pod runs as, and the binary as ENTRYPOINT (no command above).
    let dockerfile = std::fs::read_to_string(support::repo_path("hack/Dockerfile")).unwrap();
    let last_stage = dockerfile
        .rsplit("\nFROM ")
        .next()
        .expect("a multi-stage Dockerfile");
    let instruction = |name: &str| {
        last_stage
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .unwrap_or_else(|| panic!("the runtime stage has no {name}"))
            .trim()
            .to_string()
    };
    assert!(last_stage.starts_with("gcr.io/distroless/cc-debian12:nonroot"));
    let user = instruction("USER");
    let uid: i64 = user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("USER {user} must be numeric for runAsNonRoot"));
    assert_ne!(uid, 0);
    assert_eq!(
        pod_security.run_as_user,
        Some(uid),
        "runAsUser is the image's USER"
    );
    let entrypoint: Vec<String> = serde_json::from_str(&instruction("ENTRYPOINT"))
        .expect("ENTRYPOINT in exec form (a JSON array): distroless has no shell");
    assert_eq!(entrypoint, vec!["/usr/local/bin/storm-controller"]);
    assert!(
        last_stage
            .contains("COPY --from=build /out/storm-controller /usr/local/bin/storm-controller"),
        "the ENTRYPOINT binary is the one the build stage made"
    );
}

/// The objects `hack/e2e-kind.sh` applies besides the install: kubernetes-validate cannot check
/// custom resources, so they are checked here against the CRDs' schema and CEL rules, and against
/// the ZooKeeper Service they must reach.
#[test]
fn the_e2e_objects_pass_the_crds_and_point_at_each_other() {
    let crds = crd::crds();
    let all = objects_in("hack/e2e");
    let mut custom = 0;
    for (file, object) in &all {
        let kind = object["kind"].as_str().unwrap_or_default();
        let Some(c) = crds.iter().find(|c| c.spec.names.kind == kind) else {
            continue;
        };
        custom += 1;
        let errors = support::openapi::validate_object(c, object);
        assert!(errors.is_empty(), "{file}: {errors:?}");
        if let Err(errors) = kube::core::cel::Validator::new().validate(
            &support::openapi::crd_schema(c),
            object,
            None,
        ) {
            panic!("{file} breaks a CEL rule: {errors:?}");
        }
    }
    assert_eq!(custom, 2, "a StormCluster and a StormTopology");

    let cluster: StormCluster = one(&all, "StormCluster");
    let topology: StormTopology = one(&all, "StormTopology");
    assert_eq!(
        topology.spec.cluster_ref.name,
        cluster.metadata.name.clone().unwrap()
    );
    assert_eq!(topology.metadata.namespace, cluster.metadata.namespace);

    let zookeeper: Service = one(&all, "Service");
    let zk = cluster.spec.zookeeper.clone().expect("a managed cluster");
    let host = format!(
        "{}.{}.svc.cluster.local",
        zookeeper.metadata.name.clone().unwrap(),
        zookeeper.metadata.namespace.clone().unwrap()
    );
    assert_eq!(zk.servers, vec![host]);
    assert!(
        zookeeper
            .spec
            .unwrap()
            .ports
            .unwrap_or_default()
            .iter()
            .any(|p| p.port == zk.port),
        "the ZooKeeper Service serves spec.zookeeper.port {}",
        zk.port
    );

    // The operator builds the cluster's and the topology's children from them.
    let stream = ["hack/e2e/stormcluster.yaml", "hack/e2e/stormtopology.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(support::repo_path(f)).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let rendered = storm_controller::render::render(
        &stream,
        "default",
        storm_controller::render::Format::Yaml,
    )
    .expect("render the e2e objects");
    let kinds: Vec<Value> = serde_saphyr::from_multiple(&rendered).unwrap();
    let kinds: Vec<&str> = kinds.iter().filter_map(|d| d["kind"].as_str()).collect();
    for wanted in ["StatefulSet", "Deployment", "Job"] {
        assert!(
            kinds.contains(&wanted),
            "render made no {wanted}: {kinds:?}"
        );
    }
}
