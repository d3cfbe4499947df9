//! Starting the services, reloading certificates, and shutting down gracefully.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kurier_config::Config;
use kurier_tls::{CertificateSource, ServerOptions, ServerProfile, TlsAcceptor, TlsError};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use crate::{ConfigArgs, ConfigProblem, LogFormatArg, admin, dev, logging};

/// Creates `server.data_dir` if it is missing (`kurier init`, `serve --create`, `--dev`).
pub fn create_data_dir(cfg: &Config) -> anyhow::Result<()> {
    let dir = &cfg.server.data_dir;
    std::fs::create_dir_all(dir).with_context(|| {
        format!(
            "cannot create server.data_dir {} (create it and let Kurier write to it, or set server.data_dir)",
            dir.display()
        )
    })
}

/// Refuses a `server.data_dir` that does not exist: a volume that failed to mount must not
/// become a new, empty store that answers "user unknown" to all mail (issue 16).
pub fn require_data_dir(cfg: &Config) -> anyhow::Result<()> {
    let dir = &cfg.server.data_dir;
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(ConfigProblem(format!(
            "server.data_dir {} is not a folder (fix: point server.data_dir at Kurier's data folder)",
            dir.display()
        ))
        .into()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ConfigProblem(format!(
            "server.data_dir {} does not exist (fix: on the first start run `kurier init` or `kurier serve --create`; otherwise check that its volume is mounted — Kurier does not start on an empty folder in its place)",
            dir.display()
        ))
        .into()),
        Err(e) => Err(anyhow::Error::new(e)
            .context(format!("cannot read server.data_dir {}", dir.display()))),
    }
}

