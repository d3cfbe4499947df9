//! # kurier — the binary
//!
//! The command line (clap), loading the configuration, starting the services, signals and
//! graceful shutdown. It wires the library crates together and holds no protocol or policy
//! logic of its own (docs/architecture.md).
//!
//! Exit codes: 0 success; 1 a runtime failure (e.g. a port that cannot be bound); 2 a bad
//! configuration, certificate or command line — always with one line that names the fix.

mod acme;
mod admin;
mod certificates;
mod dev;
mod dns_records;
mod dns_update;
mod hosting;
mod ics;
mod logging;
mod metrics;
mod outbound;
mod reports;
mod serve;
mod sieve;

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
        #[command(flatten)]
        source: ConfigArgs,
        /// Create server.data_dir if it does not exist (otherwise that is an error: a volume
        /// that failed to mount must not become an empty store).
        #[arg(long)]
        create: bool,
    },
    /// Prepare a first start: create server.data_dir and the store.
    Init {
        #[command(flatten)]
        source: ConfigArgs,
    },
    /// Hosted mail domains.
    Domain {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: admin::DomainCommand,
    },
    /// Mail accounts.
    User {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: admin::UserCommand,
    },
    /// DKIM keys for signing submitted mail.
    Dkim {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: admin::DkimCommand,
    },
    /// Sieve scripts of an account (server-side mail filters, RFC 5228).
    Sieve {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: sieve::SieveCommand,
    },
    /// Certificates from the ACME CA: status, and key changes.
    Acme {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: acme::AcmeCommand,
    },
    /// Print the DNS records a hosted domain should publish (MX, TLSA for DANE, MTA-STS, DKIM).
    Dns {
        #[command(flatten)]
        source: ConfigArgs,
        domain: String,
        /// zone (ready to paste into a zone file) or json.
        #[arg(long, value_enum, default_value = "zone")]
        format: dns_records::DnsFormat,
        /// Publish Kurier's own records ([dns_update]: TLSA, _mta-sts, _smtp._tls, SRV,
        /// DKIM) on the primary server by RFC 2136, instead of printing them.
        #[arg(long)]
        update: bool,
        /// With --update: print the update (nsupdate syntax) instead of sending it.
        #[arg(long, requires = "update")]
        dry_run: bool,
    },
    /// TLSRPT: send our reports now, sum up the ones we received.
    Reports {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: reports::ReportsCommand,
    },
    /// Check a domain (ours or anyone's) against TR-03108 over the network; exit code 1 when a
    /// requirement fails.
    Check {
        #[command(flatten)]
        source: ConfigArgs,
        domain: String,
        /// JSON instead of text.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// One self-contained HTML page instead of text.
        #[arg(long)]
        html: bool,
        /// A DKIM selector the domain's mail is signed with (DKIM-1 checks its key); may be
        /// given more than once. Default: the selectors configured here for a hosted domain.
        #[arg(long = "dkim-selector", value_name = "SELECTOR")]
        dkim_selectors: Vec<String>,
    },
    /// The outbound queue.
    Queue {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: admin::QueueCommand,
    },
    /// API tokens for the web administration's JSON API.
    Token {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: admin::TokenCommand,
    },
    /// Aliases and catch-alls.
    Alias {
        #[command(flatten)]
        source: ConfigArgs,
        #[command(subcommand)]
        command: admin::AliasCommand,
    },
    /// Work with configuration files.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Print the ICS of TR-03108-P §4.5: every TLS channel of the configuration with its
    /// versions, suites, groups, signature algorithms, certificates and features, the outbound
    /// clients, DNSSEC, DANE and TLSRPT.
    TlsProfile {
        #[command(flatten)]
        source: ConfigArgs,
        /// Print JSON instead of text.
        #[arg(long, conflicts_with = "html")]
        json: bool,
        /// Print a self-contained HTML page (evidence for a test lab).
        #[arg(long)]
        html: bool,
    },
    /// Print the version.
    Version,
}

/// Which configuration a command uses: a file, or the built-in development setup.
#[derive(clap::Args, Clone)]
pub struct ConfigArgs {
    /// Configuration file [default: /etc/kurier/kurier.toml].
    #[arg(long, global = true, conflicts_with = "dev")]
    config: Option<PathBuf>,
    #[command(flatten)]
    dev: DevArgs,
}

impl ConfigArgs {
    /// The configuration in effect: `--dev`'s, or the file's (an error is a `ConfigProblem`).
    pub fn config(&self) -> anyhow::Result<kurier_config::Config> {
        if self.dev.dev {
            return Ok(kurier_config::Config::dev(
                self.dev.data.clone(),
                self.dev.listen_ip,
            ));
        }
        let path = self
            .config
            .as_deref()
            .unwrap_or(std::path::Path::new(DEFAULT_CONFIG));
        kurier_config::load(path).map_err(|e| ConfigProblem(e.to_string()).into())
    }
}

