//! The stored things, as plain values.

use std::time::{SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch; the store keeps every time in this unit (UTC).
pub type UnixTime = i64;

pub fn now() -> UnixTime {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// A hosted mail domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Domain {
    pub name: String,
    pub created: UnixTime,
}

pub type AccountId = i64;
pub type MailboxId = i64;
pub type QueueId = i64;

/// A mail account (one login, one set of mailboxes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: AccountId,
    /// Normalized (`address::normalize`).
    pub address: String,
    pub domain: String,
    /// Bytes; `None` is unlimited.
    pub quota: Option<u64>,
    pub enabled: bool,
    pub created: UnixTime,
}

/// An alias: `address` (or `@domain`, the domain's catch-all) delivers to `targets`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alias {
    pub address: String,
    pub domain: String,
    pub targets: Vec<String>,
}

/// Where delivery puts a message in each recipient's account.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Folder {
    #[default]
    Inbox,
    /// The mailbox with the `\Junk` attribute (RFC 6154), INBOX if the account has none.
    Junk,
}

impl Folder {
    /// The special-use attribute that marks the folder ("" for INBOX, which is a name).
    pub fn special_use(self) -> &'static str {
        match self {
            Folder::Inbox => "",
            Folder::Junk => "\\Junk",
        }
    }
}

/// RFC 6154 special-use attribute of a mailbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpecialUse {
    Sent,
    Drafts,
    Trash,
    Junk,
    Archive,
}

impl SpecialUse {
    pub fn attribute(self) -> &'static str {
        match self {
            SpecialUse::Sent => "\\Sent",
            SpecialUse::Drafts => "\\Drafts",
            SpecialUse::Trash => "\\Trash",
            SpecialUse::Junk => "\\Junk",
            SpecialUse::Archive => "\\Archive",
        }
    }

    pub fn from_attribute(s: &str) -> Option<Self> {
        [
            Self::Sent,
            Self::Drafts,
            Self::Trash,
            Self::Junk,
            Self::Archive,
        ]
        .into_iter()
        .find(|u| u.attribute().eq_ignore_ascii_case(s))
    }
}

/// The mailboxes every new account gets.
pub const DEFAULT_MAILBOXES: &[(&str, Option<SpecialUse>)] = &[
    ("INBOX", None),
    ("Sent", Some(SpecialUse::Sent)),
    ("Drafts", Some(SpecialUse::Drafts)),
    ("Trash", Some(SpecialUse::Trash)),
    ("Junk", Some(SpecialUse::Junk)),
];

/// The hierarchy delimiter of mailbox names (`Archive/2026`).
pub const MAILBOX_DELIMITER: char = '/';

/// A mailbox with its IMAP counters (RFC 9051 §2.3.1.1, RFC 7162 for MODSEQ).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub id: MailboxId,
    pub account: AccountId,
    /// Full name with `/` as the hierarchy delimiter; `INBOX` is always upper case.
    pub name: String,
    pub special_use: Option<SpecialUse>,
    pub uid_validity: u32,
    /// The UID the next message will get; never decreases, never reused.
    pub uid_next: u32,
    /// The highest MODSEQ given out in this mailbox.
    pub highest_modseq: u64,
    pub subscribed: bool,
    pub messages: u32,
    /// Messages with this UID or above are `\Recent` (RFC 3501 §2.3.2) until an IMAP session
    /// claims them (`Store::claim_recent`).
    pub recent_uid: u32,
}

/// One message in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageMeta {
    pub mailbox: MailboxId,
    pub uid: u32,
    pub modseq: u64,
    /// System flags (`\Seen` …) and keywords, as IMAP writes them, sorted.
    pub flags: Vec<String>,
    pub internal_date: UnixTime,
    pub size: u64,
}

/// Where a new message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub mailbox: MailboxId,
    pub uid_validity: u32,
    pub uid: u32,
    pub modseq: u64,
}

/// How `set_flags` changes the flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagChange {
    Add,
    Remove,
    Replace,
}

