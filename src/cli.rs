//! The command line: `storm-controller run | crds | nimbus | dev`. Every flag can also be set through an
//! environment variable `STORM_CONTROLLER_*` (shown in `--help`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code of usage errors, as clap uses it (once also of subcommands that were not built yet).
pub const EXIT_NOT_BUILT: u8 = 2;

/// Kubernetes operator for Apache Storm, with an aggregated custom.metrics.k8s.io API server.
#[derive(Debug, Parser)]
#[command(name = "storm-controller", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the operator: controllers (leader-elected), the custom metrics API and the admin server.
    Run(Box<RunArgs>),
    /// Print the CustomResourceDefinitions as one YAML stream (the source of crds/).
    Crds,
    /// Storm command line over Nimbus Thrift: cluster, topologies, metrics, activate, kill, rebalance.
    Nimbus(crate::nimbus::cli::NimbusCommand),
    /// Print the Kubernetes objects the operator would create for the Storm objects in a file.
    Render(RenderArgs),
    /// Run the operator against an embedded sandbox on 127.0.0.1, for a machine without a cluster:
    /// an in-memory Kubernetes API, a fake Nimbus that plays the submit Jobs, a StormCluster and
    /// sample StormTopology objects. Prints the addresses, a kubeconfig and commands to try.
    Dev(DevArgs),
}

/// Flags of `run`, in flattened groups.
// Later groups go here as more `#[command(flatten)]` fields: kube client flags, metrics API serving/TLS flags
// (`--secure-port`, cert paths), `--nimbus-poll-interval`, `--no-controllers` / `--no-metrics-api`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Admin HTTP server.
    #[command(flatten)]
    pub admin: AdminArgs,
    /// Controllers and leader election.
    #[command(flatten)]
    pub controllers: ControllerArgs,
    /// Nimbus statistics polling.
    #[command(flatten)]
    pub collector: crate::stats::CollectorArgs,
    /// The custom metrics API server.
    #[command(flatten)]
    pub metrics_api: crate::metrics_api::args::MetricsApiArgs,
    /// Which parts run, and standalone mode.
    #[command(flatten)]
    pub serve: ServeArgs,
}

/// What `run` serves.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Metrics API")]
pub struct ServeArgs {
    /// Do not serve the custom metrics API.
    #[arg(long, env = "STORM_CONTROLLER_NO_METRICS_API")]
    pub no_metrics_api: bool,
    /// Serve the metrics of the Storm cluster behind these Nimbus seeds (`host:port[,host:port]`)
    /// without any CRD: each of its topologies appears as a `stormtopologies.storm.apache.org`
    /// object of the same name in `--standalone-namespace`. Implies --no-controllers.
    #[arg(
        long,
        env = "STORM_CONTROLLER_STANDALONE_NIMBUS",
        requires = "standalone_namespace"
    )]
    pub standalone_nimbus: Option<String>,
    /// The namespace standalone topologies are served in (where their HPAs live).
    #[arg(
        long,
        env = "STORM_CONTROLLER_STANDALONE_NAMESPACE",
        requires = "standalone_nimbus"
    )]
    pub standalone_namespace: Option<String>,
}

/// Controller flags.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Controllers")]
pub struct ControllerArgs {
    /// Do not run the controllers (serve only the admin endpoints and, once built, the metrics API).
    #[arg(long, env = "STORM_CONTROLLER_NO_CONTROLLERS")]
    pub no_controllers: bool,
    /// Reconcile only while holding the leader Lease, so that replicas never act at once.
    #[arg(long, env = "STORM_CONTROLLER_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,
    /// Namespace of the leader Lease; defaults to the pod's namespace (POD_NAMESPACE), else `default`.
    #[arg(long, env = "STORM_CONTROLLER_LEADER_ELECTION_NAMESPACE")]
    pub leader_election_namespace: Option<String>,
    /// Name of the leader Lease.
    #[arg(
        long,
        env = "STORM_CONTROLLER_LEADER_ELECTION_ID",
        default_value = "storm-controller"
    )]
    pub leader_election_id: String,
    /// How often to reconcile every object even without a change (status follows Nimbus at this pace).
    #[arg(long, env = "STORM_CONTROLLER_RESYNC_INTERVAL", default_value = "30s", value_parser = crate::nimbus::cli::parse_duration)]
    pub resync_interval: std::time::Duration,
    /// How long a deleted StormTopology waits for an unreachable Storm cluster before its
    /// finalizer is released anyway (with a Warning Event saying the topology may still run).
    #[arg(long, env = "STORM_CONTROLLER_FINALIZER_TIMEOUT", default_value = "10m", value_parser = crate::nimbus::cli::parse_duration)]
    pub finalizer_timeout: std::time::Duration,
}