#[derive(clap::Args, Clone)]
struct DevArgs {
    /// Development mode: no configuration needed; unprivileged ports on 127.0.0.1, a generated
    /// test CA and certificate, data in ./data.
    #[arg(long, global = true)]
    dev: bool,
    /// With --dev: the data folder.
    #[arg(long, global = true, requires = "dev", default_value = "data")]
    data: PathBuf,
    /// With --dev: the loopback address to listen on (e.g. 127.0.0.2 to run several at once).
    #[arg(long, global = true, requires = "dev", default_value = "127.0.0.1")]
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

/// Runs one administrative command on a small runtime.
fn block_on(f: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    logging::init(kurier_config::LogFormat::Text, "warn");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(anyhow::Error::from)?
        .block_on(f)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve { source, create } => serve::run(source, cli.log_format, create),
        Command::Init { source } => block_on(admin::init(source)),
        Command::Domain { source, command } => block_on(admin::domain(source, command)),
        Command::Acme { source, command } => {
            source.config().and_then(|cfg| acme::command(&cfg, command))
        }
        Command::User { source, command } => block_on(admin::user(source, command)),
        Command::Alias { source, command } => block_on(admin::alias(source, command)),
        Command::Queue { source, command } => block_on(admin::queue(source, command)),
        Command::Token { source, command } => block_on(admin::token(source, command)),
        Command::Reports { source, command } => block_on(reports::run(source, command)),
        Command::Check {
            source,
            domain,
            json,
            html,
            dkim_selectors,
        } => block_on(check(source, domain, json, html, dkim_selectors)),
        Command::Dkim { source, command } => block_on(admin::dkim(source, command)),
        Command::Sieve { source, command } => block_on(sieve::run(source, command)),
        Command::Dns {
            source,
            domain,
            format,
            update,
            dry_run,
        } => {
            let update = match (update, dry_run) {
                (false, _) => dns_records::Update::No,
                (true, false) => dns_records::Update::Send,
                (true, true) => dns_records::Update::DryRun,
            };
            block_on(dns_records::run(source, domain, format, update))
        }
        Command::Config {
            command: ConfigCommand::Check { file },
        } => serve::check(&file),
        Command::TlsProfile { source, json, html } => serve::tls_profile(source, json, html),
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

/// The auditor of `kurier check` (and of the web administration's domain page), with the
/// resolver and trust settings of `cfg`.
pub(crate) fn checker(
    cfg: &kurier_config::Config,
    dkim_selectors: Vec<String>,
) -> anyhow::Result<kurier_audit::Checker> {
    let extra_roots = match &cfg.delivery.extra_ca_file {
        Some(path) => openssl::x509::X509::stack_from_pem(&std::fs::read(path)?)?,
        None => Vec::new(),
    };
    let d = &cfg.dns;
    let resolver = match d.dnssec {
        kurier_config::DnssecMode::Validate => format!(
            "validating in-process (libunbound) from the trust anchor {}",
            d.trust_anchor
                .as_deref()
                .map_or("built in (the IANA root KSK)".to_string(), |p| p
                    .display()
                    .to_string())
        ),
        kurier_config::DnssecMode::TrustAd => {
            "the AD bit of a validating resolver on this machine".into()
        }
        kurier_config::DnssecMode::Off => {
            "no DNSSEC validation (dns.dnssec = \"off\"): DNSSEC findings are not evidence".into()
        }
    };
    let upstream: Vec<String> = d.upstream.iter().map(|u| u.0.to_string()).collect();
    let resolver = if upstream.is_empty() {
        resolver
    } else {
        format!("{resolver}, asking {}", upstream.join(", "))
    };
    Ok(kurier_audit::Checker {
        resolver: outbound::resolver(cfg)?,
        tls: kurier_tls::ClientTls::new(cfg.delivery.extra_ca_file.as_deref())?,
        smtp_port: cfg.delivery.port,
        https_port: 443,
        timeout: std::time::Duration::from_secs(cfg.delivery.timeout_secs.min(30)),
        dkim_selectors,
        extra_roots,
        context: kurier_audit::Context {
            checked_at: kurier_smtp::received::UtcTime::from_unix(kurier_store::now()).rfc3339(),
            resolver,
        },
        blocklists: kurier_accept::blocklist::lists(&cfg.blocklists.lists),
        own_addresses: cfg
            .delivery
            .source_ipv4
            .map(std::net::IpAddr::V4)
            .into_iter()
            .chain(cfg.delivery.source_ipv6.map(std::net::IpAddr::V6))
            .collect(),
    })
}

/// `kurier check DOMAIN`: the audit, with the resolver and trust settings of the configuration.
async fn check(
    source: ConfigArgs,
    domain: String,
    json: bool,
    html: bool,
    mut dkim_selectors: Vec<String>,
) -> anyhow::Result<()> {
    let cfg = source.config()?;
    if dkim_selectors.is_empty() {
        // A domain hosted here: the selectors its mail is signed with. Elsewhere (no store
        // here) there are none to know.
        if let Ok(store) = admin::open(&source).await
            && let Ok(settings) = store.domain_settings(&domain.to_ascii_lowercase()).await
            && let Some(s) = settings.get(kurier_accept::DKIM_SELECTOR_SETTING)
        {
            dkim_selectors = s.split_whitespace().map(str::to_string).collect();
        }
    }
    let checker = checker(&cfg, dkim_selectors)?;
    let audit = checker.check(&domain).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&audit.json())?);
    } else if html {
        print!("{}", audit.html());
    } else {
        print!("{}", audit.text());
    }
    if audit.failed() {
        anyhow::bail!("{domain} does not meet TR-03108 (see the FAIL lines)");
    }
    Ok(())
}
