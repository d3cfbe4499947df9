//! Rules both backends share: names, flag arithmetic, and how lists are kept in one column.

use crate::{
    DmarcEvent, DsnReturn, FlagChange, MessageDsn, PolicyType, RecipientDsn, ReportKind, Result,
    ResultType, StoreError, TlsOutcome,
};

/// Where the claims of one kind of daily report are kept.
pub fn claim_table(kind: ReportKind) -> &'static str {
    match kind {
        ReportKind::Tlsrpt => "tlsrpt_sent",
        ReportKind::Dmarc => "dmarc_sent",
    }
}

/// A DMARC event is kept as one JSON value: it is written once and read whole.
pub fn event_json(e: &DmarcEvent) -> Result<String> {
    serde_json::to_string(e).map_err(|e| StoreError::Backend(format!("DMARC event: {e}")))
}

pub fn event_of(json: &str) -> Result<DmarcEvent> {
    serde_json::from_str(json)
        .map_err(|e| StoreError::Backend(format!("a stored DMARC event: {e}")))
}

/// Checks a Sieve script name (RFC 5804 §1.6: no control characters; we also bound it).
pub fn sieve_name(name: &str) -> Result<String> {
    if name.is_empty() || name.len() > 128 || name.chars().any(char::is_control) {
        return Err(StoreError::Invalid(format!(
            "script name {name:?}: 1 to 128 characters, none of them control characters"
        )));
    }
    Ok(name.to_string())
}

/// Checks a mailbox name; `INBOX` in any case becomes `INBOX` (RFC 9051 §5.1).
pub fn mailbox_name(name: &str) -> Result<String> {
    let bad = |why: &str| StoreError::Invalid(format!("mailbox name {name:?}: {why}"));
    if name.is_empty() || name.len() > 512 {
        return Err(bad("must have 1 to 512 bytes"));
    }
    if name.chars().any(char::is_control) {
        return Err(bad("control characters are not allowed"));
    }
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") {
        return Err(bad("empty hierarchy level"));
    }
    if name.eq_ignore_ascii_case("INBOX") {
        return Ok("INBOX".into());
    }
    Ok(name.to_string())
}

pub fn encode_list(items: &[String]) -> String {
    items.join("\n")
}

pub fn decode_list(s: &str) -> Vec<String> {
    s.split('\n')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// Flags are stored space-separated (neither system flags nor keywords contain spaces).
pub fn encode_flags(flags: &[String]) -> String {
    flags.join(" ")
}

pub fn decode_flags(s: &str) -> Vec<String> {
    s.split(' ')
        .filter(|x| !x.is_empty())
        .map(str::to_string)
        .collect()
}

/// The flags after `change`, sorted; `None` if nothing changes.
pub fn apply_flags(
    current: &[String],
    change: FlagChange,
    flags: &[String],
) -> Option<Vec<String>> {
    let mut next: Vec<String> = match change {
        FlagChange::Replace => flags.to_vec(),
        FlagChange::Add => current.iter().chain(flags).cloned().collect(),
        FlagChange::Remove => current
            .iter()
            .filter(|f| !flags.contains(f))
            .cloned()
            .collect(),
    };
    next.sort();
    next.dedup();
    (next != current).then_some(next)
}

/// Checks a per-domain setting key.
pub fn setting_key(key: &str) -> Result<&str> {
    let ok = !key.is_empty()
        && key.len() <= 64
        && key
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c));
    if ok {
        Ok(key)
    } else {
        Err(StoreError::Invalid(format!(
            "setting key {key:?}: use lower-case letters, digits, '.', '-' and '_' (e.g. \"mta-sts.mode\")"
        )))
    }
}

/// `NotFound(what)` when an UPDATE or DELETE touched no row.
pub fn not_found_if_zero(rows: u64, what: impl FnOnce() -> String) -> Result<()> {
    if rows == 0 {
        Err(StoreError::NotFound(what()))
    } else {
        Ok(())
    }
}

/// Checks the names of a rename: INBOX can be neither source nor target here.
pub fn rename_names(from: &str, to: &str) -> Result<(String, String)> {
    let (from, to) = (mailbox_name(from)?, mailbox_name(to)?);
    if from == "INBOX" || to == "INBOX" {
        return Err(StoreError::Invalid(
            "renaming to or from INBOX is not supported; move the messages instead".into(),
        ));
    }
    Ok((from, to))
}

/// Checks the name of a mailbox to delete: never INBOX.
pub fn deletable_mailbox(name: &str) -> Result<String> {
    let name = mailbox_name(name)?;
    if name == "INBOX" {
        return Err(StoreError::Invalid("INBOX cannot be deleted".into()));
    }
    Ok(name)
}

/// A byte count from the database (never negative there; clamp anyway).
pub fn to_u64(v: i64) -> u64 {
    v.max(0) as u64
}

