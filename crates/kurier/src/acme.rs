//! Certificates from the ACME CA (`[acme]`, RFC 8555): the files in `data/acme/`, the names to
//! order, the loop that orders, checks, writes and reloads, and key changes (RFC 7671 §8.1: the
//! next key's chain goes live only once its TLSA record is published everywhere and two TTLs
//! have passed). Wiring only: the protocol is `kurier_acme`, the timing `kurier_acme::renewal`,
//! the DANE verdicts `kurier_policy::rollover` (through `certificates`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use anyhow::Context;
use kurier_acme::certificate::{bootstrap, certificate_key, served};
use kurier_acme::https::Https;
use kurier_acme::renewal::{backoff, due};
use kurier_acme::{AccountKey, AcmeClient, ChallengeResponses, ChallengeType, Curve};
use kurier_config::{AcmeChallenge, AcmeKeyType, Config};
use kurier_policy::rollover::{KeyChange, Published, judge, key_change};
use kurier_store::Store;
use kurier_tls::TlsAcceptor;
use kurier_tls::dev_ca::write_atomic;
use kurier_tls::tlsa::{TlsaRecord, matches_chain};
use openssl::pkey::{PKey, Private};
use openssl::x509::X509;
use tokio::sync::watch;

use crate::certificates::{self, DaneGuard};

/// One order may take this long (pending validations, a slow CA) before it counts as failed.
const ORDER_DEADLINE: Duration = Duration::from_secs(300);

/// Where the ACME state lives: `data/acme/` (0700).
pub struct AcmeFiles {
    pub dir: PathBuf,
    pub account_key: PathBuf,
    /// The certificate key, kept across renewals (RFC 7671 §8.1: the `3 1 1` stays).
    pub cert_key: PathBuf,
    /// The chain in use: the CA's, or the bootstrap certificate until the first order.
    pub cert: PathBuf,
    /// A renewed chain for `cert_key` that is not in use yet: it waits for its TLSA check.
    pub cert_new: PathBuf,
    /// The next key of a key change, and its chain once the CA has issued it.
    pub next_key: PathBuf,
    pub next_cert: PathBuf,
}

pub fn files(cfg: &Config) -> AcmeFiles {
    let dir = cfg.server.data_dir.join("acme");
    AcmeFiles {
        account_key: dir.join("account.key"),
        cert_key: dir.join("cert.key"),
        cert: dir.join("cert.pem"),
        cert_new: dir.join("cert.pem.new"),
        next_key: dir.join("next.key"),
        next_cert: dir.join("next.pem"),
        dir,
    }
}

fn write(path: &Path, data: &[u8], secret: bool) -> anyhow::Result<()> {
    write_atomic(path, data, secret).with_context(|| format!("cannot write {}", path.display()))
}

fn read_key(path: &Path) -> anyhow::Result<PKey<Private>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    PKey::private_key_from_pem(&pem)
        .with_context(|| format!("{} holds no private key", path.display()))
}

/// The `3 1 1` record of the key in `path`.
fn key_record(path: &Path) -> anyhow::Result<String> {
    let key = read_key(path)?;
    Ok(TlsaRecord::dane_ee_for_key(&key)?.rdata())
}

/// The PEM chain in `path`, if there is a readable one.
fn read_chain(path: &Path) -> Option<Vec<X509>> {
    let pem = std::fs::read(path).ok()?;
    X509::stack_from_pem(&pem).ok().filter(|c| !c.is_empty())
}

/// A new certificate key (the configured curve) in `path`; its `3 1 1` record.
fn new_key(cfg: &Config, path: &Path) -> anyhow::Result<String> {
    let key = certificate_key(cfg.acme.key == AcmeKeyType::P384)?;
    write(path, &key.private_key_to_pem_pkcs8()?, true)?;
    Ok(TlsaRecord::dane_ee_for_key(&key)?.rdata())
}

