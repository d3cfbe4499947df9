//! `kurier reports`: TLSRPT (RFC 8460) from the command line — send the reports of a day now
//! (the server does so daily by itself), and sum up the reports others sent us (TR-03108 RPT-3).

use std::collections::BTreeMap;

use anyhow::{Context, bail};
use kurier_policy::tlsrpt::parse_report;
use kurier_smtp::received::UtcTime;

use crate::ConfigArgs;

#[derive(clap::Subcommand)]
pub enum ReportsCommand {
    /// Send our reports for one UTC day now (default: yesterday); the server delivers them.
    Send {
        /// The day, YYYY-MM-DD.
        #[arg(long)]
        day: Option<String>,
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
        ReportsCommand::Send { day } => {
            let start = match day {
                Some(d) => parse_day(&d)?,
                None => (kurier_store::now() / 86_400 - 1) * 86_400,
            };
            let wake = std::sync::Arc::new(tokio::sync::Notify::new());
            let resolver = crate::outbound::resolver(&cfg)?;
            let reporter = crate::outbound::reporter(&cfg, resolver, store, wake, false).await?;
            let run = reporter.send_day(start).await;
            for s in &run.sent {
                println!("sent      {s}");
            }
            for (d, why) in &run.skipped {
                println!("no report {d}: {why}");
            }
            if run.sent.is_empty() && run.skipped.is_empty() {
                println!(
                    "no TLS sessions on {}",
                    &UtcTime::from_unix(start).rfc3339()[..10]
                );
            }
        }
        ReportsCommand::List {
            domain,
            since,
            json,
        } => {
            let from = kurier_store::now() - i64::from(since) * 86_400;
            // (domain, reporter) → (reports, successful, failed, result type → sessions)
            type Row = (u64, u64, u64, BTreeMap<String, u64>);
            let mut rows: BTreeMap<(String, String), Row> = BTreeMap::new();
            for r in store.reports().await.context("reading the reports")? {
                if r.received < from {
                    continue;
                }
                let Ok(report) = parse_report(&r.json) else {
                    continue;
                };
                for p in report.policies {
                    if domain
                        .as_deref()
                        .is_some_and(|d| !d.eq_ignore_ascii_case(&p.policy_domain))
                    {
                        continue;
                    }
                    let row = rows
                        .entry((p.policy_domain.clone(), report.organization.clone()))
                        .or_default();
                    row.0 += 1;
                    row.1 += p.successful;
                    row.2 += p.failed;
                    for (kind, n) in p.failures {
                        *row.3.entry(kind).or_default() += n;
                    }
                }
            }
            if json {
                let list: Vec<serde_json::Value> = rows
                    .iter()
                    .map(|((d, org), (n, ok, failed, kinds))| {
                        serde_json::json!({
                            "policy-domain": d, "reporter": org, "reports": n,
                            "successful": ok, "failed": failed, "failures": kinds,
                        })
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
                return Ok(());
            }
            if rows.is_empty() {
                println!("no reports in the last {since} days");
            }
            for ((d, org), (n, ok, failed, kinds)) in rows {
                let flag = if failed > 0 { "  FAILURES" } else { "" };
                println!(
                    "{d}  from {org}: {n} report(s), {ok} successful, {failed} failed sessions{flag}"
                );
                for (kind, k) in kinds {
                    println!("    {kind}: {k}");
                }
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
