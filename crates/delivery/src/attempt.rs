//! One delivery attempt to one destination domain: its messages over as few connections as
//! possible, host after host in MX order, each connection secured as the host's DANE policy
//! demands (RFC 7672 §2.2; TR-03108 SMTP-2, DANE-8, DANE-9, DANE-12):
//!
//! - `Authenticate`: STARTTLS is mandatory and OpenSSL's DANE verifier must accept the chain;
//!   otherwise the host is given up for this attempt and nothing is sent;
//! - `TlsRequired`: STARTTLS mandatory, no authentication;
//! - `Opportunistic`: STARTTLS whenever offered; a failed handshake is retried on a new
//!   connection with the legacy client profile, and if that fails too, in clear (best effort,
//!   as Postfix's `may`, with TR-03116-4's legacy parameters at the lowest priority);
//! - `Skip`: the TLSA answer could not be trusted: not this host, never in clear.

use std::net::SocketAddr;
use std::time::Duration;

use kurier_policy::dane::DanePolicy;
use kurier_policy::protection::Protection;
use kurier_policy::sts::{StsPolicy, StsRequirement};
use kurier_policy::tlsrpt::{PolicyType, TlsOutcome};
use kurier_smtp::client::Envelope;
use kurier_smtp::{ClientError, SmtpClient};
use kurier_tls::{ClientTls, DaneRecord, PeerCheck, PeerVerdict, ResultType};

use crate::revocation::RevocationChecker;
use crate::route::{Hop, Route};
use crate::{Failure, Outcome};

/// A message (or the part of it going to this domain) to deliver.
#[derive(Debug, Clone)]
pub struct Item {
    pub envelope: Envelope,
    pub body: std::sync::Arc<Vec<u8>>,
}

/// Connection settings.
#[derive(Clone)]
pub struct Connector {
    pub tls: ClientTls,
    /// Our name in EHLO.
    pub helo: String,
    pub port: u16,
    pub timeout: Duration,
    pub data_timeout: Duration,
    /// Revocation checks of PKIX-verified peers (MTA-STS), if wanted.
    pub revocation: Option<std::sync::Arc<RevocationChecker>>,
    /// Our source addresses (TLSRPT's sending-mta-ip and SPF depend on them); `None`: the
    /// system's choice.
    pub source: SourceAddresses,
}

/// The local addresses outbound connections are made from, per family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourceAddresses {
    pub v4: Option<std::net::Ipv4Addr>,
    pub v6: Option<std::net::Ipv6Addr>,
}

impl SourceAddresses {
    /// The source for a connection to `to`.
    pub fn for_peer(&self, to: std::net::IpAddr) -> Option<std::net::IpAddr> {
        match to {
            std::net::IpAddr::V4(_) => self.v4.map(std::net::IpAddr::V4),
            std::net::IpAddr::V6(_) => self.v6.map(std::net::IpAddr::V6),
        }
    }
}

/// What an attempt produced: per item, per recipient, the outcome; and the TLS outcomes seen.
#[derive(Debug, Default)]
pub struct AttemptReport {
    pub outcomes: Vec<Vec<(String, Outcome)>>,
    pub tls: Vec<TlsOutcome>,
}

