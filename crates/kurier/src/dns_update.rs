//! `[dns_update]`: which of the records `kurier dns` prints Kurier publishes itself, and when
//! (RFC 2136 updates signed with TSIG, RFC 8945, through `kurier_dnsupdate`).
//!
//! Published: TLSA records, only ever added here (a key change adds the next key's record
//! beside the current one and removes the old one after the switch, RFC 7671 §8.1); the
//! `_mta-sts` and `_smtp._tls` TXT records, the DKIM key record and the SRV records, each RRset
//! replaced as a whole. MX, A/AAAA, CNAME, SPF and DMARC stay the operator's: a mistake there
//! loses mail, and they rarely change. Wiring only: the messages are `kurier_dnsupdate`'s.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context;
use kurier_config::Config;
use kurier_dnsupdate::message::{by_zone, replacement};
use kurier_dnsupdate::{Change, DnsRecord, RecordData, RecordType, TsigKey, Update};
use kurier_store::Store;
use tokio::sync::watch;

use crate::dns_records::Line;

/// Every record but TLSA gets this TTL (TLSA: `dns_update.tlsa_ttl`, as `kurier dns` prints).
const TTL: u32 = 3600;
const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Publisher {
    server: SocketAddr,
    zones: Vec<String>,
    key: TsigKey,
    dry_run: bool,
    tlsa_ttl: u32,
}

/// What one pass would send, and what it leaves to the operator.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub updates: Vec<Update>,
    pub outside: Vec<String>,
}

impl Publisher {
    /// `None` when `[dns_update]` is off; the key file is read now, so that a bad one is an
    /// error at the start.
    pub fn from_config(cfg: &Config) -> anyhow::Result<Option<Publisher>> {
        let u = &cfg.dns_update;
        if !u.enabled {
            return Ok(None);
        }
        let (Some(server), Some(key_file)) = (u.server, u.key_file.as_ref()) else {
            anyhow::bail!("dns_update needs server and key_file");
        };
        let text = std::fs::read_to_string(key_file)
            .with_context(|| format!("cannot read dns_update.key_file {}", key_file.display()))?;
        let key = TsigKey::parse(&text)
            .with_context(|| format!("dns_update.key_file {}", key_file.display()))?;
        Ok(Some(Publisher {
            server,
            zones: u.zones.clone(),
            key,
            dry_run: u.dry_run,
            tlsa_ttl: u.tlsa_ttl,
        }))
    }

    /// The updates for `lines` (one per zone), and the records of ours outside every zone.
    pub fn plan(&self, lines: &[Line]) -> anyhow::Result<Plan> {
        let mut adds: Vec<DnsRecord> = Vec::new();
        let mut sets: BTreeMap<(String, &str), Vec<DnsRecord>> = BTreeMap::new();
        for line in lines {
            let Line::Record {
                name,
                ttl,
                rtype,
                value,
            } = line
            else {
                continue;
            };
            let owner = name.trim_end_matches('.').to_ascii_lowercase();
            let replaced = match *rtype {
                "TLSA" => false,
                "SRV" => true,
                "TXT" if ours_txt(&owner) => true,
                _ => continue,
            };
            let data = if *rtype == "TXT" {
                RecordData::txt(value)
            } else {
                RecordData::parse(rtype, value)?
            };
            let record = DnsRecord::new(&owner, ttl.unwrap_or(TTL), data);
            if replaced {
                sets.entry((owner, rtype)).or_default().push(record);
            } else if !adds.contains(&record) {
                adds.push(record);
            }
        }
        let mut changes: Vec<Change> = adds.into_iter().map(Change::Add).collect();
        for records in sets.into_values() {
            changes.extend(replacement(records));
        }
        let (updates, outside) = by_zone(changes, &self.zones);
        Ok(Plan {
            updates,
            outside: outside
                .iter()
                .filter_map(|c| match c {
                    Change::Add(r) => Some(r.to_string()),
                    _ => None,
                })
                .collect(),
        })
    }

    /// Sends (or, in a dry run, only prints) the updates for `lines`; a report for the operator.
    pub async fn publish(&self, lines: &[Line], dry_run: bool) -> anyhow::Result<String> {
        let plan = self.plan(lines)?;
        let mut report = String::new();
        for u in &plan.updates {
            if dry_run || self.dry_run {
                report.push_str(&u.nsupdate_text(&self.server.to_string()));
            } else {
                self.send(u).await?;
                report.push_str(&format!(
                    "{}: {} changes sent to {}\n",
                    u.zone,
                    u.changes.len(),
                    self.server
                ));
            }
        }
        if !plan.outside.is_empty() {
            report.push_str(&format!(
                "; in none of dns_update.zones ({}), publish by hand:\n",
                self.zones.join(", ")
            ));
            for r in &plan.outside {
                report.push_str(&format!("{r}\n"));
            }
        }
        Ok(report)
    }

    /// One TLSA record at `owners`, added or removed (the two halves of a key change).
    pub async fn tlsa(&self, owners: &[String], rdata: &str, add: bool) -> anyhow::Result<()> {
        let data = RecordData::parse("TLSA", rdata)?;
        let changes = owners
            .iter()
            .map(|owner| {
                let record = DnsRecord::new(owner, self.tlsa_ttl, data.clone());
                if add {
                    Change::Add(record)
                } else {
                    Change::Delete(record)
                }
            })
            .collect();
        let (updates, outside) = by_zone(changes, &self.zones);
        for c in outside {
            tracing::warn!(
                "{} is in none of dns_update.zones: {} TLSA {rdata} there by hand",
                c.owner(),
                if add { "publish" } else { "remove" }
            );
        }
        for u in &updates {
            self.send(u).await?;
        }
        Ok(())
    }

