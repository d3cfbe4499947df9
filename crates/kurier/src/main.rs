//! # kurier — the binary
//!
//! The command line (clap), loading the configuration, starting the services, signals and
//! graceful shutdown. It wires the library crates together and holds no protocol or policy
//! logic of its own (ARCHITECTURE.md).
//!
//! Exit codes: 0 success; 1 a runtime failure (e.g. a port that cannot be bound); 2 a bad
//! configuration, certificate or command line — always with one line that names the fix.

mod dev;
mod logging;
mod serve;

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

/// The configuration file used when neither --config nor --dev is given.
const DEFAULT_CONFIG: &str = "/etc/kurier/kurier.toml";

#[derive(Parser)]
#[command(
    name = "kurier",
    version,
    about = "Secure e-mail transport per BSI TR-03108, on by default"
)]
struct Cli {
    /// Log format; overrides `log.format` of the configuration.
    #[arg(long, global = true, value_enum)]
    log_format: Option<LogFormatArg>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormatArg {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the mail server.
    Serve {
        /// Configuration file [default: /etc/kurier/kurier.toml].
        #[arg(long, conflicts_with = "dev")]
        config: Option<PathBuf>,
        #[command(flatten)]
        dev: DevArgs,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the TLS profiles as the ICS table of TR-03108-P §4.5 (versions, suites, groups,
    /// signature algorithms, certificates).
    TlsProfile {
        /// Configuration file whose certificates to describe [default: /etc/kurier/kurier.toml].
        #[arg(long, conflicts_with = "dev")]
        config: Option<PathBuf>,
        #[command(flatten)]
        dev: DevArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Print the version.
    Version,
}

#[derive(clap::Args, Clone)]
struct DevArgs {
    /// Development mode: no configuration needed; unprivileged ports on 127.0.0.1, a generated
    /// test CA and certificate, data in ./data.
    #[arg(long)]
    dev: bool,
    /// With --dev: the data folder.
    #[arg(long, requires = "dev", default_value = "data")]
    data: PathBuf,
    /// With --dev: the loopback address to listen on (e.g. 127.0.0.2 to run several at once).
    #[arg(long, requires = "dev", default_value = "127.0.0.1")]
    listen_ip: IpAddr,
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Check a configuration file and its certificates; print the effective configuration.
    Check { file: PathBuf },
}

/// An error that is the operator's to fix in the configuration or on the command line (exit 2).
#[derive(Debug)]
pub struct ConfigProblem(pub String);

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigProblem {}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { config, dev } => serve::run(config, dev, cli.log_format),
        Command::Config {
            command: ConfigCommand::Check { file },
        } => serve::check(&file),
        Command::TlsProfile { config, dev, json } => serve::tls_profile(config, dev, json),
        Command::Version => {
            println!("kurier {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let line = format!("{e:#}").replace('\n', " ");
            eprintln!("kurier: error: {line}");
            if e.downcast_ref::<ConfigProblem>().is_some() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}