/// `kurier serve`.
pub fn run(
    source: ConfigArgs,
    log_format: Option<LogFormatArg>,
    create: bool,
) -> anyhow::Result<()> {
    let dev = source.dev.clone();
    let (mut cfg, created) = if dev.dev {
        dev::prepare(&dev)?
    } else {
        (source.config()?, false)
    };
    if let Some(f) = log_format {
        cfg.log.format = match f {
            LogFormatArg::Text => kurier_config::LogFormat::Text,
            LogFormatArg::Json => kurier_config::LogFormat::Json,
        };
    }
    logging::init(cfg.log.format, &cfg.log.level);
    if created {
        tracing::info!(data = %dev.data.display(), "created the dev CA and server certificate");
    }
    if cfg.acme.enabled {
        // The ACME certificate is one of the acceptor's files: make sure it exists first.
        if create {
            create_data_dir(&cfg)?;
        }
        require_data_dir(&cfg)?;
        crate::acme::prepare(&cfg)?;
    }
    let acceptor = Arc::new(strict_acceptor(&cfg)?);
    raise_file_limit();
    bound_allocator();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // After the certificates, so their errors come first. `admin::open` refuses a missing
        // data folder (`--dev` made its own in `dev::prepare`).
        if create {
            create_data_dir(&cfg)?;
        }
        let store = admin::open(&source).await?;
        tracing::info!(store = %cfg.store_url(), "store opened");
        let demo = if dev.dev { Some(dev::demo_account(&*store, &cfg.server.data_dir).await?) } else { None };
        let (stop_tx, stop_rx) = watch::channel(false);
        let mut services = Vec::new();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let acme_tokens = Arc::new(kurier_acme::Http01Tokens::default());
        // One login throttle for every protocol (submission, IMAP, POP3, ManageSieve, the web
        // administration), so that switching gains an attacker nothing (TR-03108 MUA-2).
        let sub = &cfg.submission;
        let throttle = Arc::new(std::sync::Mutex::new(kurier_access::AuthThrottle::new(
            Duration::from_secs(sub.auth_window_secs),
            sub.auth_block_after,
        )));
        // Wakes the outbound queue runner when something was queued.
        let outbound = Arc::new(tokio::sync::Notify::new());
        let admin = cfg.web.admin.then(|| {
            Arc::new(kurier_web::admin::Admin {
                store: store.clone(),
                throttle: throttle.clone(),
                // Checked when the configuration was read.
                networks: cfg.web.admin_networks().unwrap_or_default(),
                hostname: cfg.server.hostname.clone(),
                session_secs: i64::from(cfg.web.session_hours) * 3600,
                server: Some(Arc::new(crate::hosting::Dashboard::new(&cfg, metrics.clone()))),
                outbound: Some(outbound.clone()),
                facts: Some(Arc::new(crate::hosting::AdminFacts::new(
                    Arc::new(cfg.clone()),
                    store.clone(),
                ))),
            })
        });
        if admin.is_some() {
            services.push(tokio::spawn(prune_web_sessions(store.clone(), stopped(stop_rx.clone()))));
        }
        let site = Arc::new(kurier_web::Site {
            admin,
            metrics: Some(metrics.clone()),
            acme: cfg.acme.enabled.then(|| acme_tokens.clone()),
            client_services: crate::hosting::client_services(&cfg),
            hostname: cfg.server.hostname.clone(),
            mta_sts: crate::hosting::sts_policy(&cfg).map(|p| kurier_web::StsHosting::new(&p)),
            ..kurier_web::Site::default()
        });
        tokio::spawn(crate::hosting::refresh_domains(store.clone(), site.clone(), stop_rx.clone()));
        let https_port = cfg.web.listen.first().map(|a| a.0.port()).unwrap_or(443);
        for addr in &cfg.web.listen_http {
            let listener = tokio::net::TcpListener::bind(addr.0).await.with_context(|| {
                format!("cannot listen on {addr} (web.listen_http): is another program using it, or is the port privileged?")
            })?;
            tracing::info!(%addr, "HTTP listening (redirects to HTTPS only)");
            services.push(tokio::spawn(kurier_web::serve_redirect(
                listener,
                https_port,
                site.clone(),
                stopped(stop_rx.clone()),
            )));
        }
        for addr in &cfg.web.listen {
            let listener = tokio::net::TcpListener::bind(addr.0).await.with_context(|| {
                format!("cannot listen on {addr} (web.listen): is another program using it, or is the port privileged?")
            })?;
            tracing::info!(%addr, "HTTPS listening");
            services.push(tokio::spawn(kurier_web::serve(
                listener,
                acceptor.clone(),
                site.clone(),
                stopped(stop_rx.clone()),
            )));
        }
        let mx_tls = match mx_acceptor(&cfg)? {
            Some(own) => Arc::new(own),
            None => acceptor.clone(),
        };
        // One resolver (one cache) for the queue runner, the TLSRPT reporter and the intake of
        // reports. Delivery cannot do without it; the intake can.
        let resolver = if cfg.delivery.enabled {
            Some(crate::outbound::resolver(&cfg)?)
        } else if cfg.tlsrpt.reporting_address.is_some()
            || cfg.tlsrpt.receive_reports
            || !cfg.blocklists.lists.is_empty()
        {
            crate::outbound::resolver(&cfg)
                .map_err(|e| tracing::error!(error = %e, "TLSRPT reports sent to us cannot be read: no resolver"))
                .ok()
        } else {
            None
        };
        let sender_auth = sender_auth(&cfg, resolver.as_ref(), metrics.clone())?;
        let intake = report_intake(&cfg, &store, resolver.as_ref(), sender_auth.is_some());
        if cfg.delivery.enabled && let Some(resolver) = &resolver {
            let validator = crate::outbound::validator(&cfg, resolver, stop_rx.clone());
            metrics.watch_validator(cfg.dns.dnssec, validator.clone());
            let runner = crate::outbound::runner(&cfg, resolver.clone(), store.clone(), outbound.clone(), validator)?;
            // A service like the listeners: shutdown waits (up to the grace) for attempts in flight.
            services.push(tokio::spawn(runner.run(stop_rx.clone())));
            let mut reporters = Vec::new();
            if cfg.tlsrpt.enabled {
                let reporter = crate::outbound::reporter(&cfg, resolver.clone(), store.clone(), outbound.clone(), true).await?;
                reporters.push(crate::outbound::DailyReporter::Tlsrpt(reporter));
            }
            if let Some(auth) = sender_auth.as_ref().filter(|_| cfg.sender_auth.send_reports) {
                let reporter = crate::outbound::dmarc_reporter(&cfg, resolver.clone(), store.clone(), outbound.clone(), auth.psl.clone()).await?;
                reporters.push(crate::outbound::DailyReporter::Dmarc(reporter));
            }
            tokio::spawn(crate::outbound::daily_reports(
                reporters,
                store.clone(),
                Duration::from_secs(cfg.tlsrpt.max_delay_secs),
                stop_rx.clone(),
            ));
        } else {
            tracing::warn!("delivery.enabled = false: mail for other domains stays queued");
        }
        // RAM for message bodies: SMTP DATA/BDAT and IMAP APPEND literals together.
        let body_memory = kurier_access::ByteBudget::new(cfg.smtp.body_memory_mb << 20);
        let dkim_keys = Arc::new(kurier_dkim::DkimKeyring::new());
        let shared = SmtpShared {
            store: store.clone(),
            outbound: outbound.clone(),
            metrics: metrics.clone(),
            reports: intake.clone(),
            in_flight: kurier_smtp::spool::InFlight::new(
                Some(cfg.server.data_dir.join("spool")),
                body_memory.clone(),
                cfg.smtp.in_flight_mb << 20,
            ),
            dkim_keys: dkim_keys.clone(),
            sender_auth: sender_auth.clone(),
            blocklists: blocklists(&cfg, resolver.as_ref()),
            spam: spam_filter(&cfg, metrics.clone()),
            greylisting: greylisting(&cfg, metrics.clone()),
            rates: smtp_rates(&cfg, &metrics),
            milters: milters(&cfg)?,
        };
        if shared.greylisting.is_some() {
            services.push(tokio::spawn(prune_greylist(
                store.clone(),
                cfg.greylisting.clone(),
                stopped(stop_rx.clone()),
            )));
        }
        let smtp = Arc::new(smtp_server(&cfg, &shared, mx_tls.clone(), None));
        for addr in &cfg.smtp.listen {
            let listener = tokio::net::TcpListener::bind(addr.0).await.with_context(|| {
                format!("cannot listen on {addr} (smtp.listen): is another program using it, or is the port privileged?")
            })?;
            tracing::info!(%addr, profile = mx_tls.profile().name(), "SMTP (MX) listening");
            services.push(tokio::spawn(kurier_smtp::serve(listener, smtp.clone(), stopped(stop_rx.clone()))));
        }
        // Submission: implicit TLS and STARTTLS, one throttle (shared with IMAP and POP3) and rate
        // limit for both.
        let rate = Arc::new(std::sync::Mutex::new(kurier_smtp::sasl::RateLimit::new(sub.max_messages_per_hour)));
        for (implicit_tls, list) in [(true, &sub.listen_implicit), (false, &sub.listen_starttls)] {
            let settings = kurier_smtp::server::SubmissionSettings {
                implicit_tls,
                throttle: throttle.clone(),
                rate: rate.clone(),
            };
            let server = Arc::new(smtp_server(&cfg, &shared, acceptor.clone(), Some(settings)));
            for addr in list {
                let listener = tokio::net::TcpListener::bind(addr.0).await.with_context(|| {
                    format!("cannot listen on {addr} (submission): is another program using it, or is the port privileged?")
                })?;
                let kind = if implicit_tls { "implicit TLS" } else { "STARTTLS" };
                tracing::info!(%addr, tls = kind, "submission listening");
                services.push(tokio::spawn(kurier_smtp::serve(listener, server.clone(), stopped(stop_rx.clone()))));
            }
        }
        // Mail access: IMAP and POP3 over the strict profile, logins through the same throttle.
        let imap = Arc::new(kurier_imap::ImapServer {
            store: store.clone(),
            tls: acceptor.clone(),
            throttle: throttle.clone(),
            connections: kurier_access::ConnectionLimit::new(cfg.imap.max_connections_per_ip as usize),
            max_message_size: cfg.imap.max_append_size,
            login_timeout: Duration::from_secs(cfg.imap.login_timeout_secs),
            idle_timeout: Duration::from_secs(cfg.imap.idle_timeout_secs),
            keepalive: Duration::from_secs(cfg.imap.keepalive_secs),
            headers: kurier_imap::cache::HeaderCache::new(64 << 20),
            body_memory: body_memory.clone(),
            training: spam_learner(&cfg, store.clone(), metrics.clone()),
        });
        for (kind, list) in [
            (kurier_imap::ImapListener::ImplicitTls, &cfg.imap.listen_implicit),
            (kurier_imap::ImapListener::StartTls, &cfg.imap.listen_starttls),
        ] {
            for addr in list {
                let listener = tokio::net::TcpListener::bind(addr.0).await.with_context(|| {
                    format!("cannot listen on {addr} (imap): is another program using it, or is the port privileged?")
                })?;
                tracing::info!(%addr, tls = ?kind, "IMAP listening");
                services.push(tokio::spawn(kurier_imap::serve(listener, kind, imap.clone(), stopped(stop_rx.clone()))));
            }
        }
        let pop3 = Arc::new(kurier_pop3::Pop3Server {
            store: store.clone(),
            tls: acceptor.clone(),
            throttle: throttle.clone(),
            connections: kurier_access::ConnectionLimit::new(cfg.pop3.max_connections_per_ip as usize),
            timeout: Duration::from_secs(cfg.pop3.timeout_secs),
        });
        for (kind, list) in [
            (kurier_pop3::Pop3Listener::ImplicitTls, &cfg.pop3.listen_implicit),
            (kurier_pop3::Pop3Listener::StartTls, &cfg.pop3.listen_starttls),
        ] {
            for addr in list {
                let listener = tokio::net::TcpListener::bind(addr.0).await.with_context(|| {
                    format!("cannot listen on {addr} (pop3): is another program using it, or is the port privileged?")
                })?;
                tracing::info!(%addr, tls = ?kind, "POP3 listening");
                services.push(tokio::spawn(kurier_pop3::serve(listener, kind, pop3.clone(), stopped(stop_rx.clone()))));
            }
        }
        if !cfg.managesieve.listen.is_empty() {
            let m = &cfg.managesieve;
            let sieve = Arc::new(kurier_managesieve::ManageSieveServer {
                store: store.clone(),
                tls: acceptor.clone(),
                throttle: throttle.clone(),
                connections: kurier_access::ConnectionLimit::new(m.max_connections_per_ip as usize),
                timeout: Duration::from_secs(m.timeout_secs),
                max_script_size: usize::try_from(m.max_script_size).unwrap_or(usize::MAX),
                max_scripts: m.max_scripts as usize,
            });
            for addr in &m.listen {
                let listener = tokio::net::TcpListener::bind(addr.0).await.with_context(|| {
                    format!("cannot listen on {addr} (managesieve.listen): is another program using it, or is the port privileged?")
                })?;
                tracing::info!(%addr, "ManageSieve listening");
                services.push(tokio::spawn(kurier_managesieve::serve(listener, sieve.clone(), stopped(stop_rx.clone()))));
            }
        }
        // Every endpoint's certificates reload together (SIGHUP or changed files).
        let mut endpoints = vec![acceptor.clone()];
        if !Arc::ptr_eq(&mx_tls, &acceptor) {
            endpoints.push(mx_tls.clone());
        }
        // A reload must not break the TLSA records others validate us with (RFC 7671 §8).
        let guard = dane_guard(&cfg, resolver.as_ref());
        if cfg.tls.reload_check_secs > 0 {
            tokio::spawn(crate::certificates::poll(
                endpoints.clone(),
                guard.clone(),
                Duration::from_secs(cfg.tls.reload_check_secs),
                stop_rx.clone(),
            ));
        }
        metrics.watch_certificates(acceptor.clone());
        if let Some(guard) = &guard
            && cfg.tls.tlsa_check_secs > 0
        {
            tokio::spawn(crate::certificates::monitor(
                mx_tls.clone(),
                guard.clone(),
                metrics.clone(),
                Duration::from_secs(cfg.tls.tlsa_check_secs),
                stop_rx.clone(),
            ));
        }
        let dns_update = crate::dns_update::Publisher::from_config(&cfg)?.map(Arc::new);
        if let Some(publisher) = &dns_update {
            tokio::spawn(crate::dns_update::keep_published(
                publisher.clone(),
                cfg.clone(),
                store.clone(),
                stop_rx.clone(),
            ));
        }
        if cfg.acme.enabled {
            let service = crate::acme::AcmeService {
                dns_update: dns_update.clone(),
                metrics: metrics.clone(),
                cfg: cfg.clone(),
                store: store.clone(),
                endpoints: endpoints.clone(),
                guard: guard.clone(),
                challenges: Arc::new(kurier_acme::ChallengeResponses {
                    http01: acme_tokens.clone(),
                    tls_alpn01: endpoints.iter().map(|e| e.acme_challenges()).collect(),
                }),
            };
            tokio::spawn(service.run(stop_rx.clone()));
        }
        let signals = StopSignals::install()?;
        if let Some(demo) = &demo {
            println!("{}", dev::banner(&cfg, &dev.data, demo));
        }
        tracing::info!(version = env!("CARGO_PKG_VERSION"), hostname = %cfg.server.hostname, "Kurier started");
        signals
            .wait(&endpoints, guard.as_deref(), &dkim_keys, sender_auth.as_deref(), &cfg)
            .await;

        // Graceful shutdown: stop accepting now, let sessions finish up to the deadline.
        let grace = Duration::from_secs(cfg.server.shutdown_grace_secs);
        tracing::info!(grace_secs = grace.as_secs(), "shutting down: no new connections, waiting for open ones");
        let _ = stop_tx.send(true);
        let all = futures_join(services);
        if tokio::time::timeout(grace, all).await.is_err() {
            tracing::warn!(grace_secs = grace.as_secs(), "sessions still open at the deadline were closed");
        }
        tracing::info!("stopped");
        Ok(())
    })
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<()>>) {
    for h in handles {
        let _ = h.await;
    }
}