/// What changed in a mailbox, announced to waiting IMAP sessions (IDLE).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxChange {
    pub account: AccountId,
    pub mailbox: MailboxId,
    pub kind: ChangeKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    Appended {
        uid: u32,
    },
    Flags {
        uids: Vec<u32>,
    },
    Expunged {
        uids: Vec<u32>,
    },
    /// Created, renamed or deleted.
    Mailboxes,
    /// Changes may have been missed (another node's feed was interrupted, e.g. a database
    /// restart): every listener re-reads what it shows. `account` and `mailbox` are 0.
    Missed,
}

/// Delivery state of one recipient of a queued message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecipientStatus {
    Pending,
    Delivered,
    /// Permanently failed; a bounce is due.
    Failed,
}

impl RecipientStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(RecipientStatus::Pending),
            "delivered" => Some(RecipientStatus::Delivered),
            "failed" => Some(RecipientStatus::Failed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueRecipient {
    pub address: String,
    pub status: RecipientStatus,
    /// The last error (SMTP reply or local reason), for logs and bounces.
    pub last_error: Option<String>,
    /// What notices the recipient asked for, and its original address (RFC 3461 §4.1, §4.2).
    pub dsn: RecipientDsn,
}

/// RFC 3461 §4.1 `NOTIFY`: the notices a recipient wants; all false is `NEVER`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notify {
    pub success: bool,
    pub failure: bool,
    pub delay: bool,
}

/// The DSN request of one recipient (RFC 3461 §4.1, §4.2), as the sender gave it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecipientDsn {
    /// `None`: no NOTIFY given (failures and delays are reported, RFC 3461 §4.1).
    pub notify: Option<Notify>,
    /// ORCPT as given, `addr-type;xtext` (e.g. `rfc822;a@example.org`).
    pub orcpt: Option<String>,
}

impl RecipientDsn {
    /// The request as RFC 3461 RCPT parameters (`NOTIFY=SUCCESS,DELAY ORCPT=rfc822;a@b`), to
    /// pass on; `None` if there is nothing to say. The store keeps it in this form, too.
    pub fn rfc3461_parameters(&self) -> Option<String> {
        let mut words = Vec::new();
        if let Some(n) = self.notify {
            let kinds: Vec<&str> = [
                (n.success, "SUCCESS"),
                (n.failure, "FAILURE"),
                (n.delay, "DELAY"),
            ]
            .into_iter()
            .filter(|(on, _)| *on)
            .map(|(_, k)| k)
            .collect();
            words.push(if kinds.is_empty() {
                "NOTIFY=NEVER".to_string()
            } else {
                format!("NOTIFY={}", kinds.join(","))
            });
        }
        if let Some(o) = &self.orcpt {
            words.push(format!("ORCPT={o}"));
        }
        (!words.is_empty()).then(|| words.join(" "))
    }

    /// Reads RCPT parameters back; unknown words are ignored.
    pub fn from_rfc3461(parameters: &str) -> RecipientDsn {
        let mut d = RecipientDsn::default();
        for w in parameters.split_ascii_whitespace() {
            let Some((k, v)) = w.split_once('=') else {
                continue;
            };
            if k.eq_ignore_ascii_case("NOTIFY") {
                d.notify = Some(Notify::from_rfc3461(v));
            } else if k.eq_ignore_ascii_case("ORCPT") {
                d.orcpt = Some(v.to_string());
            }
        }
        d
    }
}

impl Notify {
    pub const NEVER: Notify = Notify {
        success: false,
        failure: false,
        delay: false,
    };

    /// `SUCCESS,FAILURE`, `never`, … (any case).
    pub fn from_rfc3461(value: &str) -> Notify {
        let v = value.to_ascii_uppercase();
        let has = |k: &str| v.split(',').any(|x| x == k);
        Notify {
            success: has("SUCCESS"),
            failure: has("FAILURE"),
            delay: has("DELAY"),
        }
    }
}

