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

/// The web administration's view of a domain's DNS: the records `kurier dns` prints, each
/// looked up now through the validating resolver, and `kurier check`. The resolver is made at
/// the first look, not at start (a server whose administration nobody opens asks nothing).
pub struct AdminFacts {
    pub cfg: Arc<Config>,
    pub store: Arc<dyn kurier_store::Store>,
    resolver: std::sync::OnceLock<Result<kurier_dns::Resolver, String>>,
}

impl AdminFacts {
    pub fn new(cfg: Arc<Config>, store: Arc<dyn kurier_store::Store>) -> Self {
        AdminFacts {
            cfg,
            store,
            resolver: std::sync::OnceLock::new(),
        }
    }

    fn resolver(&self) -> Result<&kurier_dns::Resolver, String> {
        self.resolver
            .get_or_init(|| crate::outbound::resolver(&self.cfg).map_err(|e| format!("{e:#}")))
            .as_ref()
            .map_err(Clone::clone)
    }

    /// What is published for `rtype` at `name`, in presentation form.
    async fn published(
        &self,
        r: &kurier_dns::Resolver,
        rtype: &str,
        name: &str,
    ) -> Result<(Vec<String>, kurier_dns::DnssecState), kurier_dns::DnsError> {
        fn of<T>(
            a: kurier_dns::Answer<T>,
            f: impl Fn(&T) -> String,
        ) -> (Vec<String>, kurier_dns::DnssecState) {
            (a.records.iter().map(f).collect(), a.state)
        }
        Ok(match rtype {
            "MX" => of(r.mx(name).await?, |m| {
                format!("{} {}.", m.preference, m.exchange)
            }),
            "TLSA" => of(r.tlsa(name).await?, |t| {
                let hex: String = t.data.iter().map(|b| format!("{b:02x}")).collect();
                format!("{} {} {} {hex}", t.usage, t.selector, t.matching)
            }),
            "TXT" => of(r.txt(name).await?, Clone::clone),
            "SRV" => of(r.srv(name).await?, |s| {
                format!(
                    "{} {} {} {}.",
                    s.priority,
                    s.weight,
                    s.port,
                    s.target.trim_end_matches('.')
                )
            }),
            "CNAME" => {
                let a = r.canonical_name(name).await?;
                let wanted = name.trim_end_matches('.').to_ascii_lowercase();
                // No CNAME: the chain ends where it starts.
                let targets = a
                    .records
                    .iter()
                    .filter(|t| t.trim_end_matches('.') != wanted)
                    .cloned()
                    .collect();
                (targets, a.state)
            }
            "A" | "AAAA" => {
                let a = r.addresses(name).await?;
                let want_v4 = rtype == "A";
                let ips = a
                    .records
                    .iter()
                    .filter(|ip| ip.is_ipv4() == want_v4)
                    .map(ToString::to_string)
                    .collect();
                (ips, a.state)
            }
            _ => (Vec::new(), kurier_dns::DnssecState::Insecure),
        })
    }
}

#[async_trait::async_trait]
impl kurier_web::admin::records::DomainFacts for AdminFacts {
    async fn records(
        &self,
        domain: &str,
    ) -> Result<Vec<kurier_web::admin::records::RecordCheck>, String> {
        use kurier_web::admin::records::{RecordCheck, Seen, judge};
        let lines = crate::dns_records::lines(&self.cfg, &*self.store, domain)
            .await
            .map_err(|e| format!("{e:#}"))?;
        let resolver = self.resolver()?;
        let mut out = Vec::new();
        for line in lines {
            let crate::dns_records::Line::Record {
                name, rtype, value, ..
            } = line
            else {
                continue;
            };
            let (seen, dnssec) = match self.published(resolver, rtype, &name).await {
                Ok((found, state)) => (
                    judge(rtype, &value, &found),
                    match state {
                        kurier_dns::DnssecState::Secure => "secure".to_string(),
                        kurier_dns::DnssecState::Insecure => "insecure".to_string(),
                    },
                ),
                Err(e) => (Seen::Unknown(e.to_string()), "—".to_string()),
            };
            out.push(RecordCheck {
                name,
                rtype: rtype.to_string(),
                value,
                seen,
                dnssec,
            });
        }
        Ok(out)
    }

    async fn check(
        &self,
        domain: &str,
    ) -> Result<Vec<kurier_web::admin::records::CheckLine>, String> {
        let selectors = self
            .store
            .domain_settings(domain)
            .await
            .ok()
            .and_then(|s| s.get(kurier_accept::DKIM_SELECTOR_SETTING).cloned())
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default();
        let checker = crate::checker(&self.cfg, selectors).map_err(|e| format!("{e:#}"))?;
        let audit = checker.check(domain).await;
        Ok(audit
            .findings
            .into_iter()
            .map(|f| kurier_web::admin::records::CheckLine {
                id: f.id.to_string(),
                status: f.status.word().to_string(),
                subject: f.subject,
                evidence: f.evidence,
                fix: f.fix,
            })
            .collect())
    }
}

/// The running server as the web administration's dashboard shows it.
pub struct Dashboard {
    pub metrics: Arc<crate::metrics::Metrics>,
    pub listeners: Vec<(String, String)>,
}

impl Dashboard {
    /// The listeners `cfg` names.
    pub fn new(cfg: &Config, metrics: Arc<crate::metrics::Metrics>) -> Self {
        let mut listeners = Vec::new();
        let mut add = |what: &str, list: &[kurier_config::ListenAddr]| {
            for a in list {
                listeners.push((what.to_string(), a.0.to_string()));
            }
        };
        add("SMTP (MX)", &cfg.smtp.listen);
        add("submission (implicit TLS)", &cfg.submission.listen_implicit);
        add("submission (STARTTLS)", &cfg.submission.listen_starttls);
        add("IMAP (implicit TLS)", &cfg.imap.listen_implicit);
        add("IMAP (STARTTLS)", &cfg.imap.listen_starttls);
        add("POP3 (implicit TLS)", &cfg.pop3.listen_implicit);
        add("POP3 (STLS)", &cfg.pop3.listen_starttls);
        add("ManageSieve", &cfg.managesieve.listen);
        add("HTTPS", &cfg.web.listen);
        add("HTTP (redirects only)", &cfg.web.listen_http);
        Dashboard { metrics, listeners }
    }
}

impl kurier_web::admin::ServerFacts for Dashboard {
    fn listeners(&self) -> Vec<(String, String)> {
        self.listeners.clone()
    }

    fn certificates(&self) -> Vec<(String, i64)> {
        self.metrics.certificate_expiries()
    }

    fn validator(&self) -> (bool, String) {
        match self.metrics.validator_state() {
            Some(kurier_dns::ValidatorState::Working(proof)) => (true, proof),
            Some(kurier_dns::ValidatorState::Failing(why)) => (false, why),
            Some(kurier_dns::ValidatorState::Unknown) => (false, "not probed yet".into()),
            None => (false, "not watched: outbound delivery is off".into()),
        }
    }

    fn dane(&self) -> Option<bool> {
        match self
            .metrics
            .tlsa_match
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }
}