async fn stopped(mut rx: watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

/// SIGTERM, SIGINT and SIGHUP, caught from before readiness is announced: a signal sent as
/// soon as "Kurier started" appears must not meet the default action (death by signal).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> anyhow::Result<StopSignals> {
        Ok(StopSignals {
            term: signal(SignalKind::terminate()).context("cannot handle SIGTERM")?,
            int: signal(SignalKind::interrupt()).context("cannot handle SIGINT")?,
            hup: signal(SignalKind::hangup()).context("cannot handle SIGHUP")?,
        })
    }

    /// Until SIGTERM or SIGINT; SIGHUP reloads certificates, DKIM keys and the Public Suffix
    /// List.
    async fn wait(
        mut self,
        endpoints: &[Arc<TlsAcceptor>],
        guard: Option<&crate::certificates::DaneGuard>,
        dkim_keys: &kurier_dkim::DkimKeyring,
        sender_auth: Option<&kurier_accept::SenderAuth>,
        cfg: &Config,
    ) {
        loop {
            tokio::select! {
                _ = self.term.recv() => { tracing::info!("SIGTERM received"); return }
                _ = self.int.recv() => { tracing::info!("SIGINT received"); return }
                _ = self.hup.recv() => {
                    tracing::info!("SIGHUP received: reloading certificates and DKIM keys");
                    crate::certificates::reload(endpoints, guard).await;
                    dkim_keys.clear();
                    if let Some(auth) = sender_auth {
                        reload_public_suffixes(cfg, auth);
                    }
                }
            }
        }
    }
}

