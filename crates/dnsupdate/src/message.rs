//! One UPDATE for one zone (RFC 2136 §2): the zone section, no prerequisites, the changes in
//! order. The server applies all of them or none (§3.4), so replacing an RRset (delete it,
//! add the new records) never leaves a moment without one.

use std::fmt::Write;

use hickory_proto::op::{Message, MessageType, OpCode, Query, UpdateMessage};
use hickory_proto::rr::{DNSClass, Name, Record, RecordType};

use crate::UpdateError;
use crate::record::{DnsRecord, name};

/// At most this many changes in one message (they must fit 64 KiB over TCP).
const MAX_CHANGES: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Add a record; one that exists already is left as it is (§3.4.2.2).
    Add(DnsRecord),
    /// Delete every record of `rtype` at `name` (§2.5.2).
    DeleteRrset { name: String, rtype: RecordType },
    /// Delete this one record (§2.5.4).
    Delete(DnsRecord),
}

impl Change {
    /// The owner name the change is about.
    pub fn owner(&self) -> &str {
        match self {
            Change::Add(r) | Change::Delete(r) => &r.name,
            Change::DeleteRrset { name, .. } => name,
        }
    }
}

/// The changes that make `records` (one name and type) the whole RRset: delete what is there,
/// add them (in one message, so never without one, §3.4).
pub fn replacement(records: Vec<DnsRecord>) -> Vec<Change> {
    let mut changes = Vec::with_capacity(records.len() + 1);
    if let Some(first) = records.first() {
        changes.push(Change::DeleteRrset {
            name: first.name.clone(),
            rtype: first.data.record_type(),
        });
    }
    changes.extend(records.into_iter().map(Change::Add));
    changes
}

/// `changes` as one update per zone of `zones` (the longest that holds the owner), in order;
/// and the changes whose owner is in none of them.
pub fn by_zone(changes: Vec<Change>, zones: &[String]) -> (Vec<Update>, Vec<Change>) {
    let mut updates: Vec<Update> = Vec::new();
    let mut outside = Vec::new();
    for c in changes {
        let Some(zone) = zone_for(c.owner(), zones) else {
            outside.push(c);
            continue;
        };
        let zone = zone.trim_end_matches('.').to_ascii_lowercase();
        match updates.iter_mut().find(|u| u.zone == zone) {
            Some(u) => u.changes.push(c),
            None => updates.push(Update {
                zone,
                changes: vec![c],
            }),
        }
    }
    (updates, outside)
}

/// The changes to one zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub zone: String,
    pub changes: Vec<Change>,
}

impl Update {
    pub fn new(zone: &str) -> Update {
        Update {
            zone: zone.trim_end_matches('.').to_ascii_lowercase(),
            changes: Vec::new(),
        }
    }

    /// The records of `records` replace the RRset at their name and type (one name and type).
    pub fn replace(&mut self, records: Vec<DnsRecord>) {
        self.changes.extend(replacement(records));
    }

    /// The UPDATE message, unsigned.
    pub fn message(&self, id: u16) -> Result<Message, UpdateError> {
        let zone = name(&self.zone)?;
        if self.changes.len() > MAX_CHANGES {
            return Err(UpdateError::Input(format!(
                "{} changes for {} at once: at most {MAX_CHANGES}",
                self.changes.len(),
                self.zone
            )));
        }
        let mut m = Message::new(id, MessageType::Query, OpCode::Update);
        let mut q = Query::query(zone.clone(), RecordType::SOA);
        q.set_query_class(DNSClass::IN);
        m.add_zone(q);
        for c in &self.changes {
            let record = match c {
                Change::Add(r) => r.to_record()?,
                Change::DeleteRrset { name: n, rtype } => {
                    let mut r = Record::update0(name(n)?, 0, *rtype);
                    r.dns_class = DNSClass::ANY;
                    r
                }
                Change::Delete(r) => {
                    let mut r = r.to_record()?;
                    r.dns_class = DNSClass::NONE;
                    r.ttl = 0;
                    r
                }
            };
            check_in_zone(&zone, &record.name)?;
            m.add_update(record);
        }
        Ok(m)
    }

    /// What `nsupdate` would be told (the dry run prints it; an operator can feed it to
    /// `nsupdate -k KEYFILE`).
    pub fn nsupdate_text(&self, server: &str) -> String {
        let (host, port) = match server.rsplit_once(':') {
            Some((h, p)) => (h.trim_matches(|c| c == '[' || c == ']'), p),
            None => (server, "53"),
        };
        let mut out = format!("server {host} {port}\nzone {}.\n", self.zone);
        for c in &self.changes {
            let _ = match c {
                Change::Add(r) => writeln!(out, "update add {r}"),
                Change::DeleteRrset { name, rtype } => {
                    writeln!(out, "update delete {name}. {rtype}")
                }
                Change::Delete(r) => writeln!(
                    out,
                    "update delete {}. IN {} {}",
                    r.name,
                    r.data.record_type(),
                    r.data
                ),
            };
        }
        out.push_str("send\n");
        out
    }
}

