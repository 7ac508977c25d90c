//! Logging: a `tracing` subscriber with an `EnvFilter` and text or JSON output on stderr.
//!
//! Logs go to stderr so that stdout stays clean for the subcommands that print data (`crds`, `nimbus`).

use std::io::IsTerminal as _;

use anyhow::Context as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::cli::{LogArgs, LogFormat};

/// Installs the global tracing subscriber described by `args`. Fails if the filter is invalid or a subscriber is
/// already installed.
pub fn init(args: &LogArgs) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&args.log_level)
        .with_context(|| format!("invalid log filter {:?}", args.log_level))?;
    let registry = tracing_subscriber::registry().with(filter);
    let result = match args.log_format {
        LogFormat::Text => registry
            .with(
                tracing_subscriber::fmt::layer()
                    // Colours only for a person at a terminal, never in collected logs.
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    result.context("installing the tracing subscriber")
}

/// Checks that `directive` is a valid `EnvFilter` directive (`RUST_LOG` syntax); used as a clap value parser.
pub fn parse_filter(directive: &str) -> Result<String, String> {
    EnvFilter::try_new(directive)
        .map(|_| directive.to_owned())
        .map_err(|error| error.to_string())
}