/// Delivers `items` along `route`, under the domain's MTA-STS policy if it has one. Never sends
/// in clear where a policy forbids it.
pub async fn deliver(
    conn: &Connector,
    domain: &str,
    route: &Route,
    sts: Option<&StsPolicy>,
    relaxed: bool,
    items: &[Item],
) -> AttemptReport {
    let mut report = AttemptReport {
        outcomes: vec![Vec::new(); items.len()],
        tls: Vec::new(),
    };
    let hops = match route {
        Route::Hops(hops) => hops,
        Route::NullMx => {
            return route_failure(
                report,
                items,
                domain,
                Failure::new(
                    "5.1.10",
                    format!(
                        "The domain {domain} has announced that it accepts no e-mail at all (null MX, RFC 7505). The address is probably wrong."
                    ),
                ),
            );
        }
        Route::NoSuchDomain => {
            return route_failure(
                report,
                items,
                domain,
                Failure::new(
                    "5.1.2",
                    format!(
                        "The domain {domain} does not exist. Please check the address for typing errors."
                    ),
                ),
            );
        }
        Route::Defer { status, reason } => {
            if *status == "4.7.5" {
                // A bogus MX RRset: DANE could not even begin (RFC 8460 §4.3.2.1).
                dnssec_invalid(&mut report, domain, "", reason);
            }
            return route_failure(report, items, domain, Failure::new(status, reason.clone()));
        }
    };

    let mut pending: Vec<usize> = (0..items.len()).collect();
    let mut last = Failure::new(
        "4.4.1",
        format!("No mail server of {domain} could be reached."),
    );
    'hosts: for hop in hops {
        if let Some((status, why)) = &hop.unreachable {
            last = Failure::new(
                status,
                format!("The mail server {} cannot be used now: {why}.", hop.host),
            );
            if *status == "4.7.5" {
                dnssec_invalid(&mut report, domain, &hop.host, why);
            }
            tracing::info!(domain = %domain, mx = %hop.host, result = "skipped", reason = %why, "delivery attempt");
            continue;
        }
        if let DanePolicy::Skip { why, .. } = &hop.dane {
            // RFC 8460 §4.3.2.1: no valid records came back, either way — also when
            // TLS-Required: No lets the message go on best effort below.
            dnssec_invalid(&mut report, domain, &hop.host, why);
        }
        if let (DanePolicy::Skip { bogus, why }, false) = (&hop.dane, relaxed) {
            last = if *bogus {
                Failure::new(
                    "4.7.5",
                    format!(
                        "The security records (TLSA) of the mail server {} failed their DNSSEC check, so it cannot be told from a forged one; nothing was sent to it. ({why})",
                        hop.host
                    ),
                )
            } else {
                // RFC 3463 X.4.3: a directory server failure, to be retried.
                Failure::new(
                    "4.4.3",
                    format!(
                        "The security records (TLSA) of the mail server {} could not be looked up just now, and without them the server cannot be told from a forged one; nothing was sent to it, delivery is retried. ({why})",
                        hop.host
                    ),
                )
            };
            tracing::info!(domain = %domain, mx = %hop.host, dane = dane_word(&hop.dane), result = "skipped", reason = %why, "delivery attempt");
            continue;
        }
        let security = if relaxed {
            Security::BestEffort
        } else {
            Security::of(hop, sts)
        };
        let policy = Reported {
            domain,
            policy: policy_of(hop, &security, sts),
        };
        if let (Security::Sts { enforce }, Some(StsRequirement::NotListed { .. })) =
            (&security, sts.map(|p| p.requirement(&hop.host)))
        {
            // RFC 8461 §4.1: an MX the policy does not list is not to be used (enforce), or
            // used and reported (testing).
            report.tls.push(TlsOutcome::before_session(
                domain,
                &hop.host,
                policy.policy.clone(),
                ResultType::ValidationFailure,
                "the MX is not listed in the MTA-STS policy".into(),
            ));
            if *enforce {
                last = Failure::new(
                    "4.7.5",
                    format!(
                        "The mail server {} is not one of the servers the MTA-STS policy of {domain} names, so nothing was sent to it.",
                        hop.host
                    ),
                );
                tracing::info!(domain = %domain, mx = %hop.host, sts = "enforce", result = "skipped", reason = "MX not in the MTA-STS policy", "delivery attempt");
                continue;
            }
        }
        for ip in &hop.addresses {
            if pending.is_empty() {
                break 'hosts;
            }
            let addr = SocketAddr::new(*ip, conn.port);
            let mut client = match open(conn, hop, &security, addr, &mut report, &policy).await {
                Ok(c) => c,
                Err(f) => {
                    tracing::info!(domain = %domain, mx = %hop.host, %ip, dane = dane_word(&hop.dane), sts = sts_word(&security), result = "deferred", reason = %f.summary(), "delivery attempt");
                    last = f;
                    continue;
                }
            };
            let (tls_version, cipher, verified) = match client.tls() {
                Some((info, verdict)) => (
                    info.version.clone(),
                    info.cipher.clone(),
                    verdict_word(verdict),
                ),
                None => ("none".into(), "none".into(), "no"),
            };
            // RFC 8689 §4.2.1: DANE, or an MTA-STS policy in enforce mode, proved the server.
            let authenticated = match client.tls() {
                Some((_, PeerVerdict::Dane { .. })) => true,
                Some((_, PeerVerdict::Pkix)) => matches!(security, Security::Sts { enforce: true }),
                _ => false,
            };
            let mut still = Vec::new();
            let mut broken = false;
            for &i in &pending {
                if broken {
                    still.push(i);
                    continue;
                }
                let item = &items[i];
                if item.envelope.require_tls && !authenticated {
                    // RFC 8689 §4.2.1: only to a server whose identity DANE or MTA-STS proved.
                    let f = Failure::new(
                        "5.7.30",
                        format!(
                            "The sender required verified encryption (REQUIRETLS), and the mail server {} of {domain} could not be verified: the domain publishes neither DANE nor an enforced MTA-STS policy.",
                            hop.host
                        ),
                    );
                    report.outcomes[i] = per_recipient(item, |_| Outcome::Failed(f.clone()));
                    continue;
                }
                match client.send(&item.envelope, &item.body).await {
                    Ok(result) => {
                        let dsn_passed_on = client.extensions().dsn;
                        let outcomes: Vec<(String, Outcome)> = result
                            .recipients
                            .iter()
                            .map(|(a, r)| {
                                let o = if !r.is_positive() {
                                    server_said(
                                        hop,
                                        r,
                                        "The receiving server did not accept this recipient.",
                                    )
                                } else {
                                    match &result.message {
                                        Some(m) if m.is_positive() => Outcome::Delivered {
                                            mx: hop.host.clone(),
                                            dsn_passed_on,
                                        },
                                        Some(m) => server_said(
                                            hop,
                                            m,
                                            "The receiving server did not accept the message.",
                                        ),
                                        None => Outcome::Deferred(Failure::new(
                                            "4.0.0",
                                            "no reply to the message",
                                        )),
                                    }
                                };
                                (a.clone(), o)
                            })
                            .collect();
                        let word = result
                            .message
                            .as_ref()
                            .map(|m| m.to_string())
                            .unwrap_or_else(|| "no recipient accepted".into());
                        tracing::info!(domain = %domain, mx = %hop.host, %ip, tls = %tls_version, %cipher, dane = dane_word(&hop.dane), sts = sts_word(&security), verified, result = %word, "delivery attempt");
                        report.outcomes[i] = outcomes;
                    }
                    Err(ClientError::Refused(r)) => {
                        let f = Failure {
                            remote_mta: Some(hop.host.clone()),
                            ..Failure::new(r.status, r.reason.clone())
                        };
                        report.outcomes[i] = per_recipient(item, |_| Outcome::Failed(f.clone()));
                    }
                    Err(ClientError::Rejected { reply, .. }) => {
                        let o =
                            server_said(hop, &reply, "The receiving server refused the sender.");
                        report.outcomes[i] = per_recipient(item, |_| o.clone());
                    }
                    Err(e) => {
                        tracing::info!(domain = %domain, mx = %hop.host, %ip, result = "deferred", error = %e, "delivery attempt");
                        last = Failure {
                            remote_mta: Some(hop.host.clone()),
                            ..Failure::new(
                                "4.4.2",
                                format!(
                                    "The connection to the mail server {} broke off: {e}",
                                    hop.host
                                ),
                            )
                        };
                        broken = true;
                        still.push(i);
                    }
                }
            }
            tracing::info!(domain = %domain, mx = %hop.host, %ip, messages = pending.len() - still.len(), "connection closed");
            if !broken {
                client.quit().await;
            }
            pending = still;
        }
    }
    for &i in &pending {
        report.outcomes[i] = per_recipient(&items[i], |_| Outcome::from_failure(last.clone()));
    }
    report
}

