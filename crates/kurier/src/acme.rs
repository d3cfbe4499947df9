//! Certificates from the ACME CA (`[acme]`, RFC 8555): the files in `data/acme/`, the names to
//! order, and the loop that orders, writes and reloads. Wiring only: the protocol is
//! `kurier_acme`, the timing `kurier_acme::renewal`, the DANE check `certificates` (the key is
//! kept across renewals, so the published `3 1 1` stays true).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kurier_acme::certificate::{bootstrap, certificate_key, served};
use kurier_acme::https::Https;
use kurier_acme::renewal::{backoff, due};
use kurier_acme::{AccountKey, AcmeClient, ChallengeType, Curve, Http01Tokens};
use kurier_config::{AcmeKeyType, Config};
use kurier_store::Store;
use kurier_tls::TlsAcceptor;
use kurier_tls::dev_ca::write_atomic;
use openssl::pkey::PKey;
use openssl::x509::X509;
use tokio::sync::watch;

use crate::certificates::DaneGuard;

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
}

pub fn files(cfg: &Config) -> AcmeFiles {
    let dir = cfg.server.data_dir.join("acme");
    AcmeFiles {
        account_key: dir.join("account.key"),
        cert_key: dir.join("cert.key"),
        cert: dir.join("cert.pem"),
        dir,
    }
}

/// Before the listeners start: the keys exist, and a certificate (the self-signed bootstrap
/// one for `server.hostname` the first time), so that every TLS listener can serve at once.
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
    let write = |path: &Path, data: &[u8], secret: bool| {
        write_atomic(path, data, secret).with_context(|| format!("cannot write {}", path.display()))
    };
    if !f.account_key.exists() {
        let key = AccountKey::generate(Curve::P256)?;
        write(&f.account_key, &key.to_pem()?, true)?;
        tracing::info!(path = %f.account_key.display(), "ACME account key created");
    }
    if !f.cert_key.exists() {
        let key = certificate_key(cfg.acme.key == AcmeKeyType::P384)?;
        write(&f.cert_key, &key.private_key_to_pem_pkcs8()?, true)?;
        tracing::info!(path = %f.cert_key.display(), "certificate key created; it is kept across renewals");
    }
    if !f.cert.exists() {
        let key = PKey::private_key_from_pem(&std::fs::read(&f.cert_key)?)
            .with_context(|| format!("{} holds no private key", f.cert_key.display()))?;
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

/// What the order loop needs.
pub struct AcmeService {
    pub cfg: Config,
    pub store: Arc<dyn Store>,
    pub endpoints: Vec<Arc<TlsAcceptor>>,
    pub guard: Option<Arc<DaneGuard>>,
    pub tokens: Arc<Http01Tokens>,
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl AcmeService {
    /// Orders when due (first certificate, names changed, two thirds of the lifetime gone),
    /// checking every `acme.check_secs`; a failure keeps the current certificate and backs off.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            let pause = match self.check().await {
                Ok(()) => {
                    failures = 0;
                    self.metrics
                        .acme_failures
                        .store(0, std::sync::atomic::Ordering::Relaxed);
                    Duration::from_secs(self.cfg.acme.check_secs)
                }
                Err(e) => {
                    failures += 1;
                    self.metrics
                        .acme_failures
                        .store(u64::from(failures), std::sync::atomic::Ordering::Relaxed);
                    let pause =
                        backoff(failures).min(Duration::from_secs(self.cfg.acme.check_secs));
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

    async fn check(&self) -> anyhow::Result<()> {
        let f = files(&self.cfg);
        let names = names(&self.cfg, &*self.store).await?;
        let current = std::fs::read(&f.cert)
            .ok()
            .and_then(|pem| X509::stack_from_pem(&pem).ok())
            .and_then(|chain| served(&chain));
        let Some(reason) = due(current.as_ref(), &names, kurier_store::now()) else {
            return Ok(());
        };
        tracing::info!(reason = ?reason, names = %names.join(" "), "ordering a certificate (ACME)");
        let chain = self.order(&f, &names).await?;
        let mut pem = Vec::new();
        for c in &chain {
            pem.extend(c.to_pem()?);
        }
        // The CA's chain must pass the same rules as any certificate (CERT-1, CERT-3) before
        // it replaces the one in use: a chain that would not load must not be on disk either,
        // or the next start would fail.
        let next = f.cert.with_extension("pem.new");
        write_atomic(&next, &pem, false)
            .with_context(|| format!("cannot write {}", next.display()))?;
        if let Err(e) = kurier_tls::LoadedCertificate::load_trusting(
            &next,
            &f.cert_key,
            self.cfg.tls.trusted_roots.as_deref(),
        ) {
            let _ = std::fs::remove_file(&next);
            anyhow::bail!("the CA issued a certificate Kurier cannot serve: {e}");
        }
        std::fs::rename(&next, &f.cert)
            .with_context(|| format!("cannot replace {}", f.cert.display()))?;
        tracing::info!(not_after = %chain[0].not_after(), "certificate issued (ACME)");
        crate::certificates::reload(&self.endpoints, self.guard.as_deref()).await;
        Ok(())
    }

    async fn order(&self, f: &AcmeFiles, names: &[String]) -> anyhow::Result<Vec<X509>> {
        let a = &self.cfg.acme;
        let account = AccountKey::from_pem(&std::fs::read(&f.account_key)?)?;
        let cert_key = PKey::private_key_from_pem(&std::fs::read(&f.cert_key)?)
            .with_context(|| format!("{} holds no private key", f.cert_key.display()))?;
        let tls = kurier_tls::ClientTls::new(a.ca_bundle.as_deref())
            .context("acme.ca_bundle is unusable")?;
        let mut client =
            AcmeClient::connect(Https::new(Arc::new(tls)), &a.directory, account).await?;
        client.register(&a.contact).await?;
        let chain = client
            .issue(
                names,
                &cert_key,
                &*self.tokens,
                &[ChallengeType::Http01],
                ORDER_DEADLINE,
            )
            .await?;
        Ok(chain)
    }
}
