//! `kurier serve --dev`: a working server with no configuration at all.

use std::path::Path;

use anyhow::Context;
use kurier_config::{Config, DEV_DOMAIN, DEV_HOSTNAME};
use kurier_store::{Store, StoreError};
use kurier_tls::dev_ca;

use crate::DevArgs;

/// Host names the dev certificate carries: the server's, and every name `kurier dns` tells an
/// operator to serve for a domain — the domain itself (Thunderbird's `.well-known` path),
/// `mta-sts.` (RFC 8461 §3.3), `autoconfig.` and `autodiscover.` (TR-03108 MUA-5/6) — spelt
/// out, since a const cannot be built from DEV_DOMAIN (the test below holds them together).
pub const DEV_CERT_NAMES: &[&str] = &[
    "localhost",
    DEV_HOSTNAME,
    DEV_DOMAIN,
    "mta-sts.example.test",
    "autoconfig.example.test",
    "autodiscover.example.test",
];

/// Creates the data folder and the dev certificates; returns the dev configuration and whether
/// the certificates were made just now.
pub fn prepare(args: &DevArgs) -> anyhow::Result<(Config, bool)> {
    std::fs::create_dir_all(&args.data)
        .with_context(|| format!("cannot create the data folder {}", args.data.display()))?;
    let certs = dev_ca::ensure(&args.data, DEV_CERT_NAMES).with_context(|| {
        format!(
            "cannot create the dev certificates in {}",
            args.data.display()
        )
    })?;
    Ok((
        Config::dev(args.data.clone(), args.listen_ip),
        certs.created,
    ))
}

/// The demo account of `--dev` and how its password came about.
pub struct DemoAccount {
    pub address: String,
    /// `Some` when the password was just set (from KURIER_DEV_PASSWORD or generated).
    pub password: Option<String>,
    pub from_env: bool,
}

/// The environment variable that sets the demo account's password.
pub const PASSWORD_ENV: &str = "KURIER_DEV_PASSWORD";

/// Makes sure the domain `example.test` and the account `demo@example.test` exist. The password
/// comes from KURIER_DEV_PASSWORD (set on every start), else a new one is generated once.
pub async fn demo_account(store: &dyn Store, data_dir: &Path) -> anyhow::Result<DemoAccount> {
    let address = format!("demo@{DEV_DOMAIN}");
    // Only what is missing is written: on a full disk (a read-only store) a dev server that
    // was set up before still starts.
    let domains = store.domains().await?;
    if !domains.iter().any(|d| d.name == DEV_DOMAIN) {
        match store.add_domain(DEV_DOMAIN).await {
            Ok(_) | Err(StoreError::Exists(_)) => {}
            Err(e) => return Err(e).context("cannot create the dev domain"),
        }
    }
    // Dev mail is DKIM-signed like real mail (one RSA key, kept across restarts).
    if crate::admin::dkim_key(store, data_dir, DEV_DOMAIN)
        .await?
        .is_none()
    {
        crate::admin::dkim_generate(
            store,
            data_dir,
            DEV_DOMAIN,
            "kurier",
            kurier_dkim::Algorithm::Rsa,
        )
        .await?;
    }
    let from_env = std::env::var(PASSWORD_ENV).ok().filter(|p| !p.is_empty());
    let exists = store.account(&address).await?.is_some();
    let password = match (&from_env, exists) {
        (Some(p), true) => match store.set_password(&address, p).await {
            Ok(()) => Some(p.clone()),
            Err(e) if e.is_temporary() => {
                tracing::warn!(error = %e, "cannot set the demo password from {PASSWORD_ENV} now; the stored one stays");
                None
            }
            Err(e) => return Err(e.into()),
        },
        (Some(p), false) => {
            store.add_account(&address, p, None).await?;
            Some(p.clone())
        }
        (None, true) => None,
        (None, false) => {
            let p = generate_password()?;
            store.add_account(&address, &p, None).await?;
            Some(p)
        }
    };
    // The demo account administers the dev server in the browser (https://localhost:8443/admin/).
    if let Err(e) = store
        .set_admin_scope(&address, &kurier_store::AdminScope::Server, true)
        .await
    {
        tracing::warn!(error = %e, "cannot make the demo account an administrator now");
    }
    Ok(DemoAccount {
        address,
        password,
        from_env: from_env.is_some(),
    })
}

