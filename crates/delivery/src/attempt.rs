//! One delivery attempt to one destination domain: its messages over as few connections as
//! possible, host after host in MX order, each connection secured as the host's DANE policy
//! demands (RFC 7672 §2.2; TR-03108 SMTP-2, DANE-8, DANE-9, DANE-12):
//!
//! - `Authenticate`: STARTTLS is mandatory and OpenSSL's DANE verifier must accept the chain;
//!   otherwise the host is given up for this attempt and nothing is sent;
//! - `TlsRequired`: STARTTLS mandatory, no authentication;
//! - `Opportunistic`: STARTTLS whenever offered; a failed handshake is retried in clear on a
//!   new connection (best effort, as Postfix's `may`);
//! - `Skip`: the TLSA answer could not be trusted: not this host, never in clear.

use std::net::SocketAddr;
use std::time::Duration;

use kurier_policy::dane::DanePolicy;
use kurier_smtp::client::Envelope;
use kurier_smtp::{ClientError, SmtpClient};
use kurier_tls::{ClientTls, DaneRecord, PeerCheck, PeerVerdict};

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
}

/// A TLS outcome, for TLSRPT (RFC 8460 §4) and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsOutcome {
    pub mx_host: String,
    pub ip: Option<String>,
    /// `tlsa` or `no-policy-found` (RFC 8460 §4.3 policy types).
    pub policy_type: &'static str,
    /// The TLSA records as presentation strings, for `tlsa` policies.
    pub policy_strings: Vec<String>,
    /// `None`: TLS was established (and verified where required).
    pub failure: Option<&'static str>,
}

/// What an attempt produced: per item, per recipient, the outcome; and the TLS outcomes seen.
#[derive(Debug, Default)]
pub struct AttemptReport {
    pub outcomes: Vec<Vec<(String, Outcome)>>,
    pub tls: Vec<TlsOutcome>,
}

