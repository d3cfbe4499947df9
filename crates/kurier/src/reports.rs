//! `kurier reports`: TLSRPT (RFC 8460) and DMARC aggregate reports (RFC 7489 §7.2) from the
//! command line — send the reports of a day now (the server does so daily by itself), and sum
//! up the reports others sent us (TR-03108 RPT-3; for DMARC, the sources that send in our
//! name and fail alignment come first).

use anyhow::{Context, bail};
use kurier_smtp::received::UtcTime;

use crate::ConfigArgs;

#[derive(clap::Subcommand)]
pub enum ReportsCommand {
    /// Send our reports for one UTC day now (default: yesterday); the server delivers them.
    Send {
        /// The day, YYYY-MM-DD.
        #[arg(long)]
        day: Option<String>,
        /// DMARC aggregate reports instead of TLSRPT.
        #[arg(long)]
        dmarc: bool,
    },
    /// Sum up the reports we received (at tlsrpt@ each hosted domain, or at
    /// `tlsrpt.reporting_address`), per policy domain.
    List {
        /// Only reports about this domain.
        #[arg(long)]
        domain: Option<String>,
        /// Only reports received in the last DAYS days.
        #[arg(long, default_value_t = 30)]
        since: u32,
        /// JSON instead of text.
        #[arg(long)]
        json: bool,
        /// DMARC aggregate reports (at dmarc-reports@ each hosted domain, or at
        /// `sender_auth.reporting_address`) instead of TLSRPT.
        #[arg(long)]
        dmarc: bool,
    },
}

/// `2026-11-28` → the Unix time of its midnight UTC.
pub fn parse_day(day: &str) -> anyhow::Result<i64> {
    let parts: Vec<&str> = day.split('-').collect();
    let n = |s: &str| s.parse::<i64>().ok();
    let (Some(year), Some(month), Some(d)) = (
        parts.first().and_then(|s| n(s)),
        parts.get(1).and_then(|s| n(s)),
        parts.get(2).and_then(|s| n(s)),
    ) else {
        bail!("--day {day:?}: use YYYY-MM-DD");
    };
    let t = UtcTime {
        year,
        month,
        day: d,
        hour: 0,
        minute: 0,
        second: 0,
    };
    let unix = t.to_unix();
    if parts.len() != 3 || !(1..=12).contains(&month) || UtcTime::from_unix(unix).day != d {
        bail!("--day {day:?}: no such date (use YYYY-MM-DD)");
    }
    Ok(unix)
}