    async fn send(&self, u: &Update) -> anyhow::Result<()> {
        if self.dry_run {
            tracing::info!(
                "dns_update.dry_run: would send\n{}",
                u.nsupdate_text(&self.server.to_string())
            );
            return Ok(());
        }
        kurier_dnsupdate::send(self.server, u, &self.key, TIMEOUT)
            .await
            .with_context(|| format!("the DNS update of {} failed", u.zone))?;
        tracing::info!(zone = %u.zone, server = %self.server, changes = u.changes.len(), "DNS records published (RFC 2136)");
        Ok(())
    }
}

/// The TXT records that are Kurier's alone (RFC 8461 §3.1, RFC 8460 §3, RFC 6376 §3.6.2.1):
/// the apex TXT RRset also holds SPF and whatever else the operator put there.
fn ours_txt(owner: &str) -> bool {
    owner.starts_with("_mta-sts.")
        || owner.starts_with("_smtp._tls.")
        || owner.contains("._domainkey.")
}

/// Publishes every hosted domain's records at the start, and again whenever they change
/// (a domain added, a DKIM key made, the policy changed), every `dns_update.check_secs`.
pub async fn keep_published(
    publisher: std::sync::Arc<Publisher>,
    cfg: Config,
    store: std::sync::Arc<dyn Store>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last: Option<Plan> = None;
    loop {
        match desired(&publisher, &cfg, &*store).await {
            Ok(plan) if last.as_ref() != Some(&plan) => {
                // What this process published before and wants no more (a domain deleted, a
                // key change aborted) goes first.
                let retired = last
                    .as_ref()
                    .map(|l| retirements(l, &plan))
                    .unwrap_or_default();
                let mut sent = true;
                for u in retired.iter().chain(&plan.updates) {
                    if let Err(e) = publisher.send(u).await {
                        tracing::error!(error = %format!("{e:#}"), "DNS update failed; the next check tries again");
                        sent = false;
                    }
                }
                if !plan.outside.is_empty() {
                    tracing::warn!(records = %plan.outside.join("; "), "records in none of dns_update.zones: publish them by hand");
                }
                if sent {
                    last = Some(plan);
                }
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %format!("{e:#}"), "cannot work out the DNS records"),
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(cfg.dns_update.check_secs)) => {}
            _ = stop.changed() => return,
        }
    }
}

/// The deletions that take back what `last` published and `now` no longer wants: a TLSA
/// record, or a whole replaced RRset (its `DeleteRrset` marks it).
fn retirements(last: &Plan, now: &Plan) -> Vec<Update> {
    let wanted: Vec<(&str, &Change)> = now
        .updates
        .iter()
        .flat_map(|u| u.changes.iter().map(move |c| (u.zone.as_str(), c)))
        .collect();
    let mut out = Vec::new();
    for u in &last.updates {
        let mut gone = Update::new(&u.zone);
        for c in &u.changes {
            if wanted.contains(&(u.zone.as_str(), c)) {
                continue;
            }
            match c {
                Change::Add(r) if r.data.record_type() == RecordType::TLSA => {
                    gone.changes.push(Change::Delete(r.clone()));
                }
                Change::DeleteRrset { .. } => gone.changes.push(c.clone()),
                _ => {}
            }
        }
        if !gone.changes.is_empty() {
            out.push(gone);
        }
    }
    out
}

async fn desired(publisher: &Publisher, cfg: &Config, store: &dyn Store) -> anyhow::Result<Plan> {
    let mut lines = Vec::new();
    for d in store.domains().await? {
        lines.extend(crate::dns_records::lines(cfg, store, &d.name).await?);
    }
    publisher.plan(&lines)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(owner: &str, rtype: &str, value: &str) -> DnsRecord {
        DnsRecord::new(owner, 600, RecordData::parse(rtype, value).expect("record"))
    }

    #[test]
    fn what_is_no_longer_wanted_is_taken_back_and_nothing_else() {
        let old_key = record("_25._tcp.mx.example.org", "TLSA", "3 1 1 aa");
        let new_key = record("_25._tcp.mx.example.org", "TLSA", "3 1 1 bb");
        let mut before = Update::new("example.org");
        before.changes.push(Change::Add(old_key.clone()));
        before.changes.push(Change::Add(new_key.clone()));
        before.replace(vec![record(
            "_mta-sts.gone.example.org",
            "TXT",
            "\"v=STSv1; id=1\"",
        )]);
        before.replace(vec![record(
            "_mta-sts.example.org",
            "TXT",
            "\"v=STSv1; id=1\"",
        )]);
        let mut after = Update::new("example.org");
        after.changes.push(Change::Add(new_key));
        // The same RRset with other content is replaced, not retired.
        after.replace(vec![record(
            "_mta-sts.example.org",
            "TXT",
            "\"v=STSv1; id=2\"",
        )]);
        let last = Plan {
            updates: vec![before],
            outside: Vec::new(),
        };
        let now = Plan {
            updates: vec![after],
            outside: Vec::new(),
        };
        let gone = retirements(&last, &now);
        assert_eq!(gone.len(), 1);
        assert_eq!(
            gone[0].changes,
            [
                Change::Delete(old_key),
                Change::DeleteRrset {
                    name: "_mta-sts.gone.example.org".into(),
                    rtype: RecordType::TXT
                }
            ]
        );
        assert!(retirements(&now, &now).is_empty());
    }
}