/// RFC 8460 §4.3.2.1 `dnssec-invalid`: no valid records came back for this host.
fn dnssec_invalid(report: &mut AttemptReport, domain: &str, host: &str, why: &str) {
    report.tls.push(TlsOutcome::before_session(
        domain,
        host,
        (PolicyType::Tlsa, Vec::new()),
        ResultType::DnssecInvalid,
        why.to_string(),
    ));
}

/// Every recipient of every item gets `f`, decided before any connection (route level).
fn route_failure(
    mut report: AttemptReport,
    items: &[Item],
    domain: &str,
    f: Failure,
) -> AttemptReport {
    let result = if f.is_permanent() {
        "failed"
    } else {
        "deferred"
    };
    tracing::info!(domain = %domain, result, reason = %f.summary(), "delivery attempt");
    for (i, item) in items.iter().enumerate() {
        report.outcomes[i] = per_recipient(item, |_| Outcome::from_failure(f.clone()));
    }
    report
}

/// What a connection to one host must achieve: DANE first (RFC 8461 §2, DANE-12: an MTA-STS
/// policy never overrides or rescues DANE), then MTA-STS, then best effort.
#[derive(Debug, Clone)]
enum Security {
    /// DANE-verified TLS (`check`), or TLS at all (`PeerCheck::None`, usable-less TLSA).
    Dane(PeerCheck),
    /// MTA-STS: PKIX-verified TLS naming the host; `enforce = false` (testing) delivers anyway.
    Sts { enforce: bool },
    /// STARTTLS when offered; clear text otherwise or when the handshake fails.
    BestEffort,
}