fn check_in_zone(zone: &Name, owner: &Name) -> Result<(), UpdateError> {
    if zone.zone_of(owner) {
        Ok(())
    } else {
        Err(UpdateError::Input(format!(
            "{owner} is not in the zone {zone} (RFC 2136 §3.4.1.3)"
        )))
    }
}

/// The zone of `owner` among `zones`: the longest that contains it.
pub fn zone_for<'a>(owner: &str, zones: &'a [String]) -> Option<&'a str> {
    let owner = owner.trim_end_matches('.').to_ascii_lowercase();
    zones
        .iter()
        .map(|z| z.as_str())
        .filter(|z| {
            let z = z.trim_end_matches('.');
            owner == z.to_ascii_lowercase()
                || owner.ends_with(&format!(".{}", z.to_ascii_lowercase()))
        })
        .max_by_key(|z| z.len())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use crate::record::RecordData;

    fn tlsa(owner: &str) -> DnsRecord {
        DnsRecord::new(owner, 300, RecordData::parse("TLSA", "3 1 1 abcd").unwrap())
    }

    #[test]
    fn an_update_carries_the_zone_and_each_change_as_rfc_2136_says() {
        let mut u = Update::new("Example.ORG.");
        u.changes.push(Change::Add(tlsa("_25._tcp.mx.example.org")));
        u.replace(vec![DnsRecord::new(
            "_mta-sts.example.org",
            3600,
            RecordData::parse("TXT", "\"v=STSv1; id=2\"").unwrap(),
        )]);
        u.changes
            .push(Change::Delete(tlsa("_25._tcp.mx.example.org")));
        let m = u.message(7).unwrap();
        assert_eq!(m.metadata.op_code, OpCode::Update);
        assert_eq!(m.zones()[0].name().to_string(), "example.org.");
        assert_eq!(m.zones()[0].query_type(), RecordType::SOA);
        let classes: Vec<(DNSClass, u32)> =
            m.updates().iter().map(|r| (r.dns_class, r.ttl)).collect();
        assert_eq!(
            classes,
            [
                (DNSClass::IN, 300),
                (DNSClass::ANY, 0),
                (DNSClass::IN, 3600),
                (DNSClass::NONE, 0)
            ]
        );
        // It survives the wire.
        let back = Message::from_vec(&m.to_vec().unwrap()).unwrap();
        assert_eq!(back.updates().len(), 4);
        assert_eq!(
            u.nsupdate_text("192.0.2.53:53"),
            "server 192.0.2.53 53\nzone example.org.\n\
             update add _25._tcp.mx.example.org. 300 IN TLSA 3 1 1 abcd\n\
             update delete _mta-sts.example.org. TXT\n\
             update add _mta-sts.example.org. 3600 IN TXT \"v=STSv1; id=2\"\n\
             update delete _25._tcp.mx.example.org. IN TLSA 3 1 1 abcd\nsend\n"
        );
    }

    #[test]
    fn records_outside_the_zone_and_floods_are_refused() {
        let mut u = Update::new("example.org");
        u.changes.push(Change::Add(tlsa("_25._tcp.mx.example.net")));
        assert!(
            u.message(1)
                .unwrap_err()
                .to_string()
                .contains("not in the zone")
        );
        let mut u = Update::new("example.org");
        u.changes = vec![Change::Add(tlsa("a.example.org")); MAX_CHANGES + 1];
        assert!(u.message(1).is_err());
    }

    #[test]
    fn changes_are_grouped_by_their_zone_in_order() {
        let zones = vec!["example.org".to_string(), "example.net".to_string()];
        let changes = vec![
            Change::Add(tlsa("_25._tcp.mx.example.org")),
            Change::Add(tlsa("_25._tcp.mx.example.net")),
            Change::Delete(tlsa("_465._tcp.mx.example.org")),
            Change::Add(tlsa("_25._tcp.mx.example.com")),
        ];
        let (updates, outside) = by_zone(changes.clone(), &zones);
        assert_eq!(updates.len(), 2);
        assert_eq!(updates[0].zone, "example.org");
        assert_eq!(updates[0].changes, [changes[0].clone(), changes[2].clone()]);
        assert_eq!(updates[1].changes, [changes[1].clone()]);
        assert_eq!(outside, [changes[3].clone()]);
    }

    #[test]
    fn the_longest_zone_that_contains_a_name_is_its_zone() {
        let zones = vec!["example.org".to_string(), "mx.example.org.".to_string()];
        assert_eq!(
            zone_for("_25._tcp.mx.example.org.", &zones),
            Some("mx.example.org.")
        );
        assert_eq!(
            zone_for("_mta-sts.Example.org", &zones),
            Some("example.org")
        );
        assert_eq!(zone_for("example.org", &zones), Some("example.org"));
        assert_eq!(zone_for("badexample.org", &zones), None);
    }
}
