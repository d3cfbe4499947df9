//! `kurier domain|user|alias …`: administration of the configured store. Works while the server
//! runs (SQLite in WAL mode and PostgreSQL both allow a second writer).

use std::io::{BufRead, IsTerminal};
use std::sync::Arc;

use anyhow::{Context, bail};
use kurier_store::Store;

use crate::{ConfigArgs, ConfigProblem};

#[derive(clap::Subcommand)]
pub enum DomainCommand {
    /// Host a mail domain.
    Add { domain: String },
    /// List the hosted domains.
    List,
    /// Stop hosting a domain (it must have no accounts or aliases left).
    Del { domain: String },
    /// Whether failing DMARC (reject, quarantine) is acted on for mail to this domain:
    /// `enforce` (default, as sender_auth.enforce says) or `monitor` (results recorded only).
    Dmarc {
        domain: String,
        #[arg(value_parser = ["enforce", "monitor"])]
        mode: String,
    },
}

#[derive(clap::Subcommand)]
pub enum UserCommand {
    /// Create an account (with INBOX, Sent, Drafts, Trash, Junk). The password is asked for, or
    /// read from the first line of standard input when that is not a terminal.
    Add {
        address: String,
        /// Mailbox quota, e.g. 500M, 2G or a number of bytes; default unlimited.
        #[arg(long)]
        quota: Option<String>,
    },
    /// Set a new password (asked for, or read from standard input).
    Passwd { address: String },
    /// List accounts, of one domain or all.
    List { domain: Option<String> },
    /// Delete an account with all its mail.
    Del { address: String },
    /// What submission does with a `TLS-Required: No` header (RFC 8689 §5) from this account:
    /// keep it (default; the message may then go without DANE or MTA-STS), strip it, or
    /// refuse the message.
    TlsRequiredHeader {
        address: String,
        #[arg(value_parser = ["keep", "strip", "refuse"])]
        rule: String,
    },
    /// Make the account an administrator of the server in the web administration, or with
    /// `--domain` of one domain's accounts and aliases; `--revoke` takes it back.
    Admin {
        address: String,
        #[arg(long)]
        domain: Option<String>,
        #[arg(long)]
        revoke: bool,
    },
}

#[derive(clap::Subcommand)]
pub enum TokenCommand {
    /// Create an API token for ACCOUNT (printed once; the store keeps only its hash).
    Add {
        account: String,
        name: String,
        /// Valid for this many days (default: until deleted).
        #[arg(long)]
        days: Option<i64>,
    },
    /// List ACCOUNT's tokens.
    List { account: String },
    /// Delete ACCOUNT's token NAME.
    Del { account: String, name: String },
}

#[derive(clap::Subcommand)]
pub enum AliasCommand {
    /// Deliver mail for ADDRESS (or @domain: the domain's catch-all) to local accounts.
    Add {
        address: String,
        #[arg(required = true)]
        targets: Vec<String>,
    },
    /// List aliases, of one domain or all.
    List { domain: Option<String> },
    /// Delete an alias.
    Del { address: String },
}

#[derive(clap::Subcommand)]
pub enum QueueCommand {
    /// List the messages waiting for outbound delivery.
    List,
    /// Make a message due now.
    Retry { id: i64 },
    /// Remove a message without a notice.
    Delete { id: i64 },
    /// Return a message to its sender now, with a failure notice for its pending recipients.
    Bounce {
        id: i64,
        /// Said in the notice.
        #[arg(long, default_value = "the postmaster removed it from the queue")]
        reason: String,
    },
}

/// Opens the store of `--config` (or `--dev`). The data folder must exist (`kurier init`
/// makes it), except with `--dev`.
pub async fn open(args: &ConfigArgs) -> anyhow::Result<Arc<dyn Store>> {
    let cfg = args.config()?;
    if args.dev.dev {
        crate::serve::create_data_dir(&cfg)?;
    } else {
        crate::serve::require_data_dir(&cfg)?;
    }
    let url = cfg.store_url();
    kurier_store::open(&url).await.map_err(|e| match e {
        kurier_store::StoreError::Invalid(m) => ConfigProblem(format!("store.url: {m}")).into(),
        other => anyhow::Error::new(other).context(format!("cannot open the store {url}")),
    })
}

/// `kurier init`: creates the data folder and the store (schema included) for a first start.
pub async fn init(args: ConfigArgs) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let existed = cfg.server.data_dir.is_dir();
    crate::serve::create_data_dir(&cfg)?;
    let store = open(&args).await?;
    let domains = store.domains().await?.len();
    println!(
        "{} {}; store {} ready ({domains} domains)",
        if existed {
            "data folder"
        } else {
            "created data folder"
        },
        cfg.server.data_dir.display(),
        cfg.store_url()
    );
    Ok(())
}