/// The peer check DANE asks of a hop (RFC 7672 §3): its usable records (all of them, or only
/// `only`), with the TLSA base and the names a DANE-TA certificate must carry; `None` when the
/// hop has no usable record. `kurier check` makes the same handshake delivery makes.
pub fn dane_check(hop: &Hop, only: Option<&kurier_policy::dane::Tlsa>) -> PeerCheck {
    let DanePolicy::Authenticate { records, names } = &hop.dane else {
        return PeerCheck::None;
    };
    PeerCheck::Dane {
        base: hop.base.clone(),
        names: names.clone(),
        records: records
            .iter()
            .filter(|t| only.is_none_or(|o| o == *t))
            .map(|t| DaneRecord {
                usage: t.usage,
                selector: t.selector,
                matching: t.matching,
                data: t.data.clone(),
            })
            .collect(),
    }
}

/// The peer check MTA-STS asks of a hop (RFC 8461 §4.2): a trusted chain naming the MX host.
pub fn sts_check(hop: &Hop) -> PeerCheck {
    PeerCheck::Pkix {
        names: vec![hop.host.clone()],
    }
}

impl Security {
    /// The precedence itself is `kurier_policy::protection` (DANE-12); this adds what the TLS
    /// client needs to check.
    fn of(hop: &Hop, sts: Option<&StsPolicy>) -> Security {
        let requirement = sts.map(|p| p.requirement(&hop.host));
        match Protection::of(&hop.dane, requirement.as_ref()) {
            Protection::Dane => Security::Dane(dane_check(hop, None)),
            Protection::Sts { enforce } => Security::Sts { enforce },
            Protection::BestEffort => Security::BestEffort,
        }
    }

    fn check(&self, hop: &Hop) -> PeerCheck {
        match self {
            Security::Dane(c) => c.clone(),
            Security::Sts { .. } => sts_check(hop),
            Security::BestEffort => PeerCheck::None,
        }
    }

