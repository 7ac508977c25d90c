//! `storm-controller dev`: the operator against an embedded sandbox on 127.0.0.1, for a machine
//! without a Kubernetes cluster.
//!
//! One tokio runtime runs:
//! 1. [`KubeSim`], the in-memory Kubernetes API (Storm CRDs installed, every SubjectAccessReview
//!    allowed), with a kubeconfig written for kubectl;
//! 2. a [`FakeNimbus`] with three supervisors, which plays Storm: [`play_submit_jobs`] watches the
//!    operator's submit Jobs and, for each new one, puts the topology it would submit into the
//!    fake cluster and marks the Job complete ([`play_submit_job`], which the controller tests use too);
//! 3. a StormCluster `dev` in namespace `storm` (the external-cluster sample pointed at the fake
//!    Nimbus) and K sample StormTopology objects;
//! 4. the operator itself: [`crate::run::serve`], the body of `run`, with the sandbox's client,
//!    leader election off, the custom metrics API on a self-signed certificate and the front-proxy
//!    CA from a generated `extension-apiserver-authentication` ConfigMap.
//!
//! A banner on stdout names every address; the process stops on SIGINT/SIGTERM or after `--for`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context as _;
use futures::StreamExt as _;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::cli::{DevArgs, RunArgs};
use crate::controller::labels::Component;
use crate::controller::topology::build::{OWNER_CONF_KEY, STORM_NAME_ENV};
use crate::controller::topology::submit::{JobState, job_state};
use crate::crd::{StormCluster, StormTopology};
use crate::kubesim::{ApiError, KubeSim, KubeSimOptions};
use crate::nimbus::fake::{
    FakeCluster, FakeComponent, FakeComponentStats, FakeNimbus, FakeTopology, fake_supervisor,
};
use crate::run::{Embedding, Listening};

/// Namespace of the sandbox's Storm objects (and the kubeconfig's default namespace).
pub const NAMESPACE: &str = "storm";
/// Name of the sandbox's StormCluster.
pub const CLUSTER: &str = "dev";
/// Name of the first sample StormTopology; later ones are `wordcount-2`, `wordcount-3`, ...
pub const TOPOLOGY: &str = "wordcount";
/// Storm image the sandbox's StormCluster names (its submit Jobs never run, the fake Nimbus plays them).
pub const IMAGE: &str = "apache/storm:2.8.1";

const SUPERVISORS: usize = 3;
const SLOTS_PER_SUPERVISOR: i32 = 4;

/// Entry point of `dev` from the CLI: logging, a tokio runtime, [`run`], and the exit code.
pub fn main(args: DevArgs) -> ExitCode {
    let log = args.log.clone();
    crate::run::entry_point("storm-controller dev", &log, move || run(args))
}

/// Ports of the sandbox's four servers; all 0 (free ports) unless `--port-base` is given.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Ports {
    kube: u16,
    nimbus: u16,
    admin: u16,
    metrics_api: u16,
}

impl Ports {
    fn from_base(base: u16) -> anyhow::Result<Ports> {
        if base == 0 {
            return Ok(Ports::default());
        }
        let at = |offset: u16| {
            base.checked_add(offset)
                .with_context(|| format!("--port-base {base}: needs four ports up to {base}+3"))
        };
        Ok(Ports {
            kube: base,
            nimbus: at(1)?,
            admin: at(2)?,
            metrics_api: at(3)?,
        })
    }
}

