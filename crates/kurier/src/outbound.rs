//! Wiring of outbound delivery: the resolver from `[dns]`, the TLS client, the queue runner from
//! `[delivery]`, and the start-up DNSSEC probe (ARCHITECTURE: "DNSSEC is proven before it is
//! trusted" — until the root's keys validate, the runner does not start and mail stays queued).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use kurier_config::{Config, DnssecMode};
use kurier_delivery::{DeliveryConfig, QueueRunner, Schedule};
use kurier_dns::ValidatorState;
use tokio::sync::{Notify, watch};

/// The resolver `[dns]` describes.
pub fn resolver(cfg: &Config) -> anyhow::Result<kurier_dns::Resolver> {
    let mut upstream: Vec<SocketAddr> = cfg.dns.upstream.iter().map(|a| a.0).collect();
    if upstream.is_empty() {
        upstream = system_nameservers();
    }
    kurier_dns::Resolver::new(&kurier_dns::DnsConfig {
        mode: match cfg.dns.dnssec {
            DnssecMode::Validate => kurier_dns::DnssecMode::Validate,
            DnssecMode::TrustAd => kurier_dns::DnssecMode::TrustAd,
            DnssecMode::Off => kurier_dns::DnssecMode::Off,
        },
        upstream,
        trust_anchor: cfg.dns.trust_anchor.clone(),
        trust_anchor_updates: cfg.dns.trust_anchor_updates,
        timeout: Duration::from_secs(cfg.dns.timeout_secs),
        probe: kurier_dns::ProbeNames {
            secure: cfg.dns.probe_secure.clone(),
            bogus: cfg.dns.probe_bogus.clone(),
        },
    })
    .context("[dns]")
}

/// The nameservers of /etc/resolv.conf (127.0.0.1 if it names none).
fn system_nameservers() -> Vec<SocketAddr> {
    let text = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let found: Vec<SocketAddr> = text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("nameserver"))
        .filter_map(|ip| ip.trim().parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if found.is_empty() {
        vec![SocketAddr::from(([127, 0, 0, 1], 53))]
    } else {
        found
    }
}

pub fn runner(
    cfg: &Config,
    resolver: kurier_dns::Resolver,
    store: Arc<dyn kurier_store::Store>,
    wake: Arc<Notify>,
    validator: watch::Receiver<ValidatorState>,
) -> anyhow::Result<Arc<QueueRunner>> {
    let d = &cfg.delivery;
    let tls = kurier_tls::ClientTls::new(d.extra_ca_file.as_deref())
        .context("the outbound TLS client (delivery.extra_ca_file)")?;
    let delivery = DeliveryConfig {
        schedule: Schedule {
            retry_min: Duration::from_secs(d.retry_min_secs),
            retry_max: Duration::from_secs(d.retry_max_secs),
            lifetime: Duration::from_secs(d.lifetime_secs),
            delay_warning: Duration::from_secs(d.delay_warning_secs),
        },
        port: d.port,
        timeout: Duration::from_secs(d.timeout_secs),
        data_timeout: Duration::from_secs(d.data_timeout_secs),
        max_connections: d.max_connections as usize,
        max_per_domain: d.max_per_domain as usize,
        source: kurier_delivery::attempt::SourceAddresses {
            v4: d.source_ipv4,
            v6: d.source_ipv6,
        },
        ..DeliveryConfig::new(&cfg.server.hostname)
    };
    // A source address this machine does not have fails every attempt: say so at start.
    for (key, ip) in [
        (
            "delivery.source_ipv4",
            d.source_ipv4.map(std::net::IpAddr::V4),
        ),
        (
            "delivery.source_ipv6",
            d.source_ipv6.map(std::net::IpAddr::V6),
        ),
    ] {
        if let Some(ip) = ip {
            std::net::UdpSocket::bind(SocketAddr::new(ip, 0)).with_context(|| {
                format!("{key} = \"{ip}\": not an address of this machine (fix: name one of its addresses, or leave it unset)")
            })?;
        }
    }
    Ok(QueueRunner::new(
        store, resolver, tls, delivery, wake, validator,
    ))
}

/// The DNSSEC probe, at start and every `dns.probe_interval_secs` (ARCHITECTURE: "DNSSEC is
/// proven before it is trusted"): its verdict gates outbound delivery and shows on `/metrics`;
/// its first pass logs which validator works from which anchor. Mode `off` has nothing to
/// prove and says so.
pub fn validator(
    cfg: &Config,
    resolver: &kurier_dns::Resolver,
    stop: watch::Receiver<bool>,
) -> watch::Receiver<ValidatorState> {
    if cfg.dns.dnssec == DnssecMode::Off {
        tracing::warn!(
            "dns.dnssec = \"off\": DANE is disabled and outbound delivery is NOT TR-03108 compliant"
        );
        return watch::channel(ValidatorState::Working("DNSSEC is off".into())).1;
    }
    let (tx, rx) = watch::channel(ValidatorState::Unknown);
    tokio::spawn(kurier_dns::watch_validator(
        resolver.clone(),
        Duration::from_secs(cfg.dns.probe_interval_secs),
        tx,
        stop,
    ));
    rx
}

/// Our reporting domain: `tlsrpt.submitter`, else the domain of `server.hostname`.
pub fn report_submitter(cfg: &Config) -> String {
    cfg.tlsrpt.submitter.clone().unwrap_or_else(|| {
        cfg.server
            .hostname
            .split_once('.')
            .map(|(_, d)| d.to_string())
            .unwrap_or_else(|| cfg.server.hostname.clone())
    })
}