/// The DNS lists of `[blocklists]`, when any are named and the resolver runs.
fn blocklists(
    cfg: &Config,
    resolver: Option<&kurier_dns::Resolver>,
) -> Option<Arc<kurier_accept::Blocklists>> {
    let resolver = resolver?;
    let lists = kurier_accept::Blocklists::from_config(&cfg.blocklists, resolver)?;
    tracing::info!(
        lists = lists.lists.len(),
        allow = lists.allow.len(),
        "DNS blocklists on"
    );
    Some(Arc::new(lists))
}

/// `[greylisting]`, when enabled.
fn greylisting(
    cfg: &Config,
    events: Arc<crate::metrics::Metrics>,
) -> Option<Arc<kurier_accept::Greylisting>> {
    let g = &cfg.greylisting;
    if !g.enabled {
        return None;
    }
    tracing::info!(
        delay_secs = g.delay_secs,
        exempt = g.exempt.len(),
        scope = ?g.scope,
        "greylisting on"
    );
    let secs = |s: u64| i64::try_from(s).unwrap_or(i64::MAX);
    Some(Arc::new(kurier_accept::Greylisting {
        delay: secs(g.delay_secs),
        retry_window: secs(g.retry_window_secs),
        expiry: secs(g.expiry_days.saturating_mul(86400)),
        // Checked when the configuration was read.
        exempt: g
            .exempt
            .iter()
            .filter_map(|e| kurier_config::SenderPattern::parse(e))
            .collect(),
        only_suspicious: g.scope == kurier_config::GreylistScope::Rspamd,
        events,
    }))
}

/// Forgets lapsed greylisting triplets once an hour, so the table does not grow without bound.
async fn prune_greylist(
    store: Arc<dyn kurier_store::Store>,
    g: kurier_config::GreylistConfig,
    stop: impl std::future::Future<Output = ()>,
) {
    let keep = g.retry_window_secs.max(g.expiry_days.saturating_mul(86400));
    let keep = i64::try_from(keep).unwrap_or(i64::MAX);
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        match store
            .greylist_prune(kurier_store::now().saturating_sub(keep))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(triplets = n, "lapsed greylisting triplets forgotten"),
            Err(e) => tracing::warn!(error = %e, "cannot prune greylisting triplets"),
        }
    }
}