/// Before the listeners start: the keys exist, and a certificate (the self-signed bootstrap
/// one for `server.hostname` the first time), so that every TLS listener can serve at once. A
/// key change cut short between its two renames is finished.
pub fn prepare(cfg: &Config) -> anyhow::Result<()> {
    let f = files(cfg);
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&f.dir)
            .with_context(|| format!("cannot create {}", f.dir.display()))?;
    }
    if !f.account_key.exists() {
        let key = AccountKey::generate(Curve::P256)?;
        write(&f.account_key, &key.to_pem()?, true)?;
        tracing::info!(path = %f.account_key.display(), "ACME account key created");
    }
    if !f.cert_key.exists() {
        new_key(cfg, &f.cert_key)?;
        tracing::info!(path = %f.cert_key.display(), "certificate key created; it is kept across renewals");
    }
    if f.next_cert.exists() && !f.next_key.exists() {
        // `switch_key` renames next.key, then next.pem: only the second rename is missing if
        // the chain is for the key in use.
        let key = read_key(&f.cert_key)?;
        if read_chain(&f.next_cert)
            .is_some_and(|c| c[0].public_key().is_ok_and(|k| k.public_eq(&key)))
        {
            std::fs::rename(&f.next_cert, &f.cert)
                .with_context(|| format!("cannot replace {}", f.cert.display()))?;
            tracing::info!("the interrupted key change is complete");
        } else {
            std::fs::remove_file(&f.next_cert)
                .with_context(|| format!("cannot remove {}", f.next_cert.display()))?;
        }
    }
    if !f.cert.exists() {
        let key = read_key(&f.cert_key)?;
        let cert = bootstrap(&[cfg.server.hostname.to_ascii_lowercase()], &key)?;
        write(&f.cert, &cert.to_pem()?, false)?;
        tracing::info!("a self-signed certificate serves until the ACME CA has issued one");
    }
    Ok(())
}

/// The names to order: `server.hostname`, then `mta-sts.` (with `[mta_sts]`), `autoconfig.`
/// and `autodiscover.` (with `[autoconfig]`) of every hosted domain.
pub async fn names(cfg: &Config, store: &dyn Store) -> anyhow::Result<Vec<String>> {
    let mut names = vec![cfg.server.hostname.to_ascii_lowercase()];
    let mut prefixes = Vec::new();
    if cfg.mta_sts.enabled {
        prefixes.push("mta-sts.");
    }
    if cfg.autoconfig.enabled {
        prefixes.extend(["autoconfig.", "autodiscover."]);
    }
    for d in store
        .domains()
        .await
        .context("cannot read the hosted domains")?
    {
        for p in &prefixes {
            let n = format!("{p}{}", d.name.to_ascii_lowercase());
            if !names.contains(&n) {
                names.push(n);
            }
        }
    }
    Ok(names)
}

/// What the order loop remembers of a key change between two looks.
#[derive(Default)]
struct KeyChangeProgress {
    /// Since when the next chain has been seen published (RFC 7671 §8.1's two TTLs).
    seen: Option<Published>,
    /// The next key's TLSA record as `dns_update` last sent it (once per key).
    tlsa_sent: Option<String>,
}