/// Logging flags.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Logging")]
pub struct LogArgs {
    /// Log filter in RUST_LOG syntax, e.g. `info` or `info,storm_controller=debug,kube=warn`.
    #[arg(
        long,
        env = "STORM_CONTROLLER_LOG_LEVEL",
        default_value = "info",
        value_parser = crate::telemetry::parse_filter
    )]
    pub log_level: String,
    /// Log format on stderr.
    #[arg(long, env = "STORM_CONTROLLER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, event fields at the top level.
    Json,
}

/// Admin server flags.
#[derive(Clone, Debug, Args)]
#[command(next_help_heading = "Admin server")]
pub struct AdminArgs {
    /// Address of the plain-HTTP admin server (/livez, /readyz, /metrics); port 0 picks a free port.
    #[arg(
        long,
        env = "STORM_CONTROLLER_ADMIN_ADDRESS",
        default_value = "0.0.0.0:8080"
    )]
    pub admin_address: SocketAddr,
}

/// Arguments of `render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// YAML file with StormCluster, StormTopology and StormWorkerPool objects (`-` for stdin).
    #[arg(short = 'f', long, env = "STORM_CONTROLLER_RENDER_FILE")]
    pub file: std::path::PathBuf,
    /// Output format.
    #[arg(short = 'o', long, env = "STORM_CONTROLLER_RENDER_OUTPUT", value_enum, default_value_t = crate::render::Format::Yaml)]
    pub output: crate::render::Format,
    /// Namespace of objects that do not name one.
    #[arg(
        long,
        env = "STORM_CONTROLLER_RENDER_NAMESPACE",
        default_value = "default"
    )]
    pub namespace: String,
}

/// Arguments of `dev`.
#[derive(Debug, Args)]
pub struct DevArgs {
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// First of four consecutive ports on 127.0.0.1: N the Kubernetes API, N+1 the fake Nimbus,
    /// N+2 the admin server, N+3 the custom metrics API. 0 picks free ports (the banner prints them).
    #[arg(long, env = "STORM_CONTROLLER_DEV_PORT_BASE", default_value_t = 0)]
    pub port_base: u16,
    /// Sample StormTopology objects to create: `wordcount`, `wordcount-2`, ... (at most 1000).
    #[arg(long, env = "STORM_CONTROLLER_DEV_TOPOLOGIES", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(0..=1000))]
    pub topologies: u16,
    /// Stop after this long (e.g. `20s`, `5m`) instead of waiting for SIGINT/SIGTERM.
    #[arg(long = "for", env = "STORM_CONTROLLER_DEV_FOR", value_parser = crate::nimbus::cli::parse_duration)]
    pub run_for: Option<std::time::Duration>,
    /// Write the kubeconfig of the sandbox here and keep it; by default it goes to a temporary
    /// directory that is removed on exit.
    #[arg(long, env = "STORM_CONTROLLER_DEV_KUBECONFIG")]
    pub kubeconfig: Option<std::path::PathBuf>,
}

impl Cli {
    /// Runs the parsed command and returns the process exit code.
    pub fn execute(self) -> ExitCode {
        match self.command {
            Command::Run(args) => crate::run::main(*args),
            Command::Crds => print_crds(),
            Command::Nimbus(cmd) => match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime.block_on(crate::nimbus::cli::run(cmd)),
                Err(error) => {
                    eprintln!("storm-controller nimbus: cannot start the async runtime: {error}");
                    ExitCode::FAILURE
                }
            },
            Command::Render(args) => render(&args),
            Command::Dev(args) => crate::dev::main(args),
        }
    }
}

fn print_crds() -> ExitCode {
    let yaml = crate::crd::crds_yaml();
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(yaml.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("storm-controller crds: writing to stdout failed: {error}");
            ExitCode::FAILURE
        }
    }
}