/// A recipient's DSN request in its `dsn` column: RFC 3461's parameter text, as rows written
/// before the typed model also hold it.
pub fn encode_recipient_dsn(d: &RecipientDsn) -> Option<String> {
    d.rfc3461_parameters()
}

pub fn decode_recipient_dsn(column: Option<&str>) -> RecipientDsn {
    column.map(RecipientDsn::from_rfc3461).unwrap_or_default()
}

/// RET in its column: `FULL` or `HDRS`.
pub fn encode_ret(d: &MessageDsn) -> Option<&'static str> {
    d.ret.map(DsnReturn::as_str)
}

pub fn decode_ret(column: Option<&str>) -> Option<DsnReturn> {
    column.and_then(DsnReturn::parse)
}

/// A `tls_events` row as it is kept: the type names as RFC 8460 spells them.
pub struct TlsEventRow {
    pub policy_domain: String,
    pub policy_type: String,
    pub policy_strings: String,
    pub mx_host: String,
    pub failure: Option<String>,
    pub receiving_ip: Option<String>,
    pub sending_ip: Option<String>,
    pub receiving_helo: Option<String>,
    pub detail: Option<String>,
}

impl TlsEventRow {
    pub fn of(o: &TlsOutcome) -> TlsEventRow {
        TlsEventRow {
            policy_domain: o.policy_domain.clone(),
            policy_type: o.policy_type.as_str().to_string(),
            policy_strings: encode_list(&o.policy_strings),
            mx_host: o.mx_host.clone(),
            failure: o.failure.map(|f| f.as_str().to_string()),
            receiving_ip: o.receiving_ip.clone(),
            sending_ip: o.sending_ip.clone(),
            receiving_helo: o.receiving_helo.clone(),
            detail: o.detail.clone(),
        }
    }

    /// The outcome again. Names RFC 8460 does not know (a hand-edited or future database)
    /// count as the catch-alls `no-policy-found` and `validation-failure`.
    pub fn outcome(self) -> TlsOutcome {
        TlsOutcome {
            policy_type: PolicyType::parse(&self.policy_type).unwrap_or(PolicyType::NoPolicyFound),
            policy_strings: decode_list(&self.policy_strings),
            failure: self
                .failure
                .map(|f| ResultType::parse(&f).unwrap_or(ResultType::ValidationFailure)),
            policy_domain: self.policy_domain,
            mx_host: self.mx_host,
            receiving_ip: self.receiving_ip,
            sending_ip: self.sending_ip,
            receiving_helo: self.receiving_helo,
            detail: self.detail,
        }
    }
}

#[cfg(test)]
mod dsn_tests {
    use super::*;
    use crate::Notify;

    #[test]
    fn recipient_dsn_round_trips_and_reads_old_rows() {
        let d = RecipientDsn {
            notify: Some(Notify {
                success: true,
                failure: false,
                delay: true,
            }),
            orcpt: Some("rfc822;a@b.test".into()),
        };
        let text = encode_recipient_dsn(&d);
        assert_eq!(
            text.as_deref(),
            Some("NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@b.test")
        );
        assert_eq!(decode_recipient_dsn(text.as_deref()), d);
        let never = decode_recipient_dsn(Some("notify=never"));
        assert_eq!(never.notify, Some(Notify::NEVER));
        assert_eq!(
            encode_recipient_dsn(&never).as_deref(),
            Some("NOTIFY=NEVER")
        );
        assert_eq!(encode_recipient_dsn(&RecipientDsn::default()), None);
        assert_eq!(decode_recipient_dsn(None), RecipientDsn::default());
        assert_eq!(decode_recipient_dsn(Some("junk")), RecipientDsn::default());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn flag_arithmetic() {
        let cur = s(&["\\Seen"]);
        assert_eq!(
            apply_flags(&cur, FlagChange::Add, &s(&["\\Flagged"])),
            Some(s(&["\\Flagged", "\\Seen"]))
        );
        assert_eq!(apply_flags(&cur, FlagChange::Add, &s(&["\\Seen"])), None);
        assert_eq!(
            apply_flags(&cur, FlagChange::Remove, &s(&["\\Seen"])),
            Some(vec![])
        );
        assert_eq!(
            apply_flags(&cur, FlagChange::Replace, &s(&["\\Seen"])),
            None
        );
        assert_eq!(
            decode_flags(&encode_flags(&s(&["$a", "\\Seen"]))),
            s(&["$a", "\\Seen"])
        );
    }

    #[test]
    fn mailbox_names() {
        assert_eq!(mailbox_name("inbox").unwrap(), "INBOX");
        assert_eq!(mailbox_name("Archive/2026").unwrap(), "Archive/2026");
        for bad in ["", "/x", "x/", "a//b", "a\u{0}b"] {
            assert!(mailbox_name(bad).is_err(), "{bad:?}");
        }
    }
}