/// Runs the sandbox until SIGINT/SIGTERM or `--for`, then stops the operator, the fake Nimbus and
/// the API, and removes a kubeconfig it wrote to a temporary directory.
pub async fn run(args: DevArgs) -> anyhow::Result<()> {
    // First, as in `run`: a Ctrl-C from now on stops the sandbox cleanly.
    let mut signals = crate::run::Signals::new().context("installing SIGTERM/SIGINT handlers")?;
    let ports = Ports::from_base(args.port_base)?;
    let sim = KubeSim::start_with(KubeSimOptions {
        port: ports.kube,
        ..KubeSimOptions::default()
    })
    .await
    .with_context(|| format!("starting the Kubernetes API on 127.0.0.1:{}", ports.kube))?;
    // Nobody authenticates to the sandbox: every SubjectAccessReview (the metrics API's) is allowed.
    sim.allow("*", "*", "*", "*");
    let fake = FakeNimbus::start_on(ports.nimbus)
        .await
        .with_context(|| format!("starting the fake Nimbus on 127.0.0.1:{}", ports.nimbus))?;
    fake.cluster().set_supervisors(
        (0..SUPERVISORS)
            .map(|i| {
                let mut s = fake_supervisor("127.0.0.1", SLOTS_PER_SUPERVISOR, 0);
                s.supervisor_id = format!("fake-supervisor-{i}");
                s
            })
            .collect(),
    );
    let kubeconfig = KubeconfigFile::write(&sim, args.kubeconfig.clone())?;
    let topologies = seed(&sim.client(), &fake.endpoint(), args.topologies)
        .await
        .context("creating the sandbox's objects")?;

    let run_args = run_args(&ports)?;
    let (listening, addresses) = mpsc::unbounded_channel();
    let stop = async move {
        match args.run_for {
            Some(limit) => tokio::select! {
                name = signals.recv() => name,
                () = tokio::time::sleep(limit) => "--for elapsed",
            },
            None => signals.recv().await,
        }
    };
    let jobs_stop = CancellationToken::new();
    let operator = async {
        let embedding = Embedding {
            client: Some(sim.client()),
            listening: Some(listening),
        };
        let result = crate::run::serve(run_args, embedding, stop).await;
        jobs_stop.cancel();
        result
    };
    let banner = Banner {
        kube: sim.url(),
        kubeconfig: kubeconfig.path.clone(),
        nimbus: fake.endpoint(),
        topology: topologies.first().cloned(),
    };
    let storm = fake.cluster();
    let (result, (), ()) = tokio::join!(
        operator,
        banner.print_when_listening(addresses),
        play_submit_jobs(&sim, &storm, jobs_stop.clone()),
    );
    fake.shutdown().await;
    sim.shutdown().await;
    drop(kubeconfig);
    result
}