fn render(args: &RenderArgs) -> ExitCode {
    let input = if args.file.as_os_str() == "-" {
        std::io::read_to_string(std::io::stdin())
    } else {
        std::fs::read_to_string(&args.file)
    };
    let input = match input {
        Ok(text) => text,
        Err(error) => {
            eprintln!(
                "storm-controller render: cannot read {}: {error}",
                args.file.display()
            );
            return ExitCode::FAILURE;
        }
    };
    match crate::render::render(&input, &args.namespace, args.output) {
        Ok(out) => {
            let mut stdout = std::io::stdout().lock();
            match stdout
                .write_all(out.as_bytes())
                .and_then(|()| stdout.flush())
            {
                Ok(()) => ExitCode::SUCCESS,
                Err(error) => {
                    eprintln!("storm-controller render: writing to stdout failed: {error}");
                    ExitCode::FAILURE
                }
            }
        }
        Err(error) => {
            eprintln!("storm-controller render: {}: {error}", args.file.display());
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag of every subcommand can also be set from an env var `STORM_CONTROLLER_<FLAG>`, or
    /// `STORM_CONTROLLER_<SUBCOMMAND>_<FLAG>` where a subcommand scopes it (`nimbus --output`).
    #[test]
    fn every_flag_has_a_storm_controller_env_var() {
        let command = Cli::command();
        let mut checked = 0;
        for sub in command.get_subcommands() {
            for arg in sub.get_arguments() {
                let Some(long) = arg.get_long() else {
                    continue; // positional (nimbus's trailing args)
                };
                if matches!(long, "help" | "version") {
                    continue;
                }
                let flag = long.to_ascii_uppercase().replace('-', "_");
                let sub_name = sub.get_name().to_ascii_uppercase();
                let allowed = [
                    format!("STORM_CONTROLLER_{flag}"),
                    format!("STORM_CONTROLLER_{sub_name}_{flag}"),
                ];
                let env = arg
                    .get_env()
                    .and_then(|env| env.to_str())
                    .unwrap_or_default();
                assert!(
                    allowed.iter().any(|a| a == env),
                    "{} --{long} has env {env:?}, want one of {allowed:?}",
                    sub.get_name()
                );
                checked += 1;
            }
        }
        assert!(checked >= 3, "only {checked} flags checked");
    }

    #[test]
    fn run_defaults() {
        let cli = Cli::try_parse_from(["storm-controller", "run"]).unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run, got {:?}", cli.command)
        };
        assert_eq!(args.admin.admin_address, "0.0.0.0:8080".parse().unwrap());
        assert_eq!(args.log.log_format, LogFormat::Text);
        assert_eq!(args.log.log_level, "info");
    }

    #[test]
    fn run_flags() {
        let cli = Cli::try_parse_from([
            "storm-controller",
            "run",
            "--admin-address",
            "127.0.0.1:9999",
            "--log-format",
            "json",
            "--log-level",
            "debug,kube=warn",
        ])
        .unwrap();
        let Command::Run(args) = cli.command else {
            panic!("expected run, got {:?}", cli.command)
        };
        assert_eq!(args.admin.admin_address, "127.0.0.1:9999".parse().unwrap());
        assert_eq!(args.log.log_format, LogFormat::Json);
        assert_eq!(args.log.log_level, "debug,kube=warn");
    }

    #[test]
    fn bad_values_are_usage_errors() {
        for bad in [
            ["--log-format", "xml"],
            ["--admin-address", "nowhere"],
            ["--log-level", "info,[{"],
        ] {
            let error = Cli::try_parse_from(["storm-controller", "run", bad[0], bad[1]])
                .expect_err("bad value must be rejected");
            assert!(
                matches!(
                    error.kind(),
                    clap::error::ErrorKind::ValueValidation | clap::error::ErrorKind::InvalidValue
                ),
                "{bad:?}: {error}"
            );
            assert_eq!(error.exit_code(), i32::from(EXIT_NOT_BUILT), "{bad:?}");
        }
    }

    #[test]
    fn nimbus_parses_its_subcommands() {
        let cli = Cli::try_parse_from([
            "storm-controller",
            "nimbus",
            "--nimbus",
            "h:6627",
            "rebalance",
            "t",
            "--workers",
            "3",
        ])
        .unwrap();
        let Command::Nimbus(cmd) = cli.command else {
            panic!("expected nimbus, got {:?}", cli.command)
        };
        assert_eq!(cmd.nimbus, "h:6627");
        assert!(
            format!("{:?}", cmd.command).contains("Rebalance"),
            "{:?}",
            cmd.command
        );
    }

    #[test]
    fn render_takes_a_file_and_a_format() {
        let cli = Cli::try_parse_from(["storm-controller", "render", "-f", "x.yaml", "-o", "json"])
            .unwrap();
        let Command::Render(args) = cli.command else {
            panic!("expected render, got {:?}", cli.command)
        };
        assert_eq!(args.file, std::path::PathBuf::from("x.yaml"));
        assert_eq!(args.output, crate::render::Format::Json);
        assert_eq!(args.namespace, "default");
    }

    #[test]
    fn dev_defaults_and_flags() {
        let cli = Cli::try_parse_from(["storm-controller", "dev"]).unwrap();
        let Command::Dev(args) = cli.command else {
            panic!("expected dev, got {:?}", cli.command)
        };
        assert_eq!((args.port_base, args.topologies), (0, 1));
        assert_eq!(args.run_for, None);
        let cli = Cli::try_parse_from([
            "storm-controller",
            "dev",
            "--port-base",
            "7400",
            "--topologies",
            "3",
            "--for",
            "20s",
        ])
        .unwrap();
        let Command::Dev(args) = cli.command else {
            panic!("expected dev, got {:?}", cli.command)
        };
        assert_eq!((args.port_base, args.topologies), (7400, 3));
        assert_eq!(args.run_for, Some(std::time::Duration::from_secs(20)));
        assert!(Cli::try_parse_from(["storm-controller", "dev", "--topologies", "1001"]).is_err());
    }
}
