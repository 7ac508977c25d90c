//! The command line: `storm-controller run | crds | nimbus | dev`. Every flag can also be set through an
//! environment variable `STORM_CONTROLLER_*` (shown in `--help`).

use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Exit code of a subcommand that is not built yet (and of usage errors, as clap uses it).
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
    /// Run the operator: admin server (/livez, /readyz, /metrics) now; controllers and metrics API later.
    Run(RunArgs),
    /// Print the CustomResourceDefinitions as one YAML stream (the source of crds/).
    Crds,
    /// Storm command line over Nimbus Thrift (not built yet).
    Nimbus(NimbusArgs),
    /// Embedded sandbox on 127.0.0.1 without a cluster (not built yet).
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

/// Arguments of `nimbus`, taken verbatim until the Nimbus command line is built.
#[derive(Debug, Args)]
pub struct NimbusArgs {
    /// Arguments for the Nimbus command line.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Arguments of `dev` (none yet).
#[derive(Debug, Args)]
pub struct DevArgs {}

impl Cli {
    /// Runs the parsed command and returns the process exit code.
    pub fn execute(self) -> ExitCode {
        match self.command {
            Command::Run(args) => crate::run::main(args),
            Command::Crds => print_crds(),
            Command::Nimbus(_) => not_built("nimbus"),
            Command::Dev(_) => not_built("dev"),
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

fn not_built(subcommand: &str) -> ExitCode {
    eprintln!(
        "storm-controller {subcommand}: not built yet; this subcommand does nothing in this version"
    );
    ExitCode::from(EXIT_NOT_BUILT)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory as _;

    #[test]
    fn command_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag of every subcommand can also be set from an env var `STORM_CONTROLLER_<FLAG>`.
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
                let expected = format!(
                    "STORM_CONTROLLER_{}",
                    long.to_ascii_uppercase().replace('-', "_")
                );
                assert_eq!(
                    arg.get_env().and_then(|env| env.to_str()),
                    Some(expected.as_str()),
                    "{} --{long}",
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
    fn nimbus_takes_trailing_args_verbatim() {
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
        let Command::Nimbus(args) = cli.command else {
            panic!("expected nimbus, got {:?}", cli.command)
        };
        assert_eq!(
            args.args,
            ["--nimbus", "h:6627", "rebalance", "t", "--workers", "3"]
        );
    }
}
