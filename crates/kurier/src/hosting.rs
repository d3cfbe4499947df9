//! What Kurier publishes about its own domains: the MTA-STS policy from `[mta_sts]` (RFC 8461
//! §3.2, TR-03108 STS-1), where mail clients connect (`[autoconfig]`), and the list of hosted
//! domains the web listener serves them for.

use std::sync::Arc;
use std::time::Duration;

use kurier_config::{Config, StsModeConfig};
use kurier_policy::sts::{StsMode, StsPolicy};
use tokio::sync::watch;

/// How often the web listener learns about domains added or removed (by the CLI, or on
/// another node).
const REFRESH: Duration = Duration::from_secs(10);

/// Our policy, or `None` if `[mta_sts]` is disabled.
pub fn sts_policy(cfg: &Config) -> Option<StsPolicy> {
    let m = &cfg.mta_sts;
    if !m.enabled {
        return None;
    }
    let mx = if m.mx.is_empty() {
        vec![cfg.server.hostname.to_ascii_lowercase()]
    } else {
        m.mx.iter().map(|p| p.to_ascii_lowercase()).collect()
    };
    Some(StsPolicy {
        mode: match m.mode {
            StsModeConfig::Enforce => StsMode::Enforce,
            StsModeConfig::Testing => StsMode::Testing,
            StsModeConfig::None => StsMode::None,
        },
        mx,
        max_age: m.max_age_secs,
    })
}

/// Keeps `site`'s domain list in step with the store until `stop`.
pub async fn refresh_domains(
    store: Arc<dyn kurier_store::Store>,
    site: Arc<kurier_web::Site>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        match store.domains().await {
            Ok(d) => site.set_domains(d.into_iter().map(|d| d.name).collect()),
            Err(e) => tracing::warn!(error = %e, "cannot read the hosted domains"),
        }
        tokio::select! {
            _ = tokio::time::sleep(REFRESH) => {}
            _ = stop.changed() => return,
        }
    }
}

/// Where clients connect, from `[autoconfig]` and `[submission]`; `None` if disabled.
pub fn client_services(cfg: &Config) -> Option<kurier_web::clientconfig::ClientServices> {
    let a = &cfg.autoconfig;
    if !a.enabled {
        return None;
    }
    let port = |p: u16| (p != 0).then_some(p);
    Some(kurier_web::clientconfig::ClientServices {
        hostname: a
            .hostname
            .clone()
            .unwrap_or_else(|| cfg.server.hostname.clone()),
        imaps: port(a.imaps_port),
        pop3s: port(a.pop3s_port),
        submissions: cfg.submission.listen_implicit.first().map(|l| l.0.port()),
        imap_starttls: port(a.imap_starttls_port),
        pop3_starttls: port(a.pop3_starttls_port),
        submission_starttls: cfg.submission.listen_starttls.first().map(|l| l.0.port()),
        managesieve: cfg.managesieve.listen.first().map(|l| l.0.port()),
    })
}

/// The ports whose TLSA records `kurier dns` publishes at `server.hostname`: 25 (RFC 7672) and
/// every client service (RFC 7673) — what a certificate change must not break.
pub fn dane_ports(cfg: &Config) -> Vec<u16> {
    let mut ports = vec![25u16];
    if let Some(c) = client_services(cfg) {
        for p in [
            c.submissions,
            c.imaps,
            c.pop3s,
            c.submission_starttls,
            c.imap_starttls,
            c.pop3_starttls,
        ]
        .into_iter()
        .flatten()
        {
            if !ports.contains(&p) {
                ports.push(p);
            }
        }
    }
    ports
}