/// The operator's flags in the sandbox: `run`'s defaults (never read from `STORM_CONTROLLER_*`
/// variables, which are meant for `run`), 127.0.0.1 only, no leader election, quick polls and a
/// quick shutdown.
fn run_args(ports: &Ports) -> anyhow::Result<RunArgs> {
    #[derive(clap::Parser)]
    struct Run {
        #[command(flatten)]
        run: RunArgs,
    }
    let command =
        <Run as clap::CommandFactory>::command().mut_args(|arg| arg.env(None::<&'static str>));
    let admin = format!("127.0.0.1:{}", ports.admin);
    let secure_port = ports.metrics_api.to_string();
    let matches = command
        .try_get_matches_from([
            "run",
            "--admin-address",
            &admin,
            "--bind-address",
            "127.0.0.1",
            "--secure-port",
            &secure_port,
            "--leader-elect=false",
            "--nimbus-poll-interval",
            "2s",
            "--resync-interval",
            "10s",
            "--finalizer-timeout",
            "30s",
            "--shutdown-delay",
            "0s",
            "--shutdown-grace",
            "2s",
        ])
        .context("the sandbox's operator flags")?;
    let parsed = <Run as clap::FromArgMatches>::from_arg_matches(&matches)
        .context("the sandbox's operator flags")?;
    Ok(parsed.run)
}

/// The kubeconfig of the sandbox on disk; a file in a temporary directory is removed on drop.
struct KubeconfigFile {
    path: PathBuf,
    temporary: Option<PathBuf>,
}

impl KubeconfigFile {
    /// Writes the sandbox's kubeconfig (default namespace `storm`) to `path`, or to a new
    /// temporary directory.
    fn write(sim: &KubeSim, path: Option<PathBuf>) -> anyhow::Result<KubeconfigFile> {
        let mut config = serde_json::to_value(sim.kubeconfig()).context("the kubeconfig")?;
        config["contexts"][0]["context"]["namespace"] = json!(NAMESPACE);
        let yaml = serde_saphyr::to_string(&config).context("the kubeconfig as YAML")?;
        let (path, temporary) = match path {
            Some(path) => (path, None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "storm-controller-dev-{}-{}",
                    std::process::id(),
                    sim.addr().port()
                ));
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
                (dir.join("kubeconfig"), Some(dir))
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
        std::fs::write(&path, yaml).with_context(|| format!("writing {}", path.display()))?;
        Ok(KubeconfigFile { path, temporary })
    }
}

impl Drop for KubeconfigFile {
    fn drop(&mut self) {
        if let Some(dir) = &self.temporary
            && let Err(error) = std::fs::remove_dir_all(dir)
        {
            warn!(%error, dir = %dir.display(), "could not remove the sandbox's kubeconfig");
        }
    }
}

/// Creates the namespace, the front-proxy trust ConfigMap, the StormCluster `dev` pointed at the
/// fake Nimbus `nimbus`, and `topologies` sample StormTopology objects; returns their names.
async fn seed(client: &kube::Client, nimbus: &str, topologies: u16) -> anyhow::Result<Vec<String>> {
    let post = PostParams::default();
    let namespace: Namespace = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}
    }))?;
    Api::<Namespace>::all(client.clone())
        .create(&post, &namespace)
        .await
        .context("namespace")?;
    Api::<ConfigMap>::namespaced(client.clone(), crate::metrics_api::kube_trust::NAMESPACE)
        .create(&post, &front_proxy_trust()?)
        .await
        .context("the extension-apiserver-authentication ConfigMap")?;
    Api::<StormCluster>::namespaced(client.clone(), NAMESPACE)
        .create(&post, &cluster(nimbus)?)
        .await
        .context("the StormCluster")?;
    let api = Api::<StormTopology>::namespaced(client.clone(), NAMESPACE);
    let mut names = Vec::new();
    for index in 1..=topologies {
        let topology = sample_topology(index)?;
        api.create(&post, &topology)
            .await
            .context("a StormTopology")?;
        names.push(kube::ResourceExt::name_any(&topology));
    }
    Ok(names)
}

/// The external-cluster sample (`docs/samples/stormcluster-external.yaml`) as StormCluster
/// `storm/dev` whose only Nimbus seed is `nimbus`, with a Storm image for its submit Jobs.
pub fn cluster(nimbus: &str) -> anyhow::Result<StormCluster> {
    let mut cluster: StormCluster =
        serde_saphyr::from_str(include_str!("../docs/samples/stormcluster-external.yaml"))
            .context("the external StormCluster sample")?;
    cluster.metadata.name = Some(CLUSTER.into());
    cluster.metadata.namespace = Some(NAMESPACE.into());
    cluster.spec.image = Some(IMAGE.into());
    cluster
        .spec
        .external
        .as_mut()
        .context("the external sample has spec.external")?
        .nimbus_seeds = vec![nimbus.to_string()];
    Ok(cluster)
}

/// Sample StormTopology number `index` (from 1): `wordcount`, then `wordcount-<index>`, on the
/// StormCluster `dev` with two workers.
pub fn sample_topology(index: u16) -> anyhow::Result<StormTopology> {
    let name = if index <= 1 {
        TOPOLOGY.to_string()
    } else {
        format!("{TOPOLOGY}-{index}")
    };
    Ok(serde_json::from_value(json!({
        "apiVersion": "storm.apache.org/v1alpha1",
        "kind": "StormTopology",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": {"app": TOPOLOGY}},
        "spec": {
            "clusterRef": {"name": CLUSTER},
            "jar": {"url": "https://artifacts.example.com/storm-starter-2.8.1.jar"},
            "mainClass": "org.apache.storm.starter.WordCountTopology",
            "args": ["$(STORM_TOPOLOGY_NAME)"],
            "workers": 2,
            "version": "1.0.0",
        }
    }))?)
}