/// What the order loop needs.
pub struct AcmeService {
    pub cfg: Config,
    pub store: Arc<dyn Store>,
    pub endpoints: Vec<Arc<TlsAcceptor>>,
    pub guard: Option<Arc<DaneGuard>>,
    pub challenges: Arc<ChallengeResponses>,
    /// `[dns_update]`: the next key's TLSA record is published, the old one retired.
    pub dns_update: Option<Arc<crate::dns_update::Publisher>>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AcmeService {
    /// Orders when due (first certificate, names changed, two thirds of the lifetime gone),
    /// checking every `acme.check_secs`; a failure keeps the current certificate and backs off.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut progress = KeyChangeProgress::default();
        loop {
            let every = Duration::from_secs(self.cfg.acme.check_secs);
            let pause = match self.check(&mut progress).await {
                Ok(wake) => {
                    failures = 0;
                    self.metrics.acme_failures.store(0, Relaxed);
                    wake.map_or(every, |w| w.min(every))
                }
                Err(e) => {
                    failures += 1;
                    self.metrics
                        .acme_failures
                        .store(u64::from(failures), Relaxed);
                    let pause = backoff(failures).min(every);
                    tracing::error!(error = %format!("{e:#}"), failures, retry_secs = pause.as_secs(),
                        "ACME order failed; the current certificate keeps serving");
                    pause
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = stop.changed() => return,
            }
        }
    }

    /// One look at everything; returns when to look again if that is sooner than usual (a key
    /// change waiting out two TTLs).
    async fn check(&self, progress: &mut KeyChangeProgress) -> anyhow::Result<Option<Duration>> {
        let f = files(&self.cfg);
        let names = names(&self.cfg, &*self.store).await?;
        self.schedule_key_change(&f)?;
        let now = kurier_store::now();
        let status = |path: &Path| read_chain(path).and_then(|c| served(&c));

        // The key in use: a renewed chain waits in cert.pem.new until its TLSA check passes
        // (and is not ordered again meanwhile, unless it is itself due).
        let basis = if f.cert_new.exists() {
            &f.cert_new
        } else {
            &f.cert
        };
        if let Some(reason) = due(status(basis).as_ref(), &names, now) {
            tracing::info!(reason = ?reason, names = %names.join(" "), "ordering a certificate (ACME)");
            self.order_into(&f.cert_key, &names, &f.cert_new).await?;
        }
        if f.cert_new.exists() {
            self.go_live(&f).await?;
        }

        let since = std::fs::metadata(&f.next_key)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
        let Some(since) = since else {
            *progress = KeyChangeProgress::default();
            self.key_change_metrics(0, 0);
            return Ok(None);
        };
        self.key_change_metrics(1, since.as_secs().max(1));
        if let Some(reason) = due(status(&f.next_cert).as_ref(), &names, now) {
            tracing::info!(reason = ?reason, names = %names.join(" "), "ordering a certificate for the next key (key change)");
            self.order_into(&f.next_key, &names, &f.next_cert).await?;
        }
        self.key_change(&f, progress).await
    }

    /// `acme.key_change_days`: a key that old gets a successor.
    fn schedule_key_change(&self, f: &AcmeFiles) -> anyhow::Result<()> {
        let days = self.cfg.acme.key_change_days;
        if days == 0 || f.next_key.exists() {
            return Ok(());
        }
        let age = std::fs::metadata(&f.cert_key)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or_default();
        if age < Duration::from_secs(u64::from(days) * 86_400) {
            return Ok(());
        }
        let record = new_key(&self.cfg, &f.next_key)?;
        tracing::warn!(
            age_days = age.as_secs() / 86_400,
            "key change (acme.key_change_days): the next key is made; publish TLSA {record} at {} beside the current record",
            owners(&self.cfg).join(", ")
        );
        Ok(())
    }

    /// Orders a chain for the key in `key_path` and writes it to `out` once it passes the
    /// certificate rules (CERT-1, CERT-3): a chain that would not load is never on disk.
    async fn order_into(
        &self,
        key_path: &Path,
        names: &[String],
        out: &Path,
    ) -> anyhow::Result<()> {
        let key = read_key(key_path)?;
        let chain = self.order(&key, names).await?;
        let mut pem = Vec::new();
        for c in &chain {
            pem.extend(c.to_pem()?);
        }
        write(out, &pem, false)?;
        if let Err(e) = kurier_tls::LoadedCertificate::load_trusting(
            out,
            key_path,
            self.cfg.tls.trusted_roots.as_deref(),
        ) {
            let _ = std::fs::remove_file(out);
            anyhow::bail!("the CA issued a certificate Kurier cannot serve: {e}");
        }
        tracing::info!(not_after = %chain[0].not_after(), file = %out.display(), "certificate issued (ACME)");
        Ok(())
    }

    /// The renewed chain replaces the one in use if the published TLSA records allow it.
    async fn go_live(&self, f: &AcmeFiles) -> anyhow::Result<()> {
        let chain = read_chain(&f.cert_new)
            .with_context(|| format!("{} holds no certificate", f.cert_new.display()))?;
        if let Some(guard) = &self.guard {
            certificates::approve(guard, &chain, &self.endpoints)
                .await
                .with_context(|| {
                    format!("the renewed certificate waits in {}", f.cert_new.display())
                })?;
        }
        std::fs::rename(&f.cert_new, &f.cert)
            .with_context(|| format!("cannot replace {}", f.cert.display()))?;
        // Approved above: the guard judges the chain for server.hostname, which is this one
        // (the ACME certificate is the default), so asking DNS again would change nothing.
        certificates::reload(&self.endpoints, None).await;
        Ok(())
    }

    /// RFC 7671 §8.1 for the next key: switch once its chain matches the TLSA RRset at every
    /// DANE port and two TTLs have passed since that was first seen.
    async fn key_change(
        &self,
        f: &AcmeFiles,
        progress: &mut KeyChangeProgress,
    ) -> anyhow::Result<Option<Duration>> {
        let Some(chain) = read_chain(&f.next_cert) else {
            return Ok(None);
        };
        let now = u64::try_from(kurier_store::now()).unwrap_or(0);
        let step = match &self.guard {
            // tls.dane_rollover_check = false: the operator publishes by hand.
            None => KeyChange::Switch,
            Some(guard) => {
                let (answers, ttl) = certificates::answers(guard).await;
                let verdict = judge(&answers, |r| matches_chain(r, &chain), false);
                key_change(verdict, &mut progress.seen, ttl, now)
            }
        };
        match step {
            KeyChange::Unpublished { owners: missing } => {
                if let Some(publisher) = &self.dns_update {
                    let next = key_record(&f.next_key)?;
                    if progress.tlsa_sent.as_deref() != Some(next.as_str()) {
                        publisher.tlsa(&owners(&self.cfg), &next, true).await?;
                        progress.tlsa_sent = Some(next.clone());
                        tracing::info!(
                            "key change: the next key's TLSA {next} was published by [dns_update]; the switch waits until the validating resolver sees it"
                        );
                    }
                    return Ok(None);
                }
                tracing::warn!(
                    "key change waits: the next key's certificate matches none of the TLSA records published at {}. Publish {} beside the current record",
                    missing.join(", "),
                    certificates::publish_hint(&missing, &chain)
                );
                Ok(None)
            }
            KeyChange::Unconfirmed { owners } => {
                tracing::warn!(
                    "key change waits: the TLSA records cannot be confirmed ({})",
                    certificates::first_reason(&owners)
                );
                Ok(None)
            }
            KeyChange::Propagating { until } => {
                self.metrics.acme_key_change.store(2, Relaxed);
                tracing::info!(
                    switch_at = until,
                    "key change: the next key's TLSA records are published; waiting two TTLs for caches to expire"
                );
                Ok(Some(Duration::from_secs(until.saturating_sub(now).max(1))))
            }
            KeyChange::Switch => {
                self.switch_key(f).await?;
                *progress = KeyChangeProgress::default();
                self.key_change_metrics(0, 0);
                Ok(None)
            }
        }
    }

    fn key_change_metrics(&self, state: u64, since: u64) {
        self.metrics.acme_key_change.store(state, Relaxed);
        self.metrics.acme_next_key_since.store(since, Relaxed);
    }

    /// next.key becomes cert.key, next.pem cert.pem (in that order: `prepare` finishes the
    /// second rename after a crash), and every endpoint reloads.
    async fn switch_key(&self, f: &AcmeFiles) -> anyhow::Result<()> {
        kurier_tls::LoadedCertificate::load_trusting(
            &f.next_cert,
            &f.next_key,
            self.cfg.tls.trusted_roots.as_deref(),
        )
        .context("the next key's certificate cannot serve")?;
        let old = key_record(&f.cert_key)?;
        std::fs::rename(&f.next_key, &f.cert_key)
            .with_context(|| format!("cannot replace {}", f.cert_key.display()))?;
        std::fs::rename(&f.next_cert, &f.cert)
            .with_context(|| format!("cannot replace {}", f.cert.display()))?;
        // A renewal of the old key that was still waiting has no use now.
        let _ = std::fs::remove_file(&f.cert_new);
        certificates::reload(&self.endpoints, self.guard.as_deref()).await;
        let owner_names = owners(&self.cfg);
        let listed = owner_names.join(", ");
        if let Some(publisher) = &self.dns_update {
            // RFC 7671 §8.1: the old record goes once the new key serves. The switch is done
            // either way: a failure here leaves one record too many, which breaks nothing.
            match publisher.tlsa(&owner_names, &old, false).await {
                Ok(()) => {
                    tracing::info!(
                        "key change done: the next key serves now; TLSA {old} (the old key) was removed from {listed} by [dns_update]"
                    );
                    return Ok(());
                }
                Err(e) => {
                    tracing::error!(error = %format!("{e:#}"), "[dns_update] could not remove the old TLSA record")
                }
            }
        }
        tracing::warn!(
            "key change done: the next key serves now. Remove TLSA {old} (the old key) from {listed}"
        );
        Ok(())
    }

    async fn order(&self, cert_key: &PKey<Private>, names: &[String]) -> anyhow::Result<Vec<X509>> {
        let a = &self.cfg.acme;
        let account = AccountKey::from_pem(&std::fs::read(files(&self.cfg).account_key)?)?;
        let tls = kurier_tls::ClientTls::new(a.ca_bundle.as_deref())
            .context("acme.ca_bundle is unusable")?;
        let mut client =
            AcmeClient::connect(Https::new(Arc::new(tls)), &a.directory, account).await?;
        client.register(&a.contact).await?;
        let chain = client
            .issue(
                names,
                cert_key,
                &*self.challenges,
                &[match a.challenge {
                    AcmeChallenge::Http01 => ChallengeType::Http01,
                    AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
                }],
                ORDER_DEADLINE,
            )
            .await?;
        Ok(chain)
    }
}

/// Our TLSA owner names, as `kurier dns` publishes them.
fn owners(cfg: &Config) -> Vec<String> {
    crate::hosting::dane_ports(cfg)
        .into_iter()
        .map(|p| {
            let host = cfg.server.hostname.to_ascii_lowercase();
            format!("{}.", kurier_policy::dane::tlsa_name(&host, p))
        })
        .collect()
}

/// The `3 1 1` records for `kurier dns`: the key in use, and the next one during a key change.
/// No `2 1 1`: an ACME CA may sign with another intermediate at any renewal (RFC 7671 §8).
pub fn tlsa_records(cfg: &Config) -> anyhow::Result<Vec<String>> {
    let f = files(cfg);
    let mut out = Vec::new();
    for path in [&f.cert_key, &f.next_key] {
        if path.exists() {
            out.push(key_record(path)?);
        }
    }
    Ok(out)
}

#[derive(clap::Subcommand)]
pub enum AcmeCommand {
    /// The certificate in use, a renewal or key change under way, and the TLSA records.
    Status,
    /// Start a key change now: make the next key (data/acme/next.key). The running server
    /// orders its certificate and switches once its TLSA record is published at every DANE
    /// port and two TTLs have passed.
    NextKey,
}

/// `kurier acme …`
pub fn command(cfg: &Config, cmd: AcmeCommand) -> anyhow::Result<()> {
    if !cfg.acme.enabled {
        return Err(
            crate::ConfigProblem("[acme] is not enabled in this configuration".into()).into(),
        );
    }
    let f = files(cfg);
    match cmd {
        AcmeCommand::NextKey => {
            if f.next_key.exists() {
                anyhow::bail!(
                    "a key change is already under way ({} exists); `kurier acme status` shows it",
                    f.next_key.display()
                );
            }
            if !f.dir.exists() {
                anyhow::bail!(
                    "{} does not exist: start `kurier serve` once first",
                    f.dir.display()
                );
            }
            let record = new_key(cfg, &f.next_key)?;
            println!("next key: {}", f.next_key.display());
            println!("Publish beside the current record, then Kurier switches by itself:");
            for o in owners(cfg) {
                println!("{o} IN TLSA {record}");
            }
            Ok(())
        }
        AcmeCommand::Status => {
            print!("{}", status(cfg, &f)?);
            Ok(())
        }
    }
}

fn status(cfg: &Config, f: &AcmeFiles) -> anyhow::Result<String> {
    use std::fmt::Write as _;
    let mut out = String::new();
    let describe = |out: &mut String, label: &str, path: &Path| match read_chain(path) {
        Some(chain) => {
            let leaf = &chain[0];
            let issuer = leaf
                .issuer_name()
                .entries_by_nid(openssl::nid::Nid::COMMONNAME)
                .next()
                .map(|e| String::from_utf8_lossy(e.data().as_slice()).into_owned())
                .unwrap_or_default();
            let _ = writeln!(out, "{label}: {}", path.display());
            let _ = writeln!(
                out,
                "  names:     {}",
                kurier_tls::certificate::dns_names(leaf).join(" ")
            );
            let _ = writeln!(out, "  issuer:    {issuer}");
            let _ = writeln!(out, "  not after: {}", leaf.not_after());
        }
        None => {
            let _ = writeln!(out, "{label}: none");
        }
    };
    describe(&mut out, "certificate", &f.cert);
    if f.cert_key.exists() {
        let record = key_record(&f.cert_key)?;
        let _ = writeln!(out, "  key:       {} (TLSA {record})", f.cert_key.display());
    }
    if f.cert_new.exists() {
        describe(&mut out, "renewed, waiting for its TLSA check", &f.cert_new);
    }
    if f.next_key.exists() {
        let record = key_record(&f.next_key)?;
        let _ = writeln!(
            out,
            "key change under way: next key {} (TLSA {record})",
            f.next_key.display()
        );
        let _ = writeln!(
            out,
            "  publish beside the current record at: {}",
            owners(cfg).join(" ")
        );
        describe(&mut out, "  next key's certificate", &f.next_cert);
    } else {
        let _ = writeln!(out, "key change: none under way");
    }
    Ok(out)
}