/// Forgets expired web sessions once an hour.
async fn prune_web_sessions(
    store: Arc<dyn kurier_store::Store>,
    stop: impl std::future::Future<Output = ()>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.prune_web_sessions(kurier_store::now()).await {
            tracing::warn!(error = %e, "cannot forget expired web sessions");
        }
    }
}

/// `[spam]`'s rspamd client, when `spam.rspamd` names one.
fn spam_rspamd(cfg: &Config) -> Option<kurier_spam::Rspamd> {
    let s = &cfg.spam;
    Some(kurier_spam::Rspamd {
        scanner: s.rspamd?,
        controller: s.rspamd_controller,
        password: s.rspamd_password.clone(),
        timeout: Duration::from_millis(s.timeout_ms),
    })
}

/// The spam stage of `[spam]`, when rspamd is named.
fn spam_filter(
    cfg: &Config,
    events: Arc<crate::metrics::Metrics>,
) -> Option<Arc<kurier_accept::SpamFilter>> {
    let rspamd = spam_rspamd(cfg)?;
    let s = &cfg.spam;
    tracing::info!(rspamd = %rspamd.scanner, on_failure = ?s.on_failure,
        scan_submission = s.scan_submission, "spam scanning with rspamd on");
    Some(Arc::new(kurier_accept::SpamFilter {
        rspamd,
        on_failure: match s.on_failure {
            kurier_config::SpamFailure::Accept => kurier_accept::OnFailure::Accept,
            kurier_config::SpamFailure::Tempfail => kurier_accept::OnFailure::TempFail,
        },
        scan_submission: s.scan_submission,
        max_bytes: usize::try_from(s.max_bytes).unwrap_or(usize::MAX),
        hostname: cfg.server.hostname.clone(),
        events,
    }))
}

/// The learner behind IMAP's Junk moves, when learning is on and a controller is named.
fn spam_learner(
    cfg: &Config,
    store: Arc<dyn kurier_store::Store>,
    events: Arc<crate::metrics::Metrics>,
) -> Option<Arc<dyn kurier_imap::JunkTraining>> {
    let rspamd = spam_rspamd(cfg)?;
    if !cfg.spam.learn || rspamd.controller.is_none() {
        return None;
    }
    tracing::info!(controller = ?rspamd.controller, "rspamd learns from Junk moves");
    Some(Arc::new(JunkLessons(kurier_spam::Learner::start(
        rspamd, store, events,
    ))))
}

/// IMAP's copies into and out of Junk, as lessons for rspamd (`kurier_spam::lesson` decides).
struct JunkLessons(kurier_spam::Learner);

impl kurier_imap::JunkTraining for JunkLessons {
    fn copied(&self, from: &kurier_store::Mailbox, to: &kurier_store::Mailbox, uids: &[u32]) {
        if let Some(kind) = kurier_spam::lesson(from.special_use, to.special_use) {
            self.0.offer(kurier_spam::Lesson {
                kind,
                mailbox: to.id,
                uids: uids.to_vec(),
            });
        }
    }
}

/// Sender authentication of inbound mail (`[sender_auth]`), when it can run: it needs the
/// validating resolver, which runs with `[delivery]`. A Public Suffix List that cannot be read
/// stops the start: without it DMARC cannot tell organizational domains apart.
fn sender_auth(
    cfg: &Config,
    resolver: Option<&kurier_dns::Resolver>,
    events: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<Option<Arc<kurier_accept::SenderAuth>>> {
    let a = &cfg.sender_auth;
    if !a.enabled {
        tracing::warn!(
            "sender_auth.enabled = false: inbound mail is not checked with SPF, DKIM and DMARC (BSI TR-03182)"
        );
        return Ok(None);
    }
    let (true, Some(resolver)) = (cfg.delivery.enabled, resolver) else {
        tracing::warn!(
            "inbound mail is not checked with SPF, DKIM and DMARC: that needs the resolver, which runs with [delivery]"
        );
        return Ok(None);
    };
    let psl = read_public_suffixes(&a.public_suffix_list)?;
    tracing::info!(
        rules = psl.len(),
        enforce = a.enforce,
        "inbound SPF, DKIM and DMARC on"
    );
    Ok(Some(Arc::new(kurier_accept::SenderAuth {
        resolver: resolver.clone(),
        psl: Arc::new(std::sync::RwLock::new(Arc::new(psl))),
        authserv_id: cfg.server.hostname.to_ascii_lowercase(),
        enforce: a.enforce,
        exempt: a
            .dmarc_exempt
            .iter()
            .filter_map(|e| kurier_config::SenderPattern::parse(e))
            .collect(),
        events,
        record_reports: a.send_reports,
    })))
}

pub fn read_public_suffixes(path: &Path) -> anyhow::Result<kurier_mailauth::PublicSuffixList> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigProblem(format!(
            "sender_auth.public_suffix_list: cannot read {} ({e}): install the Debian package publicsuffix, or name the list file, or set sender_auth.enabled = false",
            path.display()
        ))
    })?;
    kurier_mailauth::PublicSuffixList::parse(&text).map_err(|e| {
        ConfigProblem(format!(
            "sender_auth.public_suffix_list: {}: {e}",
            path.display()
        ))
        .into()
    })
}

/// SIGHUP: a new list replaces the old one; a broken file keeps the old one (and says so).
fn reload_public_suffixes(cfg: &Config, auth: &kurier_accept::SenderAuth) {
    match read_public_suffixes(&cfg.sender_auth.public_suffix_list) {
        Ok(psl) => {
            tracing::info!(rules = psl.len(), "Public Suffix List reloaded");
            if let Ok(mut slot) = auth.psl.write() {
                *slot = Arc::new(psl);
            }
        }
        Err(e) => tracing::error!(error = %e, "Public Suffix List not reloaded; the old one stays"),
    }
}