    fn protection(&self) -> Protection {
        match self {
            Security::Dane(_) => Protection::Dane,
            Security::Sts { enforce } => Protection::Sts { enforce: *enforce },
            Security::BestEffort => Protection::BestEffort,
        }
    }

    /// No delivery without TLS that passed the check.
    fn required(&self) -> bool {
        self.protection().required()
    }

    fn policy_word(&self) -> &'static str {
        self.protection().word()
    }
}

/// Connects to one address of `hop` and secures the connection as `security` demands.
async fn open(
    conn: &Connector,
    hop: &Hop,
    security: &Security,
    addr: SocketAddr,
    report: &mut AttemptReport,
    policy: &Reported<'_>,
) -> Result<SmtpClient, Failure> {
    let source = conn.source.for_peer(addr.ip());
    let connect =
        || SmtpClient::connect_from(addr, source, &conn.helo, conn.timeout, conn.data_timeout);
    let client = connect().await.map_err(|e| connect_failure(hop, &e))?;
    let ip = Some(addr.ip().to_string());
    let sending_ip = client.local().map(|a| a.ip().to_string());
    let receiving_helo = Some(client.greeting_name().to_string()).filter(|h| !h.is_empty());
    let mut outcome = |failure: Option<ResultType>, detail: Option<String>| {
        report.tls.push(TlsOutcome {
            policy_domain: policy.domain.to_string(),
            mx_host: hop.host.clone(),
            receiving_ip: ip.clone(),
            policy_type: policy.policy.0,
            policy_strings: policy.policy.1.clone(),
            failure,
            sending_ip: sending_ip.clone(),
            receiving_helo: receiving_helo.clone(),
            detail,
        })
    };
    let refuse = |what: String| Failure {
        remote_mta: Some(hop.host.clone()),
        ..Failure::new("4.7.5", what)
    };
    if !client.extensions().starttls {
        outcome(
            Some(ResultType::StarttlsNotSupported),
            Some("the server did not offer STARTTLS".into()),
        );
        if security.required() {
            client.quit().await;
            // RFC 3463 X.7.4 "security features not supported", as Postfix says it.
            return Err(Failure {
                status: "4.7.4".into(),
                ..refuse(format!(
                    "The owner of the mail server {} requires encrypted delivery ({}), but the server did not offer encryption (STARTTLS) — possibly because someone on the way removed it. The message was not sent unprotected.",
                    hop.host,
                    security.policy_word()
                ))
            });
        }
        return Ok(client);
    }
    let (certificate_failed, detail) = match client
        .starttls(&conn.tls, &hop.base, &security.check(hop))
        .await
    {
        Ok(c) => {
            // CERT-4: a PKIX-verified peer must not be revoked.
            let revoked = match (security, &conn.revocation) {
                (Security::Sts { .. }, Some(r)) => r.check(c.peer_chain()).await.err(),
                _ => None,
            };
            let Some(why) = revoked else {
                outcome(None, None);
                return Ok(c);
            };
            outcome(Some(ResultType::ValidationFailure), Some(why.clone()));
            if security.required() {
                c.quit().await;
                return Err(refuse(format!(
                    "The domain's MTA-STS policy requires a valid certificate for {}, and {why}. The message was not sent.",
                    hop.host
                )));
            }
            tracing::warn!(mx = %hop.host, %addr, reason = %why, "MTA-STS (testing): revoked certificate; delivering anyway");
            return Ok(c);
        }
        Err(e @ ClientError::Tls { .. }) => {
            let (result_type, detail) = tls_failure(&e);
            outcome(Some(result_type), Some(detail.clone()));
            let certificate_failed =
                matches!(&e, ClientError::Tls { verdict, .. } if verdict.certificate_failed());
            (certificate_failed, detail)
        }
        Err(e) => {
            // After STARTTLS everything is TLS negotiation: a stalled handshake, data after
            // the 220 (RFC 3207 §5), a lost connection are outcomes to report too.
            let (result_type, detail) = tls_failure(&e);
            outcome(Some(result_type), Some(detail));
            return Err(connect_failure(hop, &e));
        }
    };
    // Only a certificate that arrived can fail to match (RFC 8460 §4.3.1); a handshake that
    // ended before one is a failure to negotiate, and the bounce says so.
    match security {
        Security::Dane(PeerCheck::Dane { .. }) if certificate_failed => Err(refuse(format!(
            "The receiving server {}'s certificate does not match the DANE record its owner published in DNSSEC-signed DNS, so the message was not sent unprotected or to a possibly false server ({detail}).",
            hop.host
        ))),
        Security::Dane(_) => Err(refuse(format!(
            "The owner of the mail server {} requires encrypted delivery (DANE), and no encrypted connection could be made ({detail}). The message was not sent unprotected.",
            hop.host
        ))),
        Security::Sts { enforce: true } if !certificate_failed => Err(refuse(format!(
            "The domain's MTA-STS policy requires encrypted delivery to {} with a valid certificate, and no encrypted connection could be made ({detail}). The message was not sent unprotected.",
            hop.host
        ))),
        Security::Sts { enforce: true } => Err(refuse(format!(
            "The domain's MTA-STS policy requires a valid certificate for {}, and the server's certificate failed the check ({detail}). The message was not sent to a server that could not prove its identity.",
            hop.host
        ))),
        Security::Sts { enforce: false } => {
            // Testing mode (RFC 8461 §5): the failure is reported, and the mail goes as if there
            // were no policy: encrypted without verification if the server allows, else on
            // down the best-effort ladder.
            tracing::warn!(mx = %hop.host, %addr, error = %detail, "MTA-STS (testing) check failed; delivering anyway");
            let c = connect().await.map_err(|e| connect_failure(hop, &e))?;
            if !c.extensions().starttls {
                return Ok(c);
            }
            match c.starttls(&conn.tls, &hop.base, &PeerCheck::None).await {
                Ok(c) => Ok(c),
                Err(_) => legacy_then_clear(conn, hop, addr, &connect, &mut outcome).await,
            }
        }
        Security::BestEffort => legacy_then_clear(conn, hop, addr, &connect, &mut outcome).await,
    }
}