/// `kube-system/extension-apiserver-authentication` as kube-apiserver publishes it, with a front-proxy
/// CA generated now: the metrics API loads its trust from it as in a real cluster. Nobody holds the
/// CA's key, so every request to the metrics API is anonymous (and allowed by the sandbox).
fn front_proxy_trust() -> anyhow::Result<ConfigMap> {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        "storm-controller-dev-front-proxy-ca",
    );
    let ca = params.self_signed(&rcgen::KeyPair::generate()?)?;
    let data = BTreeMap::from([
        ("requestheader-client-ca-file", ca.pem()),
        (
            "requestheader-allowed-names",
            r#"["front-proxy-client"]"#.into(),
        ),
        (
            "requestheader-username-headers",
            r#"["X-Remote-User"]"#.into(),
        ),
        (
            "requestheader-group-headers",
            r#"["X-Remote-Group"]"#.into(),
        ),
        (
            "requestheader-extra-headers-prefix",
            r#"["X-Remote-Extra-"]"#.into(),
        ),
    ]);
    Ok(serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": crate::metrics_api::kube_trust::NAME,
            "namespace": crate::metrics_api::kube_trust::NAMESPACE,
        },
        "data": data,
    }))?)
}

/// Plays every submit Job the operator creates in `sim` until `stop`: a Job that has not finished
/// yet is run at once with [`play_submit_job`]. Errors are logged; the watch resumes on its own.
pub async fn play_submit_jobs(sim: &KubeSim, cluster: &FakeCluster, stop: CancellationToken) {
    let jobs: Api<Job> = Api::all(sim.client());
    let config = watcher::Config::default().labels(&format!(
        "app.kubernetes.io/component={}",
        Component::Submitter.as_str()
    ));
    let mut events = std::pin::pin!(watcher(jobs, config).default_backoff().applied_objects());
    loop {
        let job = tokio::select! {
            () = stop.cancelled() => return,
            next = events.next() => match next {
                Some(Ok(job)) => job,
                Some(Err(error)) => {
                    warn!(%error, "watching submit Jobs");
                    continue;
                }
                None => return,
            },
        };
        if job.metadata.deletion_timestamp.is_some() || job_state(&job) != JobState::Running {
            continue;
        }
        match play_submit_job(sim, cluster, &job) {
            Ok(name) => info!(
                job = kube::ResourceExt::name_any(&job),
                topology = name,
                "sandbox: the submit Job ran, the fake Nimbus runs the topology"
            ),
            Err(error) => warn!(
                job = kube::ResourceExt::name_any(&job),
                error = format!("{error:#}"),
                "sandbox: cannot play the submit Job"
            ),
        }
    }
}

/// Plays the submit Job `job` as Kubernetes and `storm jar` would: Storm (`cluster`) gets the
/// topology the Job submits ([`submitted_topology`]), then the Job completes now. Returns the
/// topology's Storm name.
pub fn play_submit_job(sim: &KubeSim, cluster: &FakeCluster, job: &Job) -> anyhow::Result<String> {
    let topology = submitted_topology(job)?;
    let name = topology.name.clone();
    cluster.put_topology(topology);
    complete_job(sim, job, Timestamp::now())?;
    Ok(name)
}

/// Marks `job` complete at `at`, as the Job controller does once its pod succeeded.
pub fn complete_job(sim: &KubeSim, job: &Job, at: Timestamp) -> Result<Job, ApiError> {
    let namespace = job.metadata.namespace.as_deref().unwrap_or("default");
    let name = job.metadata.name.as_deref().unwrap_or_default();
    sim.apply_status::<Job>(
        namespace,
        name,
        json!({"succeeded": 1, "completionTime": at.to_string(),
               "conditions": [{"type": "Complete", "status": "True"}]}),
    )
}