pub async fn run(args: ConfigArgs, cmd: ReportsCommand) -> anyhow::Result<()> {
    let cfg = args.config()?;
    let store = crate::admin::open(&args).await?;
    match cmd {
        ReportsCommand::Send { day, dmarc } => {
            let start = match day {
                Some(d) => parse_day(&d)?,
                None => (kurier_store::now() / 86_400 - 1) * 86_400,
            };
            let wake = std::sync::Arc::new(tokio::sync::Notify::new());
            let resolver = crate::outbound::resolver(&cfg)?;
            let run = if dmarc {
                let psl = crate::serve::read_public_suffixes(&cfg.sender_auth.public_suffix_list)?;
                let psl = std::sync::Arc::new(std::sync::RwLock::new(std::sync::Arc::new(psl)));
                crate::outbound::dmarc_reporter(&cfg, resolver, store, wake, psl)
                    .await?
                    .send_day(start)
                    .await
            } else {
                crate::outbound::reporter(&cfg, resolver, store, wake, false)
                    .await?
                    .send_day(start)
                    .await
            };
            for s in &run.sent {
                println!("sent      {s}");
            }
            for (d, why) in &run.skipped {
                println!("no report {d}: {why}");
            }
            if run.sent.is_empty() && run.skipped.is_empty() {
                let what = if dmarc {
                    "no mail from domains that ask for DMARC reports"
                } else {
                    "no TLS sessions"
                };
                println!("{what} on {}", &UtcTime::from_unix(start).rfc3339()[..10]);
            }
        }
        ReportsCommand::List {
            domain,
            since,
            json,
            dmarc: true,
        } => list_dmarc(&*store, domain.as_deref(), since, json).await?,
        ReportsCommand::List {
            domain,
            since,
            json,
            dmarc: false,
        } => {
            let from = kurier_store::now() - i64::from(since) * 86_400;
            let stored = store.reports().await.context("reading the reports")?;
            let fresh = stored
                .iter()
                .filter(|r| r.received >= from)
                .map(|r| r.json.as_slice());
            let rows = kurier_policy::tlsrpt::sum_reports(fresh, domain.as_deref(), false);
            if json {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|((d, org, _), t)| {
                        serde_json::json!({
                            "policy-domain": d, "reporter": org, "reports": t.reports,
                            "successful": t.successful, "failed": t.failed, "failures": t.failures,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no reports in the last {since} days");
            }
            for ((d, org, _), t) in rows {
                let (n, ok, failed) = (t.reports, t.successful, t.failed);
                let flag = if failed > 0 { "  FAILURES" } else { "" };
                println!(
                    "{d}  from {org}: {n} report(s), {ok} successful, {failed} failed sessions{flag}"
                );
                for (kind, k) in t.failures {
                    println!("    {kind}: {k}");
                }
            }
        }
    }
    Ok(())
}

/// `kurier reports list --dmarc`: per policy domain, the reports and messages, then every
/// sending source — failing ones first, most messages first.
async fn list_dmarc(
    store: &dyn kurier_store::Store,
    domain: Option<&str>,
    since: u32,
    json: bool,
) -> anyhow::Result<()> {
    let from = kurier_store::now() - i64::from(since) * 86_400;
    let stored = store.dmarc_reports().await.context("reading the reports")?;
    let rows = kurier_mailauth::aggregate::sum_feedback(
        stored
            .iter()
            .filter(|r| {
                r.received >= from
                    && domain.is_none_or(|d| d.eq_ignore_ascii_case(&r.policy_domain))
            })
            .map(|r| (r.policy_domain.as_str(), r.xml.as_slice())),
    );
    if json {
        let list: Vec<serde_json::Value> = rows
            .iter()
            .map(|(d, t)| {
                let sources: Vec<serde_json::Value> = t
                    .ordered()
                    .into_iter()
                    .map(|(ip, s)| {
                        serde_json::json!({
                            "source-ip": ip, "messages": s.messages, "failed": s.failed,
                            "reporters": s.reporters, "failures": s.seen,
                        })
                    })
                    .collect();
                serde_json::json!({
                    "policy-domain": d, "reports": t.reports, "messages": t.messages,
                    "failed": t.failed, "sources": sources,
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    if rows.is_empty() {
        println!("no DMARC reports in the last {since} days");
    }
    for (d, t) in &rows {
        let (n, messages, failed) = (t.reports, t.messages, t.failed);
        let flag = if failed > 0 { "  FAILURES" } else { "" };
        println!("{d}: {n} report(s), {messages} messages, {failed} failed DMARC{flag}");
        for (ip, s) in t.ordered() {
            let reporters: Vec<&str> = s.reporters.iter().map(String::as_str).collect();
            if s.failed > 0 {
                println!(
                    "    FAILING {ip}: {} of {} messages failed (reported by {})",
                    s.failed,
                    s.messages,
                    reporters.join(", ")
                );
                for seen in &s.seen {
                    println!("        {seen}");
                }
            } else {
                println!(
                    "    passing {ip}: {} messages (reported by {})",
                    s.messages,
                    reporters.join(", ")
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days() {
        assert_eq!(parse_day("1970-01-01").unwrap(), 0);
        assert_eq!(parse_day("2026-11-28").unwrap(), 1_795_824_000);
        for bad in [
            "2026-13-01",
            "2026-02-30",
            "yesterday",
            "2026-11",
            "2026-11-28-1",
        ] {
            assert!(parse_day(bad).is_err(), "{bad}");
        }
    }
}