/// The rest of best effort after the strict profile failed (TR-03108: TLS wherever possible;
/// TR-03116-4 allows legacy parameters at the lowest priority): a new connection with the
/// legacy client profile, then one in clear text, as Postfix does at security level `may`.
/// Only for destinations no DANE or MTA-STS (enforce) policy protects: `open` never comes
/// here for those. Each step is logged; the legacy handshake is a TLS session for TLSRPT.
async fn legacy_then_clear<F, C>(
    conn: &Connector,
    hop: &Hop,
    addr: SocketAddr,
    connect: &C,
    outcome: &mut impl FnMut(Option<ResultType>, Option<String>),
) -> Result<SmtpClient, Failure>
where
    C: Fn() -> F,
    F: std::future::Future<Output = Result<SmtpClient, ClientError>>,
{
    tracing::warn!(mx = %hop.host, %addr, "STARTTLS with the strict profile failed; trying the legacy profile");
    let c = connect().await.map_err(|e| connect_failure(hop, &e))?;
    if c.extensions().starttls {
        match c.starttls_legacy(&conn.tls, &hop.base).await {
            Ok(c) => {
                outcome(None, None);
                if let Some((info, _)) = c.tls() {
                    tracing::info!(mx = %hop.host, %addr, tls_profile = "legacy", tls = %info.version, cipher = %info.cipher, group = info.group.as_deref().unwrap_or("none"), "STARTTLS succeeded with the legacy profile");
                }
                return Ok(c);
            }
            Err(e) => {
                let (result_type, detail) = tls_failure(&e);
                let detail = format!("legacy profile: {detail}");
                tracing::warn!(mx = %hop.host, %addr, error = %detail, "STARTTLS failed with the legacy profile too; delivering without TLS (no DANE or MTA-STS policy requires it)");
                outcome(Some(result_type), Some(detail));
            }
        }
    }
    connect().await.map_err(|e| connect_failure(hop, &e))
}