impl DsnReturn {
    /// `FULL` or `HDRS` (RFC 3461 §4.3).
    pub fn as_str(self) -> &'static str {
        match self {
            DsnReturn::Full => "FULL",
            DsnReturn::Headers => "HDRS",
        }
    }

    /// `FULL` or `HDRS` in any case; `None` for anything else.
    pub fn parse(value: &str) -> Option<DsnReturn> {
        [DsnReturn::Full, DsnReturn::Headers]
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(value))
    }
}

impl MessageDsn {
    /// RET and ENVID as MAIL FROM parameters, to pass on; `None` if neither was given.
    pub fn rfc3461_parameters(&self) -> Option<String> {
        let words: Vec<String> = [
            self.ret.map(|r| format!("RET={}", r.as_str())),
            self.envid.as_ref().map(|e| format!("ENVID={e}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        (!words.is_empty()).then(|| words.join(" "))
    }
}

/// RFC 3461 §4.3 `RET`: what of the message a notice returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DsnReturn {
    Full,
    Headers,
}

/// The DSN request of a message (RFC 3461 §4.3, §4.4).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MessageDsn {
    pub ret: Option<DsnReturn>,
    /// ENVID as given (xtext).
    pub envid: Option<String>,
}

/// A message waiting for outbound delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueEntry {
    pub id: QueueId,
    /// Reverse path; empty for bounces (`MAIL FROM:<>`).
    pub sender: String,
    pub recipients: Vec<QueueRecipient>,
    pub size: u64,
    pub created: UnixTime,
    pub next_attempt: UnixTime,
    pub attempts: u32,
    /// RFC 8689 REQUIRETLS was asked for.
    pub require_tls: bool,
    /// RET and ENVID (RFC 3461).
    pub dsn: MessageDsn,
    /// The worker that holds the lease, and until when.
    pub lease: Option<(String, UnixTime)>,
}

/// One recipient's outcome of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueAttempt {
    pub at: UnixTime,
    pub recipient: String,
    pub status: RecipientStatus,
    /// The reply or local reason in words (what `last_error` was then).
    pub detail: Option<String>,
}

/// A new queue entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewQueueEntry {
    pub sender: String,
    pub recipients: Vec<(String, RecipientDsn)>,
    pub require_tls: bool,
    pub dsn: MessageDsn,
}

/// The TLS outcomes the store keeps for TLSRPT (RFC 8460 §4): the policy crate's one shape of
/// that fact, stored with the time it happened.
pub use kurier_policy::tlsrpt::{PolicyType, ResultType, TlsOutcome};

/// A TLSRPT report received by mail (RFC 8460 §5.3), stored raw and parsed by `policy`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedReport {
    pub id: i64,
    pub report_domain: String,
    pub submitter: String,
    pub received: UnixTime,
    pub json: Vec<u8>,
}

/// Which daily aggregate report a claim is for: each kind is claimed once per domain and day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// TLSRPT (RFC 8460), per policy domain.
    Tlsrpt,
    /// DMARC aggregate (RFC 7489 §7.2), per policy domain.
    Dmarc,
}

/// One DMARC evaluation of an inbound message whose policy asks for aggregate reports
/// (RFC 7489 §7.2): a day's report to the policy domain is summed from these. Plain values:
/// `kurier-mailauth` owns their meaning, the store keeps them.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DmarcEvent {
    /// Where the policy was found (the organizational domain or the author's own).
    pub policy_domain: String,
    /// The DMARC record as published then (the report repeats its `p`, `sp`, `pct`, …).
    pub record: String,
    pub source_ip: String,
    /// RFC5322.From, RFC5321.MailFrom and recipient domains.
    pub header_from: String,
    pub envelope_from: String,
    pub envelope_to: String,
    /// What was done: `none`, `quarantine` or `reject`.
    pub disposition: String,
    pub dkim_aligned: bool,
    pub spf_aligned: bool,
    /// Why the published policy was not applied as asked: (RFC 7489 PolicyOverrideType,
    /// comment).
    pub overrides: Vec<(String, String)>,
    /// Every DKIM signature checked: (d=, s=, result).
    pub dkim: Vec<(String, String, String)>,
    /// SPF: (domain, scope `mfrom`/`helo`, result).
    pub spf: Vec<(String, String, String)>,
}