pub async fn domain(args: ConfigArgs, cmd: DomainCommand) -> anyhow::Result<()> {
    let store = open(&args).await?;
    match cmd {
        DomainCommand::Add { domain } => {
            let d = store.add_domain(&domain).await?;
            println!("added domain {}", d.name);
        }
        DomainCommand::List => {
            for d in store.domains().await? {
                println!("{}", d.name);
            }
        }
        DomainCommand::Del { domain } => {
            store.delete_domain(&domain).await?;
            println!("deleted domain {domain}");
        }
        DomainCommand::Dmarc { domain, mode } => {
            let value = (mode == "monitor").then_some(mode.as_str());
            store
                .set_domain_setting(&domain, kurier_accept::authentication::DMARC_SETTING, value)
                .await?;
            println!("DMARC for mail to {domain}: {mode}");
        }
    }
    Ok(())
}

pub async fn user(args: ConfigArgs, cmd: UserCommand) -> anyhow::Result<()> {
    let store = open(&args).await?;
    match cmd {
        UserCommand::Add { address, quota } => {
            let quota = quota.map(|q| parse_size(&q)).transpose()?;
            let password = read_password(&address)?;
            let a = store.add_account(&address, &password, quota).await?;
            println!("added account {}", a.address);
        }
        UserCommand::Passwd { address } => {
            let password = read_password(&address)?;
            store.set_password(&address, &password).await?;
            println!("password of {address} changed");
        }
        UserCommand::List { domain } => {
            for a in store.accounts(domain.as_deref()).await? {
                let used = store.usage(a.id).await?;
                let quota = a
                    .quota
                    .map(format_size)
                    .unwrap_or_else(|| "unlimited".into());
                let state = if a.enabled { "" } else { "  (disabled)" };
                println!("{}  {} of {quota}{state}", a.address, format_size(used));
            }
        }
        UserCommand::Del { address } => {
            store.delete_account(&address).await?;
            println!("deleted account {address} and its mail");
        }
        UserCommand::TlsRequiredHeader { address, rule } => {
            use kurier_smtp::headers::TlsRequiredHeader;
            let rule = TlsRequiredHeader::parse(&rule).unwrap_or_default();
            // The default is no setting at all.
            let value = (rule != TlsRequiredHeader::Keep).then_some(rule.as_str());
            store
                .set_account_setting(&address, TlsRequiredHeader::SETTING, value)
                .await?;
            println!("{address}: TLS-Required header: {}", rule.as_str());
        }
        UserCommand::Admin {
            address,
            domain,
            revoke,
        } => {
            let scope = match &domain {
                Some(d) => kurier_store::AdminScope::Domain(d.clone()),
                None => kurier_store::AdminScope::Server,
            };
            store.set_admin_scope(&address, &scope, !revoke).await?;
            let what = domain.map_or("the server".to_string(), |d| format!("domain {d}"));
            if revoke {
                println!("{address} no longer administers {what}");
            } else {
                println!("{address} administers {what}");
            }
        }
    }
    Ok(())
}

pub async fn token(args: ConfigArgs, cmd: TokenCommand) -> anyhow::Result<()> {
    let store = open(&args).await?;
    let account = |address: String| {
        let store = store.clone();
        async move {
            store
                .account(&address)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no account {address}"))
        }
    };
    match cmd {
        TokenCommand::Add {
            account: address,
            name,
            days,
        } => {
            if days.is_some_and(|d| !(1..=3650).contains(&d)) {
                return Err(ConfigProblem("--days: from 1 to 3650".into()).into());
            }
            let a = account(address).await?;
            let (token, text) =
                kurier_web::admin::auth::new_token(a.clone(), &name, kurier_store::now(), days);
            store.put_api_token(&token).await?;
            eprintln!(
                "token {name:?} for {} (shown once; keep it safe):",
                a.address
            );
            println!("{text}");
        }
        TokenCommand::List { account: address } => {
            let a = account(address).await?;
            for t in store.api_tokens(a.id).await? {
                let expires = t
                    .expires
                    .map_or("never".to_string(), kurier_smtp::received::rfc5322_date);
                println!(
                    "{}  created {}  expires {expires}",
                    t.name,
                    kurier_smtp::received::rfc5322_date(t.created)
                );
            }
        }
        TokenCommand::Del {
            account: address,
            name,
        } => {
            let a = account(address).await?;
            store.delete_api_token(a.id, &name).await?;
            println!("deleted token {name:?}");
        }
    }
    Ok(())
}