/// The DANE check for certificate reloads: on unless `tls.dane_rollover_check = false`; it
/// needs the validating resolver (none when delivery and report intake are off, as in `--dev`).
fn dane_guard(
    cfg: &Config,
    resolver: Option<&kurier_dns::Resolver>,
) -> Option<Arc<crate::certificates::DaneGuard>> {
    if !cfg.tls.dane_rollover_check {
        tracing::warn!(
            "tls.dane_rollover_check = false: reloaded certificates are not compared with the published TLSA records"
        );
        return None;
    }
    let Some(resolver) = resolver else {
        tracing::info!(
            "certificate reloads are not compared with TLSA records: no resolver (delivery is off)"
        );
        return None;
    };
    // What `kurier dns` publishes, and the MX's own port where it is not 25 (behind a port
    // forward, or a test): a name without TLSA records there costs one lookup.
    let mut ports = crate::hosting::dane_ports(cfg);
    for l in &cfg.smtp.listen {
        if !ports.contains(&l.0.port()) {
            ports.push(l.0.port());
        }
    }
    Some(Arc::new(crate::certificates::DaneGuard {
        resolver: resolver.clone(),
        host: cfg.server.hostname.to_ascii_lowercase(),
        ports,
    }))
}

/// The strict-profile endpoint for HTTPS and the MUA ports (and port 25 unless it needs its
/// own), from `[[tls.certificate]]`.
fn strict_acceptor(cfg: &Config) -> anyhow::Result<TlsAcceptor> {
    acceptor(cfg, ServerProfile::Strict, options(cfg, true))
}

/// Port 25's own endpoint, where its settings differ from the strict one: the legacy profile
/// (`tls.mta_legacy`) or no session tickets (`smtp.tls_session_tickets = false`).
fn mx_acceptor(cfg: &Config) -> anyhow::Result<Option<TlsAcceptor>> {
    let tickets = cfg.smtp.tls_session_tickets;
    if !cfg.tls.mta_legacy && tickets {
        return Ok(None);
    }
    let profile = if cfg.tls.mta_legacy {
        ServerProfile::MtaLegacy
    } else {
        ServerProfile::Strict
    };
    acceptor(cfg, profile, options(cfg, tickets)).map(Some)
}

fn options(cfg: &Config, session_tickets: bool) -> ServerOptions {
    ServerOptions {
        session_tickets,
        hybrid_groups: cfg.tls.hybrid_groups,
    }
}

/// Reading the reports sent to us (`tlsrpt.reporting_address`, or `tlsrpt@` every hosted
/// domain), if DNS works for the DKIM keys; DMARC reports (`sender_auth.reporting_address`, or
/// `dmarc-reports@` every hosted domain) when `sender_auth` checks inbound mail, whose DMARC
/// pass is what makes a report trusted.
fn report_intake(
    cfg: &Config,
    store: &Arc<dyn kurier_store::Store>,
    resolver: Option<&kurier_dns::Resolver>,
    sender_auth: bool,
) -> Option<(
    kurier_accept::ReportAddresses,
    Arc<kurier_delivery::intake::ReportIntake>,
)> {
    use kurier_accept::ReportAddress;
    let one_kind = |explicit: &Option<String>, every: bool, local: &'static str| match explicit {
        Some(a) => ReportAddress::Only(a.to_ascii_lowercase()),
        None if every => ReportAddress::EveryDomain(local),
        None => ReportAddress::Off,
    };
    let a = &cfg.sender_auth;
    let addresses = kurier_accept::ReportAddresses {
        tlsrpt: one_kind(
            &cfg.tlsrpt.reporting_address,
            cfg.tlsrpt.receive_reports,
            "tlsrpt",
        ),
        // DMARC reports are trusted by the reporter's DMARC pass: without the check, none.
        dmarc: match sender_auth {
            true => one_kind(&a.reporting_address, a.receive_reports, "dmarc-reports"),
            false => ReportAddress::Off,
        },
    };
    if addresses.tlsrpt == ReportAddress::Off && addresses.dmarc == ReportAddress::Off {
        return None;
    }
    Some((
        addresses,
        Arc::new(kurier_delivery::intake::ReportIntake::new(
            store.clone(),
            resolver?.clone(),
        )),
    ))
}

/// What every SMTP listener (MX and submission) of one Kurier shares.
#[derive(Clone)]
struct SmtpShared {
    store: Arc<dyn kurier_store::Store>,
    outbound: Arc<tokio::sync::Notify>,
    metrics: Arc<crate::metrics::Metrics>,
    reports: Option<(
        kurier_accept::ReportAddresses,
        Arc<kurier_delivery::intake::ReportIntake>,
    )>,
    /// One budget for the bodies of every SMTP listener (issue 16: bounded memory).
    in_flight: Arc<kurier_smtp::spool::InFlight>,
    /// The DKIM keys submission signs with, shared and cleared on SIGHUP.
    dkim_keys: Arc<kurier_dkim::DkimKeyring>,
    /// SPF, DKIM and DMARC for the MX (never for submission).
    sender_auth: Option<Arc<kurier_accept::SenderAuth>>,
    /// DNS block- and allowlists for the MX (never for submission).
    blocklists: Option<Arc<kurier_accept::Blocklists>>,
    /// rspamd (MX, and submission with `spam.scan_submission`).
    spam: Option<Arc<kurier_accept::SpamFilter>>,
    /// `[greylisting]` for the MX.
    greylisting: Option<Arc<kurier_accept::Greylisting>>,
    /// The MX's connection and recipient rates, shared by its listeners.
    rates: SmtpRates,
    /// `[[milter]]`: the MX's filters and the submission ports'.
    milters: (
        Arc<Vec<kurier_accept::milter::Milter>>,
        Arc<Vec<kurier_accept::milter::Milter>>,
    ),
}