/// The RFC 8460 §4.3 result type and the words of a failed STARTTLS.
fn tls_failure(e: &ClientError) -> (ResultType, String) {
    match e {
        ClientError::Tls {
            verdict, detail, ..
        } => (
            verdict
                .result_type()
                .unwrap_or(ResultType::ValidationFailure),
            detail.clone(),
        ),
        e => (ResultType::ValidationFailure, format!("STARTTLS: {e}")),
    }
}

fn connect_failure(hop: &Hop, e: &ClientError) -> Failure {
    match e {
        ClientError::Rejected { reply, .. } => Failure {
            remote_mta: Some(hop.host.clone()),
            diagnostic: Some(reply.to_string()),
            ..Failure::new(
                &reply.status(),
                format!("The mail server {} refused the connection.", hop.host),
            )
        },
        _ => Failure {
            remote_mta: Some(hop.host.clone()),
            ..Failure::new(
                "4.4.1",
                format!("The mail server {} could not be reached: {e}", hop.host),
            )
        },
    }
}

fn server_said(hop: &Hop, reply: &kurier_smtp::client::ServerReply, what: &str) -> Outcome {
    Outcome::from_failure(Failure {
        status: reply.status(),
        reason: what.to_string(),
        remote_mta: Some(hop.host.clone()),
        diagnostic: Some(reply.to_string()),
    })
}

fn per_recipient(item: &Item, f: impl Fn(&str) -> Outcome) -> Vec<(String, Outcome)> {
    item.envelope
        .recipients
        .iter()
        .map(|(a, _)| (a.clone(), f(a)))
        .collect()
}

/// The recipient domain and the policy the TLS outcomes of one host are reported under.
struct Reported<'a> {
    domain: &'a str,
    policy: (PolicyType, Vec<String>),
}

/// The RFC 8460 §4.3 policy type and strings the TLS outcomes of `hop` are reported under.
fn policy_of(hop: &Hop, security: &Security, sts: Option<&StsPolicy>) -> (PolicyType, Vec<String>) {
    match (&hop.dane, security) {
        (DanePolicy::Authenticate { records, .. }, _) => (
            PolicyType::Tlsa,
            records
                .iter()
                .map(|t| {
                    let hex: String = t.data.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{} {} {} {hex}", t.usage, t.selector, t.matching)
                })
                .collect(),
        ),
        (DanePolicy::TlsRequired | DanePolicy::Skip { .. }, _) => (PolicyType::Tlsa, Vec::new()),
        (_, Security::Sts { .. }) => (
            PolicyType::Sts,
            sts.map(StsPolicy::report_strings).unwrap_or_default(),
        ),
        _ => (PolicyType::NoPolicyFound, Vec::new()),
    }
}

fn sts_word(s: &Security) -> &'static str {
    match s {
        Security::Sts { enforce: true } => "enforce",
        Security::Sts { enforce: false } => "testing",
        _ => "none",
    }
}

fn dane_word(p: &DanePolicy) -> &'static str {
    match p {
        DanePolicy::Opportunistic => "none",
        DanePolicy::TlsRequired => "tls-required",
        DanePolicy::Authenticate { .. } => "required",
        DanePolicy::Skip { bogus: true, .. } => "bogus",
        DanePolicy::Skip { bogus: false, .. } => "unavailable",
    }
}

fn verdict_word(v: &PeerVerdict) -> &'static str {
    match v {
        PeerVerdict::NotChecked => "no",
        PeerVerdict::Dane { usage: 2, .. } => "dane-ta",
        PeerVerdict::Dane { .. } => "dane-ee",
        PeerVerdict::Pkix => "pkix",
        PeerVerdict::Failed { .. } | PeerVerdict::NotNegotiated { .. } => "failed",
    }
}