/// Who we are in reports (`[tlsrpt]`: organization, contact, submitter domain) and the DKIM
/// key of the submitter domain that signs them.
async fn report_identity(
    cfg: &Config,
    store: &dyn kurier_store::Store,
) -> anyhow::Result<(
    kurier_delivery::report::ReporterConfig,
    Option<kurier_dkim::DkimKey>,
)> {
    let submitter = report_submitter(cfg);
    let t = &cfg.tlsrpt;
    let dkim = crate::admin::dkim_key(store, &cfg.server.data_dir, &submitter).await?;
    let report_cfg = kurier_delivery::report::ReporterConfig {
        organization: report_organization(cfg),
        contact: t
            .contact
            .clone()
            .unwrap_or_else(|| format!("mailto:postmaster@{submitter}")),
        from: t
            .from
            .clone()
            .unwrap_or_else(|| format!("tlsrpt-noreply@{submitter}")),
        dmarc_from: format!("dmarc-noreply@{submitter}"),
        submitter,
        hostname: cfg.server.hostname.clone(),
    };
    Ok((report_cfg, dkim))
}

/// The TLSRPT reporter `[tlsrpt]` describes, signing with the submitter domain's DKIM key.
/// `in_server`: failed HTTPS uploads are retried in the background.
pub async fn reporter(
    cfg: &Config,
    resolver: kurier_dns::Resolver,
    store: Arc<dyn kurier_store::Store>,
    wake: Arc<Notify>,
    in_server: bool,
) -> anyhow::Result<kurier_delivery::report::Reporter> {
    let (report_cfg, dkim) = report_identity(cfg, &*store).await?;
    let tls = kurier_tls::ClientTls::new(cfg.delivery.extra_ca_file.as_deref())?;
    Ok(kurier_delivery::report::Reporter::new(
        store, resolver, tls, dkim, report_cfg, wake, in_server,
    ))
}

/// The DMARC aggregate reporter (`sender_auth.send_reports`), with the same identity and key.
pub async fn dmarc_reporter(
    cfg: &Config,
    resolver: kurier_dns::Resolver,
    store: Arc<dyn kurier_store::Store>,
    wake: Arc<Notify>,
    psl: kurier_mailauth::psl::SharedPsl,
) -> anyhow::Result<kurier_delivery::dmarc_report::DmarcReporter> {
    let (report_cfg, dkim) = report_identity(cfg, &*store).await?;
    Ok(kurier_delivery::dmarc_report::DmarcReporter::new(
        store, resolver, psl, dkim, report_cfg, wake,
    ))
}

/// One kind of daily report.
pub enum DailyReporter {
    Tlsrpt(kurier_delivery::report::Reporter),
    Dmarc(kurier_delivery::dmarc_report::DmarcReporter),
}

impl DailyReporter {
    async fn send_day(&self, day: i64) -> kurier_delivery::report::DayRun {
        match self {
            DailyReporter::Tlsrpt(r) => r.send_day(day).await,
            DailyReporter::Dmarc(r) => r.send_day(day).await,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            DailyReporter::Tlsrpt(_) => "TLSRPT",
            DailyReporter::Dmarc(_) => "DMARC",
        }
    }
}

/// Sends the reports of each past UTC day, shortly after midnight (a random delay up to
/// `max_delay` spreads the load on the receivers, RFC 8460 §5.1), then forgets the events
/// older than `kurier_delivery::report::EVENT_RETENTION_DAYS`.
pub async fn daily_reports(
    reporters: Vec<DailyReporter>,
    store: Arc<dyn kurier_store::Store>,
    max_delay: Duration,
    mut stop: watch::Receiver<bool>,
) {
    // Yesterday's reports, in case a restart missed their time: each domain's report is
    // claimed in the store, so what went out already is not sent again.
    let yesterday = (kurier_store::now() / 86_400 - 1) * 86_400;
    for r in &reporters {
        let run = r.send_day(yesterday).await;
        if !run.sent.is_empty() {
            tracing::info!(
                kind = r.kind(),
                sent = run.sent.len(),
                "reports of yesterday, sent late"
            );
        }
    }
    loop {
        let now = kurier_store::now();
        let next_midnight = (now / 86_400 + 1) * 86_400;
        let jitter = random_below(max_delay.as_secs().max(1));
        let wait = u64::try_from(next_midnight - now).unwrap_or(0) + jitter;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(wait)) => {}
            _ = stop.changed() => return,
        }
        let day = next_midnight - 86_400;
        for r in &reporters {
            let run = r.send_day(day).await;
            tracing::info!(
                kind = r.kind(),
                sent = run.sent.len(),
                skipped = run.skipped.len(),
                "reports of the day"
            );
        }
        let before = day - kurier_delivery::report::EVENT_RETENTION_DAYS * 86_400;
        match store.prune_report_events(before).await {
            Ok(n) => tracing::debug!(pruned = n, "old TLS and DMARC events forgotten"),
            Err(e) => tracing::warn!(error = %e, "old TLS and DMARC events could not be pruned"),
        }
    }
}

fn random_below(n: u64) -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now()) % n
}

/// TLSRPT's `organization-name` (the ICS names the same, RPT-11).
pub fn report_organization(cfg: &Config) -> String {
    cfg.tlsrpt
        .organization
        .clone()
        .unwrap_or_else(|| cfg.server.hostname.clone())
}