/// 16 characters from an unambiguous 57-letter alphabet (about 93 bits).
fn generate_password() -> anyhow::Result<String> {
    let mut raw = [0u8; 16];
    openssl::rand::rand_bytes(&mut raw).context("cannot generate a password")?;
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    Ok(raw
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect())
}

/// What a developer needs to connect, printed once everything listens.
pub fn banner(config: &Config, data: &Path, demo: &DemoAccount) -> String {
    let ca = data.join(dev_ca::CA_CERT_FILE);
    let https = config.web.listen[0].0;
    let curl = if https.ip().is_loopback() && https.ip().to_string() == "127.0.0.1" {
        format!(
            "curl --cacert {} https://localhost:{}/",
            ca.display(),
            https.port()
        )
    } else {
        format!(
            "curl --cacert {} --resolve localhost:{port}:{ip} https://localhost:{port}/",
            ca.display(),
            port = https.port(),
            ip = https.ip()
        )
    };
    let smtp = config.smtp.listen[0].0;
    let (sub_tls, sub_starttls) = (
        config.submission.listen_implicit[0].0,
        config.submission.listen_starttls[0].0,
    );
    let (imaps, imap) = (
        config.imap.listen_implicit[0].0,
        config.imap.listen_starttls[0].0,
    );
    let (pop3s, pop3) = (
        config.pop3.listen_implicit[0].0,
        config.pop3.listen_starttls[0].0,
    );
    let password = match (&demo.password, demo.from_env) {
        (Some(_), true) => format!("(from {PASSWORD_ENV})"),
        (Some(p), false) => format!("{p}   (generated now; set {PASSWORD_ENV} to choose one)"),
        (None, _) => format!(
            "unchanged (set {PASSWORD_ENV}, or: kurier user passwd --dev {})",
            demo.address
        ),
    };
    format!(
        "Kurier {version} development server ({host})\n\
         \x20 data folder    {data}\n\
         \x20 account        {account}   password: {password}\n\
         \x20 CA to trust    {ca}   (made for this data folder only)\n\
         \x20 HTTPS          https://{https}/   try: {curl}\n\
         \x20 administration https://localhost:{https_port}/admin/   sign in as {account}\n\
         \x20 SMTP (MX)      {smtp}   STARTTLS offered; try: swaks --server {smtp} --to {account} --tls\n\
         \x20 submission     {sub_tls} (implicit TLS), {sub_starttls} (STARTTLS); log in as {account}\n\
         \x20 outbound       off in --dev: mail for other domains stays queued (kurier queue list --dev)\n\
         \x20 IMAP           {imaps} (implicit TLS), {imap} (STARTTLS); try: curl --cacert {ca} --resolve localhost:{imaps_port}:{imaps_ip} -u {account} imaps://localhost:{imaps_port}/INBOX\n\
         \x20 POP3           {pop3s} (implicit TLS), {pop3} (STLS)\n\
         ready. Stop with Ctrl-C.",
        version = env!("CARGO_PKG_VERSION"),
        host = config.server.hostname,
        data = data.display(),
        ca = ca.display(),
        account = demo.address,
        imaps_port = imaps.port(),
        imaps_ip = imaps.ip(),
        https_port = https.port(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dev_certificate_names_the_dev_domain_and_its_service_hosts() {
        assert!(DEV_CERT_NAMES.contains(&DEV_HOSTNAME));
        for prefix in ["", "mta-sts.", "autoconfig.", "autodiscover."] {
            let name = format!("{prefix}{DEV_DOMAIN}");
            assert!(DEV_CERT_NAMES.contains(&name.as_str()), "{name}");
        }
    }
}