/// Delivers `items` along `route`. Never sends in clear where the policy forbids it.
pub async fn deliver(
    conn: &Connector,
    domain: &str,
    route: &Route,
    items: &[Item],
) -> AttemptReport {
    let mut report = AttemptReport {
        outcomes: vec![Vec::new(); items.len()],
        tls: Vec::new(),
    };
    let everyone = |report: &mut AttemptReport, pending: &[usize], f: &Failure| {
        for &i in pending {
            report.outcomes[i] = items[i]
                .envelope
                .recipients
                .iter()
                .map(|(a, _)| (a.clone(), Outcome::from_failure(f.clone())))
                .collect();
        }
    };
    let all: Vec<usize> = (0..items.len()).collect();
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
            return route_failure(report, items, domain, Failure::new(status, reason.clone()));
        }
    };

    let mut pending = all;
    let mut last = Failure::new(
        "4.4.1",
        format!("No mail server of {domain} could be reached."),
    );
    'hosts: for hop in hops {
        if let DanePolicy::Skip(why) = &hop.dane {
            last = Failure::new(
                "4.7.5",
                format!(
                    "The security records (TLSA) of the mail server {} failed their DNSSEC check, so it cannot be told from a forged one; nothing was sent to it. ({why})",
                    hop.host
                ),
            );
            report
                .tls
                .push(tls_outcome(hop, None, Some("dnssec-invalid")));
            tracing::info!(domain = %domain, mx = %hop.host, dane = "bogus", result = "skipped", reason = %why, "delivery attempt");
            continue;
        }
        for ip in &hop.addresses {
            if pending.is_empty() {
                break 'hosts;
            }
            let addr = SocketAddr::new(*ip, conn.port);
            let mut client = match open(conn, hop, addr, &mut report).await {
                Ok(c) => c,
                Err(f) => {
                    tracing::info!(domain = %domain, mx = %hop.host, %ip, dane = dane_word(&hop.dane), result = "deferred", reason = %f.summary(), "delivery attempt");
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
            let authenticated = matches!(
                client.tls(),
                Some((_, PeerVerdict::Dane { .. } | PeerVerdict::Pkix))
            );
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
                            "The sender required verified encryption (REQUIRETLS), and the mail server {} of {domain} cannot be verified: the domain publishes neither DANE nor MTA-STS.",
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
                        tracing::info!(domain = %domain, mx = %hop.host, %ip, tls = %tls_version, %cipher, dane = dane_word(&hop.dane), verified, result = %word, "delivery attempt");
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
    everyone(&mut report, &pending, &last);
    report
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

/// Connects to one address of `hop` and secures the connection as its policy demands.
async fn open(
    conn: &Connector,
    hop: &Hop,
    addr: SocketAddr,
    report: &mut AttemptReport,
) -> Result<SmtpClient, Failure> {
    let connect = || SmtpClient::connect(addr, &conn.helo, conn.timeout, conn.data_timeout);
    let client = connect().await.map_err(|e| connect_failure(hop, &e))?;
    let ip = Some(addr.ip().to_string());
    let (check, required) = match &hop.dane {
        DanePolicy::Authenticate { records, names } => (
            PeerCheck::Dane {
                base: hop.base.clone(),
                names: names.clone(),
                records: records
                    .iter()
                    .map(|t| DaneRecord {
                        usage: t.usage,
                        selector: t.selector,
                        matching: t.matching,
                        data: t.data.clone(),
                    })
                    .collect(),
            },
            true,
        ),
        DanePolicy::TlsRequired => (PeerCheck::None, true),
        DanePolicy::Opportunistic => (PeerCheck::None, false),
        DanePolicy::Skip(why) => {
            client.quit().await;
            return Err(Failure::new("4.7.5", why.clone()));
        }
    };
    if !client.extensions().starttls {
        if required {
            report
                .tls
                .push(tls_outcome(hop, ip, Some("starttls-not-supported")));
            client.quit().await;
            return Err(Failure {
                remote_mta: Some(hop.host.clone()),
                ..Failure::new(
                    "4.7.5",
                    format!(
                        "The owner of the mail server {} requires encrypted delivery (DANE), but the server did not offer encryption (STARTTLS) — possibly because someone on the way removed it. The message was not sent unprotected.",
                        hop.host
                    ),
                )
            });
        }
        report
            .tls
            .push(tls_outcome(hop, ip, Some("starttls-not-supported")));
        return Ok(client);
    }
    match client.starttls(&conn.tls, &hop.base, &check).await {
        Ok(c) => {
            report.tls.push(tls_outcome(hop, ip, None));
            Ok(c)
        }
        Err(ClientError::Tls {
            verdict, detail, ..
        }) => {
            let result_type = match &verdict {
                PeerVerdict::Failed { result_type, .. } => *result_type,
                _ => "validation-failure",
            };
            report.tls.push(tls_outcome(hop, ip, Some(result_type)));
            if required {
                let reason = if matches!(hop.dane, DanePolicy::Authenticate { .. }) {
                    format!(
                        "The receiving server {}'s certificate does not match the DANE record its owner published in DNSSEC-signed DNS, so the message was not sent unprotected or to a possibly false server ({detail}).",
                        hop.host
                    )
                } else {
                    format!(
                        "The owner of the mail server {} requires encrypted delivery (DANE), and no encrypted connection could be made ({detail}). The message was not sent unprotected.",
                        hop.host
                    )
                };
                return Err(Failure {
                    remote_mta: Some(hop.host.clone()),
                    ..Failure::new("4.7.5", reason)
                });
            }
            // Best effort (TR-03108: opportunistic TLS): a peer whose TLS is broken still gets
            // the mail, in clear, as Postfix does at security level `may`.
            tracing::warn!(mx = %hop.host, %addr, error = %detail, "STARTTLS failed; delivering without TLS (no DANE or MTA-STS policy requires it)");
            connect().await.map_err(|e| connect_failure(hop, &e))
        }
        Err(e) => Err(connect_failure(hop, &e)),
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

fn tls_outcome(hop: &Hop, ip: Option<String>, failure: Option<&'static str>) -> TlsOutcome {
    let (policy_type, policy_strings) = match &hop.dane {
        DanePolicy::Authenticate { records, .. } => (
            "tlsa",
            records
                .iter()
                .map(|t| {
                    let hex: String = t.data.iter().map(|b| format!("{b:02x}")).collect();
                    format!("{} {} {} {hex}", t.usage, t.selector, t.matching)
                })
                .collect(),
        ),
        DanePolicy::TlsRequired => ("tlsa", Vec::new()),
        _ => ("no-policy-found", Vec::new()),
    };
    TlsOutcome {
        mx_host: hop.host.clone(),
        ip,
        policy_type,
        policy_strings,
        failure,
    }
}

fn dane_word(p: &DanePolicy) -> &'static str {
    match p {
        DanePolicy::Opportunistic => "none",
        DanePolicy::TlsRequired => "tls-required",
        DanePolicy::Authenticate { .. } => "required",
        DanePolicy::Skip(_) => "bogus",
    }
}

fn verdict_word(v: &PeerVerdict) -> &'static str {
    match v {
        PeerVerdict::NotChecked => "no",
        PeerVerdict::Dane { usage: 2, .. } => "dane-ta",
        PeerVerdict::Dane { .. } => "dane-ee",
        PeerVerdict::Pkix => "pkix",
        PeerVerdict::Failed { .. } => "failed",
    }
}