/// `[[milter]]` for the MX and for submission; a filter address that is none stops the start.
#[allow(clippy::type_complexity)]
fn milters(
    cfg: &Config,
) -> anyhow::Result<(
    Arc<Vec<kurier_accept::milter::Milter>>,
    Arc<Vec<kurier_accept::milter::Milter>>,
)> {
    use kurier_accept::milter::{DefaultAction, Milter};
    let (mut mx, mut submission) = (Vec::new(), Vec::new());
    for (i, m) in cfg.milter.iter().enumerate() {
        let Some(address) = kurier_milter::MilterAddress::parse(m.address.trim()) else {
            anyhow::bail!(
                "milter[{i}].address = {:?}: no filter address; write e.g. \"inet:7357@127.0.0.1\", \"127.0.0.1:8891\" or \"unix:/run/clamav/clamav-milter.ctl\"",
                m.address
            );
        };
        let milter = Milter {
            name: m.name.clone(),
            address,
            timeout: Duration::from_millis(m.timeout_ms),
            default_action: match m.default_action {
                kurier_config::MilterDefault::Accept => DefaultAction::Accept,
                kurier_config::MilterDefault::Tempfail => DefaultAction::TempFail,
                kurier_config::MilterDefault::Reject => DefaultAction::Reject,
            },
        };
        tracing::info!(milter = %milter.name, address = %milter.address, listeners = ?m.listeners, "milter on");
        if m.listeners.contains(&kurier_config::MilterListener::Mx) {
            mx.push(milter.clone());
        }
        if m.listeners
            .contains(&kurier_config::MilterListener::Submission)
        {
            submission.push(milter);
        }
    }
    Ok((Arc::new(mx), Arc::new(submission)))
}

/// The MX's rate limits.
#[derive(Clone)]
struct SmtpRates {
    connections: Arc<kurier_access::RateLimit>,
    recipients: Arc<kurier_access::RateLimit>,
    /// The floor under RCPT answer times (`smtp.recipient_answer_ms`).
    answers: Arc<kurier_access::ReplyFloor>,
}

/// `[smtp]`'s connection and recipient rates (shown on `/metrics`).
fn smtp_rates(cfg: &Config, metrics: &crate::metrics::Metrics) -> SmtpRates {
    let s = &cfg.smtp;
    let window = Duration::from_secs(s.rate_window_secs);
    // Checked when the configuration was read.
    let exempt = s.rate_exempt_networks().unwrap_or_default();
    let rates = SmtpRates {
        connections: Arc::new(kurier_access::RateLimit::new(
            window,
            s.connection_rate_per_address,
            s.connection_rate_per_network,
            exempt.clone(),
        )),
        recipients: Arc::new(kurier_access::RateLimit::new(
            window,
            s.recipient_rate_per_address,
            s.recipient_rate_per_network,
            exempt.clone(),
        )),
        answers: Arc::new(kurier_access::ReplyFloor::new(
            Duration::from_millis(s.recipient_answer_ms),
            exempt,
        )),
    };
    metrics.watch_rates(
        rates.connections.clone(),
        rates.recipients.clone(),
        rates.answers.clone(),
    );
    rates
}

/// An SMTP listener's settings: the MX (`submission: None`) or a submission port.
fn smtp_server(
    cfg: &Config,
    shared: &SmtpShared,
    tls: Arc<TlsAcceptor>,
    submission: Option<kurier_smtp::server::SubmissionSettings>,
) -> kurier_smtp::SmtpServer<kurier_accept::Acceptance> {
    let SmtpShared {
        store,
        outbound,
        metrics,
        reports,
        in_flight,
        dkim_keys,
        sender_auth,
        blocklists,
        spam,
        greylisting,
        rates,
        milters,
    } = shared.clone();
    let s = &cfg.smtp;
    let domain = cfg
        .server
        .hostname
        .split_once('.')
        .map(|(_, d)| d)
        .unwrap_or(&cfg.server.hostname);
    let session = kurier_smtp::SessionConfig {
        hostname: cfg.server.hostname.clone(),
        postmaster: format!("postmaster@{domain}"),
        max_message_size: s.max_message_size as usize,
        max_recipients: s.max_recipients as usize,
        max_errors: s.max_errors,
        max_line_length: s.max_line_length as usize,
        bare_line_ending: match s.bare_line_ending {
            kurier_config::BareLineEndingConfig::Reject => kurier_smtp::BareLineEnding::Reject,
            kurier_config::BareLineEndingConfig::Normalize => {
                kurier_smtp::BareLineEnding::Normalize
            }
        },
        starttls: !submission.as_ref().is_some_and(|s| s.implicit_tls),
        submission: submission.is_some(),
        received_client_ip: submission.is_none() || cfg.submission.received_client_ip,
        in_flight,
        clock: kurier_smtp::received::Clock::System,
    };
    let server = kurier_smtp::SmtpServer::new(
        session,
        kurier_accept::Acceptance {
            reports,
            store,
            data_dir: cfg.server.data_dir.clone(),
            outbound,
            report_events: metrics.clone(),
            dkim_keys,
            sender_auth: if submission.is_none() {
                sender_auth
            } else {
                None
            },
            blocklists: if submission.is_none() {
                blocklists
            } else {
                None
            },
            blocklist_events: metrics.clone(),
            spam,
            greylisting: if submission.is_none() {
                greylisting
            } else {
                None
            },
            recipient_rate: submission.is_none().then(|| rates.recipients.clone()),
            recipient_floor: submission.is_none().then(|| rates.answers.clone()),
            sieve_limits: kurier_sieve::Limits {
                redirects: cfg.sieve.max_redirects as usize,
                ..Default::default()
            },
            vacation_replies_per_day: cfg.sieve.vacation_replies_per_day,
            milters: if submission.is_none() {
                milters.0
            } else {
                milters.1
            },
            hostname: cfg.server.hostname.clone(),
            recipient_delimiter: cfg.smtp.recipient_delimiter.clone(),
        },
        Some(tls),
        Duration::from_secs(s.command_timeout_secs),
        Duration::from_secs(s.data_timeout_secs),
        s.max_connections_per_ip as usize,
    );
    match submission {
        Some(settings) => server.with_submission(settings),
        None => server.with_connection_rate(rates.connections),
    }
}