/// The topology a submit Job's `storm jar` would run: named by the `submit` container's
/// `STORM_TOPOLOGY_NAME`, with `topology.version`, the owner uid and `topology.workers` from its
/// `-c key=<JSON>` arguments, a spout `spout` (2 executors, 4 tasks) and a bolt `split` (2
/// executors, 8 tasks) acking 100 tuples/s at capacity 0.4, launched now.
pub fn submitted_topology(job: &Job) -> anyhow::Result<FakeTopology> {
    static LAUNCHES: AtomicUsize = AtomicUsize::new(0);
    let containers = job
        .spec
        .as_ref()
        .and_then(|s| s.template.spec.as_ref())
        .map(|s| s.containers.as_slice())
        .unwrap_or_default();
    let submit = containers
        .iter()
        .find(|c| c.name == "submit")
        .context("the Job has no `submit` container")?;
    let storm_name = submit
        .env
        .iter()
        .flatten()
        .find(|e| e.name == STORM_NAME_ENV)
        .and_then(|e| e.value.clone())
        .with_context(|| format!("the `submit` container has no {STORM_NAME_ENV}"))?;
    let conf = storm_conf(submit.args.as_deref().unwrap_or_default());
    let get = |key: &str| {
        conf.get(key)
            .cloned()
            .with_context(|| format!("the `submit` container passes no -c {key}=..."))
    };
    let stats = FakeComponentStats {
        emitted: 60_000,
        acked: 60_000,
        complete_latency_ms: 12.0,
        capacity: 0.4,
        executed: 60_000,
        ..FakeComponentStats::default()
    };
    let mut topology = FakeTopology::new(&storm_name)
        .with_spout("spout", FakeComponent::new(2, 4, stats.clone()))
        .with_bolt("split", FakeComponent::new(2, 8, stats))
        .with_conf("topology.version", get("topology.version")?)
        .with_conf(OWNER_CONF_KEY, get(OWNER_CONF_KEY)?);
    topology.num_workers = get("topology.workers")?
        .as_i64()
        .and_then(|n| i32::try_from(n).ok())
        .context("topology.workers is not a number")?;
    topology.uptime_secs = 5;
    let launch = LAUNCHES.fetch_add(1, Ordering::Relaxed);
    topology.id = format!(
        "{storm_name}-{}-{}",
        launch + 1,
        Timestamp::now().as_second()
    );
    Ok(topology)
}

/// The `-c key=value` pairs of a `storm jar` argv; values are JSON, or strings when they do not
/// parse (as Storm reads them).
fn storm_conf(args: &[String]) -> BTreeMap<String, Value> {
    args.windows(2)
        .filter(|pair| pair[0] == "-c")
        .filter_map(|pair| pair[1].split_once('='))
        .map(|(key, value)| {
            let value = serde_json::from_str(value).unwrap_or_else(|_| json!(value));
            (key.to_string(), value)
        })
        .collect()
}

/// What the banner prints, known before the operator listens.
struct Banner {
    kube: String,
    kubeconfig: PathBuf,
    nimbus: String,
    topology: Option<String>,
}