pub async fn alias(args: ConfigArgs, cmd: AliasCommand) -> anyhow::Result<()> {
    let store = open(&args).await?;
    match cmd {
        AliasCommand::Add { address, targets } => {
            let t: Vec<&str> = targets.iter().map(String::as_str).collect();
            let a = store.add_alias(&address, &t).await?;
            println!("added alias {} -> {}", a.address, a.targets.join(", "));
        }
        AliasCommand::List { domain } => {
            for a in store.aliases(domain.as_deref()).await? {
                println!("{} -> {}", a.address, a.targets.join(", "));
            }
        }
        AliasCommand::Del { address } => {
            store.delete_alias(&address).await?;
            println!("deleted alias {address}");
        }
    }
    Ok(())
}

pub async fn queue(args: ConfigArgs, cmd: QueueCommand) -> anyhow::Result<()> {
    let store = open(&args).await?;
    match cmd {
        QueueCommand::List => {
            let entries = store.queue().await?;
            if entries.is_empty() {
                println!("the queue is empty");
            }
            for e in entries {
                let sender = if e.sender.is_empty() {
                    "<>"
                } else {
                    e.sender.as_str()
                };
                let next = kurier_smtp::received::rfc5322_date(e.next_attempt);
                let tls = if e.require_tls { "  REQUIRETLS" } else { "" };
                println!(
                    "{}  {} bytes  from {sender}  attempts {}  next {next}{tls}",
                    e.id, e.size, e.attempts
                );
                for r in e.recipients {
                    let error = r.last_error.map(|x| format!("  ({x})")).unwrap_or_default();
                    println!("    {}  {}{error}", r.address, r.status.as_str());
                }
            }
        }
        QueueCommand::Retry { id } => {
            store.retry_queue_entry(id, kurier_store::now()).await?;
            println!("message {id} is due now (the running server tries it within seconds)");
        }
        QueueCommand::Delete { id } => {
            store.delete_queue_entry(id, kurier_store::now()).await?;
            println!("deleted message {id}");
        }
        QueueCommand::Bounce { id, reason } => {
            let cfg = args.config()?;
            let b = kurier_delivery::bounce::bounce(
                &*store,
                &cfg.server.hostname,
                id,
                &reason,
                kurier_store::now(),
            )
            .await?;
            println!(
                "returned message {id} to its sender ({} recipients)",
                b.recipients.len()
            );
        }
    }
    Ok(())
}

/// A password from a prompt (twice, not echoed) or from the first line of standard input.
/// Never from the command line, where other users could read it in the process list.
fn read_password(address: &str) -> anyhow::Result<String> {
    let password = if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password(format!("password for {address}: "))?;
        let second = rpassword::prompt_password("again: ")?;
        if first != second {
            bail!("the passwords differ; nothing was changed");
        }
        first
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_string()
    };
    if password.is_empty() {
        bail!("empty password; nothing was changed");
    }
    Ok(password)
}

/// `500M`, `2G`, `1.5G` or plain bytes.
pub fn parse_size(s: &str) -> anyhow::Result<u64> {
    kurier_store::parse_size(s).ok_or_else(|| {
        ConfigProblem(format!(
            "--quota {s:?}: not a size (fix: write e.g. 500M, 2G or 1048576)"
        ))
        .into()
    })
}

fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)];
    for (unit, size) in UNITS {
        if bytes >= size {
            return format!("{:.1}{unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("500M").unwrap(), 500 << 20);
        assert_eq!(parse_size("2g").unwrap(), 2 << 30);
        assert_eq!(parse_size("1.5K").unwrap(), 1536);
        assert_eq!(parse_size("1048576").unwrap(), 1 << 20);
        for bad in ["", "M", "5X", "-1G", "lots"] {
            assert!(parse_size(bad).is_err(), "{bad}");
        }
        assert_eq!(format_size(1536), "1.5K");
        assert_eq!(format_size(12), "12B");
    }
}

#[derive(clap::Subcommand)]
pub enum DkimCommand {
    /// Make a DKIM key for a hosted domain and print the DNS record to publish.
    Generate {
        domain: String,
        /// The selector, the name under _domainkey.
        #[arg(long, default_value = "kurier")]
        selector: String,
        /// rsa (3072 bits) or ed25519 (RFC 8463). A domain has at most one key of each kind:
        /// the new one replaces the old one of its kind, the other kind keeps signing beside it.
        #[arg(long, default_value = "rsa", value_parser = ["rsa", "ed25519"])]
        algorithm: String,
    },
    /// Print the DNS records of a domain's DKIM keys.
    Show { domain: String },
}

/// The key file of `domain` with `selector` in the data folder.
pub use kurier_accept::dkim_key_path;

/// Makes a key for `domain` (a hosted domain), stores it and its selector; returns the key.
pub async fn dkim_generate(
    store: &dyn Store,
    data_dir: &std::path::Path,
    domain: &str,
    selector: &str,
    algorithm: kurier_dkim::Algorithm,
) -> anyhow::Result<kurier_dkim::DkimKey> {
    let domain = domain.trim().to_ascii_lowercase();
    if !selector
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-')
        || selector.is_empty()
    {
        bail!("selector {selector:?}: use letters, digits and '-'");
    }
    store.domain_settings(&domain).await?; // fails clearly for a domain we do not host
    let (key, pem) = kurier_dkim::DkimKey::generate(&domain, selector, algorithm)?;
    let path = dkim_key_path(data_dir, &domain, selector);
    std::fs::create_dir_all(path.parent().unwrap_or(data_dir))?;
    {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(&pem)?;
        f.sync_all()?;
    }
    // The new key replaces the one of its kind; a key of the other kind keeps signing beside
    // it (RSA first: what every verifier knows).
    let mut keys: Vec<(kurier_dkim::Algorithm, String)> = dkim_keys(store, data_dir, &domain)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|k| k.kind() != algorithm && k.selector != selector)
        .map(|k| (k.kind(), k.selector.clone()))
        .collect();
    keys.push((algorithm, selector.to_string()));
    keys.sort_by_key(|(kind, _)| *kind != kurier_dkim::Algorithm::Rsa);
    let selectors: Vec<&str> = keys.iter().map(|(_, s)| s.as_str()).collect();
    store
        .set_domain_setting(
            &domain,
            kurier_accept::DKIM_SELECTOR_SETTING,
            Some(&selectors.join(" ")),
        )
        .await?;
    Ok(key)
}

/// The key `domain` signs with, if it has one.
pub async fn dkim_key(
    store: &dyn Store,
    data_dir: &std::path::Path,
    domain: &str,
) -> anyhow::Result<Option<kurier_dkim::DkimKey>> {
    Ok(dkim_keys(store, data_dir, domain).await?.into_iter().next())
}

/// Every DKIM key of `domain` (an RSA and an Ed25519 one sign side by side).
pub async fn dkim_keys(
    store: &dyn Store,
    data_dir: &std::path::Path,
    domain: &str,
) -> anyhow::Result<Vec<kurier_dkim::DkimKey>> {
    let ring = kurier_dkim::DkimKeyring::new();
    let keys = kurier_accept::dkim_keys(&ring, store, data_dir, domain).await?;
    Ok(keys.into_iter().map(|k| (*k).clone()).collect())
}

/// A TXT record in zone-file form, its value split into strings of at most 255 bytes.
pub fn txt_record(name: &str, value: &str) -> String {
    let parts: Vec<String> = value
        .as_bytes()
        .chunks(255)
        .map(|c| format!("\"{}\"", String::from_utf8_lossy(c)))
        .collect();
    format!("{name} IN TXT ( {} )", parts.join("\n    "))
}

pub async fn dkim(args: ConfigArgs, cmd: DkimCommand) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let store = open(&args).await?;
    let key = match cmd {
        DkimCommand::Generate {
            domain,
            selector,
            algorithm,
        } => {
            let alg = if algorithm == "ed25519" {
                kurier_dkim::Algorithm::Ed25519
            } else {
                kurier_dkim::Algorithm::Rsa
            };
            let key = dkim_generate(&*store, &cfg.server.data_dir, &domain, &selector, alg).await?;
            eprintln!(
                "Publish this record; mail from {} is signed from now on:",
                key.domain
            );
            key
        }
        DkimCommand::Show { domain } => {
            let keys =
                dkim_keys(&*store, &cfg.server.data_dir, &domain.to_ascii_lowercase()).await?;
            if keys.is_empty() {
                bail!("{domain} has no DKIM key; make one with: kurier dkim generate {domain}");
            }
            for key in keys {
                let (name, value) = key.dns_record()?;
                println!("{}", txt_record(&name, &value));
            }
            return Ok(());
        }
    };
    let (name, value) = key.dns_record()?;
    println!("{}", txt_record(&name, &value));
    Ok(())
}