/// Keeps glibc's allocator from holding on to memory: each login's Argon2id verification
/// allocates 19 MiB, and with the default dynamic mmap threshold those blocks end up in
/// per-thread arenas that are never returned — megabytes per blocking thread. A fixed threshold
/// keeps large blocks in mmap (freed at once); few arenas keep fragmentation down.
fn bound_allocator() {
    // SAFETY: mallopt only sets allocator parameters; called before other threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 * 1024);
        libc::mallopt(libc::M_ARENA_MAX, 4);
    }
}

/// Lets the process hold as many connections as the system allows (one descriptor each).
fn raise_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid, owned struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

fn acceptor(
    cfg: &Config,
    profile: ServerProfile,
    options: ServerOptions,
) -> anyhow::Result<TlsAcceptor> {
    // The ACME certificate first: it is the default for clients without SNI.
    // (`serve` creates it first; `config check` before the first start finds none yet.)
    let acme = cfg
        .acme
        .enabled
        .then(|| {
            let f = crate::acme::files(cfg);
            (f.cert, f.cert_key)
        })
        .filter(|(cert, _)| cert.exists());
    let sources: Vec<CertificateSource> = acme
        .into_iter()
        .chain(
            cfg.tls
                .certificates
                .iter()
                .map(|c| (c.cert.clone(), c.key.clone())),
        )
        .map(|(cert, key)| CertificateSource {
            cert,
            key,
            roots: cfg.tls.trusted_roots.clone(),
        })
        .collect();
    let acceptor = TlsAcceptor::with_options(profile, options, sources).map_err(|e| match e {
        TlsError::NoCertificate => ConfigProblem(
            "tls.certificate: no certificate configured (fix: add a [[tls.certificate]] block with cert and key; see kurier.example.toml)".into(),
        )
        .into(),
        TlsError::Certificate(c) => {
            let index = cfg
                .tls
                .certificates
                .iter()
                .position(|s| certificate_error_path(&c).is_some_and(|p| p == s.cert || p == s.key))
                .map(|i| format!("[{i}]"))
                .unwrap_or_default();
            ConfigProblem(format!("tls.certificate{index}: {c}")).into()
        }
        other => anyhow::Error::new(other),
    })?;
    crate::certificates::log_certificates(&acceptor);
    Ok(acceptor)
}

fn certificate_error_path(e: &kurier_tls::CertificateError) -> Option<&Path> {
    use kurier_tls::CertificateError as E;
    match e {
        E::Read { path, .. }
        | E::NoCertificate { path }
        | E::Pem { path, .. }
        | E::Rejected { path, .. } => Some(path),
    }
}

/// `kurier config check FILE`: the file, then its certificates; prints the effective config.
pub fn check(file: &Path) -> anyhow::Result<()> {
    let cfg = kurier_config::load(file).map_err(|e| ConfigProblem(e.to_string()))?;
    logging::init(kurier_config::LogFormat::Text, "warn");
    let acme_pending = cfg.acme.enabled && !crate::acme::files(&cfg).cert.exists();
    if acme_pending && cfg.tls.certificates.is_empty() {
        eprintln!(
            "note: the ACME certificate does not exist yet; `kurier serve` makes a self-signed one and orders from {}",
            cfg.acme.directory
        );
    } else {
        strict_acceptor(&cfg)?;
    }
    print!("{}", cfg.to_toml());
    eprintln!("{}: OK", file.display());
    Ok(())
}

/// `kurier tls-profile`: the ICS of every TLS channel in use — each listener with the live
/// context that serves it, the outbound clients, DNSSEC and TLSRPT (TR-03108 DNS-5).
pub fn tls_profile(source: ConfigArgs, json: bool, html: bool) -> anyhow::Result<()> {
    logging::init(kurier_config::LogFormat::Text, "warn");
    let cfg = if source.dev.dev {
        dev::prepare(&source.dev)?.0
    } else {
        source.config()?
    };
    let ics = crate::ics::collect(&cfg, &strict_acceptor(&cfg)?, mx_acceptor(&cfg)?.as_ref())?;
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&ics).context("cannot encode the ICS")?
        );
    } else if html {
        print!("{}", ics.to_html());
    } else {
        print!("{}", ics.to_text());
    }
    Ok(())
}
