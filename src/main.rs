//! The `storm-controller` binary: parse the command line and hand over to the library.

use clap::Parser as _;

fn main() -> std::process::ExitCode {
    storm_controller::cli::Cli::parse().execute()
}