/// A DMARC aggregate report received by mail, stored as its XML and parsed when read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedDmarcReport {
    pub id: i64,
    /// The domain the report is about (`policy_published/domain`).
    pub policy_domain: String,
    /// The reporter's domain (its DMARC-passing From domain).
    pub reporter: String,
    pub received: UnixTime,
    pub xml: Vec<u8>,
}

/// A cached MTA-STS policy (RFC 8461 §5.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedStsPolicy {
    pub domain: String,
    /// The `id=` of the `_mta-sts` TXT record the policy was fetched for.
    pub record_id: String,
    /// The policy text as fetched.
    pub policy: String,
    pub fetched: UnixTime,
    pub expires: UnixTime,
}

/// One greylisting triplet (client network, envelope sender, recipient), all lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct GreyTriplet {
    /// "192.0.2.0/24" or "2001:db8:1:2::/64".
    pub network: String,
    /// "" for the null sender.
    pub sender: String,
    pub recipient: String,
}

/// What the store remembers of a triplet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GreyRecord {
    pub first_seen: UnixTime,
    pub last_seen: UnixTime,
    /// It came back after the delay: its mail passes from now on.
    pub passed: bool,
}

/// One of an account's Sieve scripts (RFC 5804 §1.1: any number, at most one active).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SieveScript {
    pub name: String,
    pub active: bool,
    pub content: String,
}

/// Which mailbox of an account a delivered copy goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// INBOX, or the account's Junk mailbox.
    Folder(Folder),
    /// A mailbox by name (Sieve's fileinto); INBOX if the account has none of that name.
    Named(String),
}

/// One copy of a delivered message (Sieve may file a message into several mailboxes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub account: AccountId,
    pub target: Target,
    /// IMAP flags (system flags and keywords, checked).
    pub flags: Vec<String>,
    /// This copy's own content (Sieve's editheader), instead of the shared body.
    pub body: Option<Vec<u8>>,
}

/// What an account administers besides itself (the web administration's roles): the whole
/// server, or one hosted domain's accounts and aliases.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum AdminScope {
    Server,
    Domain(String),
}

impl AdminScope {
    /// As kept in the store: "" for the server, else the domain.
    pub fn as_stored(&self) -> &str {
        match self {
            AdminScope::Server => "",
            AdminScope::Domain(d) => d,
        }
    }

    pub fn from_stored(s: String) -> AdminScope {
        if s.is_empty() {
            AdminScope::Server
        } else {
            AdminScope::Domain(s)
        }
    }
}

/// A browser session of the web administration. The cookie carries a random secret; the
/// store keeps only its SHA-256, so a copy of the database opens no session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// SHA-256 of the cookie's secret, hex.
    pub id: String,
    pub account: AccountId,
    /// The session's CSRF token, sent back with every form.
    pub csrf: String,
    pub created: UnixTime,
    pub expires: UnixTime,
}

/// An API token for scripts (`Authorization: Bearer kurier_<id>_<secret>`); the store keeps
/// the SHA-256 of the secret only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The public part, to find the token.
    pub id: String,
    pub account: AccountId,
    /// The owner's name for it, unique per account.
    pub name: String,
    /// SHA-256 of the secret part, hex.
    pub secret: String,
    pub created: UnixTime,
    pub expires: Option<UnixTime>,
}

/// A size as people write it: `500M`, `2G`, `1.5G`, `64K` or plain bytes (quotas on the
/// command line and in the web administration).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m: u64 = match c.to_ascii_uppercase() {
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return None,
            };
            (&t[..i], m)
        }
        _ => (t, 1),
    };
    let value: f64 = num.trim().parse().ok()?;
    if !value.is_finite() || value < 0.0 || value * mult as f64 >= u64::MAX as f64 {
        return None;
    }
    Some((value * mult as f64) as u64)
}