impl Banner {
    /// Waits until the admin server and the metrics API listen, then prints the banner on stdout.
    /// Returns without printing when the operator stops first.
    async fn print_when_listening(self, mut addresses: mpsc::UnboundedReceiver<Listening>) {
        let (mut admin, mut metrics_api) = (None, None);
        while admin.is_none() || metrics_api.is_none() {
            match addresses.recv().await {
                Some(Listening::Admin(address)) => admin = Some(address),
                Some(Listening::MetricsApi(address)) => metrics_api = Some(address),
                None => return,
            }
        }
        if let (Some(admin), Some(metrics_api)) = (admin, metrics_api) {
            let text = self.text(admin, metrics_api);
            let mut stdout = std::io::stdout().lock();
            if let Err(error) = stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.flush())
            {
                warn!(%error, "cannot print the banner");
            }
        }
    }

    fn text(&self, admin: SocketAddr, metrics_api: SocketAddr) -> String {
        let kubeconfig = shell_path(&self.kubeconfig);
        let topology = self.topology.as_deref().unwrap_or(TOPOLOGY);
        let nimbus = &self.nimbus;
        format!(
            "\
storm-controller dev: the operator against an embedded sandbox on 127.0.0.1 (Ctrl-C stops it)
  Kubernetes API (kubesim):  {kube}
  kubeconfig:                {kubeconfig}
  fake Nimbus:               {nimbus}
  admin server:              http://{admin}
  custom metrics API:        https://{metrics_api}
Try:
  export KUBECONFIG={kubeconfig}
  kubectl get stormclusters,stormtopologies      # namespace {NAMESPACE}; stormc / stormt for short
  kubectl apply --validate=false -f my-topology.yaml   # the sandbox serves no OpenAPI
  curl -k https://{metrics_api}/apis/custom.metrics.k8s.io/v1beta2/namespaces/{NAMESPACE}/stormtopologies.storm.apache.org/{topology}/storm_topology_acked_per_second
  curl http://{admin}/metrics
  storm-controller nimbus --nimbus {nimbus} topologies
",
            kube = self.kube,
        )
    }
}

/// A path for a shell command line, quoted when it needs to be.
fn shell_path(path: &Path) -> String {
    let text = path.display().to_string();
    if text
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:,@".contains(c))
    {
        text
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_base_gives_four_consecutive_ports() {
        assert_eq!(Ports::from_base(0).unwrap(), Ports::default());
        let ports = Ports::from_base(7400).unwrap();
        assert_eq!(
            (ports.kube, ports.nimbus, ports.admin, ports.metrics_api),
            (7400, 7401, 7402, 7403)
        );
        assert!(Ports::from_base(65534).is_err());
    }

    #[test]
    fn storm_conf_reads_c_pairs_as_json() {
        let args: Vec<String> = [
            "storm",
            "jar",
            "-c",
            "topology.version=\"1.0\"",
            "-c",
            "topology.workers=3",
            "-c",
            "x=not json",
            "/jar/t.jar",
            "Main",
            "-c",
            "after=1",
        ]
        .map(String::from)
        .to_vec();
        let conf = storm_conf(&args);
        assert_eq!(conf["topology.version"], json!("1.0"));
        assert_eq!(conf["topology.workers"], json!(3));
        assert_eq!(conf["x"], json!("not json"));
    }

    #[test]
    fn run_args_are_run_defaults_on_loopback_without_election() {
        let args = run_args(&Ports::from_base(7400).unwrap()).unwrap();
        assert_eq!(args.admin.admin_address, "127.0.0.1:7402".parse().unwrap());
        assert_eq!(args.metrics_api.secure_port, 7403);
        assert!(args.metrics_api.bind_address.is_loopback());
        assert!(!args.controllers.leader_elect);
        assert!(!args.controllers.no_controllers && !args.serve.no_metrics_api);
        assert!(args.serve.standalone_nimbus.is_none());
        assert!(args.metrics_api.requestheader_client_ca_file.is_none());
    }

    #[test]
    fn samples_name_the_dev_cluster() {
        let cluster = cluster("127.0.0.1:6627").unwrap();
        assert_eq!(cluster.metadata.name.as_deref(), Some(CLUSTER));
        assert_eq!(
            cluster.spec.external.unwrap().nimbus_seeds,
            vec!["127.0.0.1:6627"]
        );
        assert_eq!(
            sample_topology(1).unwrap().metadata.name.as_deref(),
            Some(TOPOLOGY)
        );
        assert_eq!(
            sample_topology(3).unwrap().metadata.name.as_deref(),
            Some("wordcount-3")
        );
    }

    #[test]
    fn shell_paths_are_quoted_when_needed() {
        assert_eq!(
            shell_path(Path::new("/tmp/a/kubeconfig")),
            "/tmp/a/kubeconfig"
        );
        assert_eq!(shell_path(Path::new("/tmp/a b/k")), "'/tmp/a b/k'");
    }
}
