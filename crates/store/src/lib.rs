//! # kurier-store — all of Kurier's state behind one `Store` trait
//!
//! Owns domains (with per-domain settings), accounts (Argon2id password hashes), aliases and
//! catch-alls, mailboxes with their IMAP counters (UIDVALIDITY, UIDNEXT, MODSEQ; RFC 9051,
//! RFC 7162), messages and flags, the outbound queue with leases, TLSRPT events and received
//! reports (RFC 8460), DMARC evaluations and received aggregate reports (RFC 7489 §7.2), and
//! the MTA-STS policy cache (RFC 8461). Two backends implement the trait: SQLite (`sqlite:` — the embedded default, one data folder) and
//! PostgreSQL (`postgres://` — several Kurier nodes sharing one database). One conformance test
//! suite (`tests/conformance.rs`) runs against both.
//!
//! ## Durability contract
//! When `append`, `deliver` or `enqueue` returns `Ok`, the message and its metadata survive a
//! crash or a power cut: SQLite commits in WAL mode with `synchronous=FULL` (the WAL is fsynced
//! at every commit), PostgreSQL commits with its default `synchronous_commit=on`. Every write a
//! protocol acknowledges (SMTP 250, IMAP APPEND OK) goes through these calls and is acknowledged
//! only after they return (docs/architecture.md: durable before 250). A failed call has written
//! nothing visible: each one is a single transaction.
//!
//! Queue entries are leased, never popped: `lease` hands due entries to one worker until the
//! lease expires; a worker that dies leaves them to be leased again, so nothing is lost.
//!
//! Must not: leak SQL or backend types outside this crate; know about SMTP or IMAP syntax.

#![forbid(unsafe_code)]

pub mod address;
pub mod model;
pub mod password;
mod postgres;
mod rules;
mod schema;
mod sqlite;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
pub use model::*;

/// Browser sessions one account keeps at most (signing in once more ends the oldest).
pub const MAX_WEB_SESSIONS: i64 = 20;
pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;
use tokio::sync::broadcast;

/// Errors of the store. `Unavailable` is temporary (SMTP 4xx); the others are the caller's.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0} exists already")]
    Exists(String),
    #[error(
        "mailbox quota of {address} exceeded: {used} of {quota} bytes used, the message has {size}"
    )]
    QuotaExceeded {
        address: String,
        used: u64,
        quota: u64,
        size: u64,
    },
    #[error("the queue entry {0} is leased by another worker")]
    LeaseLost(QueueId),
    /// The database cannot be used right now (unreachable, disk full, locked): try again later.
    #[error("storage temporarily unavailable: {0}")]
    Unavailable(String),
    /// The database is not ours or is damaged.
    #[error("storage error: {0}")]
    Backend(String),
}

impl StoreError {
    /// Whether a protocol should answer with a temporary failure (4xx / NO [UNAVAILABLE]).
    pub fn is_temporary(&self) -> bool {
        matches!(self, StoreError::Unavailable(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Who receives mail for an address (RFC 5321 §3.6 local resolution).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recipient {
    /// The domain is not hosted here.
    NotHosted,
    /// The domain is hosted, but nobody has the address (550 5.1.1).
    Unknown,
    /// These accounts receive it (an account, an alias or the catch-all).
    Local(Vec<Account>),
}

/// Everything Kurier stores. All methods are single transactions.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    // Domains.
    async fn add_domain(&self, name: &str) -> Result<Domain>;
    async fn domains(&self) -> Result<Vec<Domain>>;
    /// Refuses while the domain still has accounts or aliases.
    async fn delete_domain(&self, name: &str) -> Result<()>;
    /// Sets (`Some`) or removes (`None`) one per-domain setting. Keys are lower-case words with
    /// `.`, `-` or `_` (e.g. `mta-sts.mode`); the feature that reads a key owns its meaning.
    async fn set_domain_setting(&self, domain: &str, key: &str, value: Option<&str>) -> Result<()>;
    async fn domain_settings(
        &self,
        domain: &str,
    ) -> Result<std::collections::BTreeMap<String, String>>;

    // Accounts.
    /// Creates the account and its default mailboxes (INBOX, Sent, Drafts, Trash, Junk),
    /// subscribed.
    async fn add_account(
        &self,
        address: &str,
        password: &str,
        quota: Option<u64>,
    ) -> Result<Account>;
    async fn account(&self, address: &str) -> Result<Option<Account>>;
    async fn accounts(&self, domain: Option<&str>) -> Result<Vec<Account>>;
    async fn set_password(&self, address: &str, password: &str) -> Result<()>;
    async fn set_enabled(&self, address: &str, enabled: bool) -> Result<()>;
    async fn set_quota(&self, address: &str, quota: Option<u64>) -> Result<()>;
    /// Sets (`Some`) or removes (`None`) one setting of an account (keys as for domains).
    async fn set_account_setting(
        &self,
        address: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<()>;
    async fn account_settings(
        &self,
        address: &str,
    ) -> Result<std::collections::BTreeMap<String, String>>;
    /// Deletes the account with all its mailboxes and messages.
    async fn delete_account(&self, address: &str) -> Result<()>;
    /// The account if the password matches and it is enabled.
    async fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>>;
    /// What mail clients sign in with (IMAP, POP3, submission, ManageSieve): one of the
    /// account's app passwords, else the account password.
    async fn authenticate_client(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let secret = password::app_secret(password);
        if let Some(a) = self.app_password_account(address, &secret).await? {
            return Ok(Some(a));
        }
        self.authenticate(address, password).await
    }
    /// The enabled account `address` if `secret` (`password::app_secret`) is one of its app
    /// passwords.
    async fn app_password_account(&self, address: &str, secret: &str) -> Result<Option<Account>>;
    /// Keeps a new app password (its `password::app_secret`); `Exists` for a name in use.
    async fn add_app_password(
        &self,
        account: AccountId,
        name: &str,
        secret: &str,
        created: UnixTime,
    ) -> Result<()>;
    /// The account's app passwords: (name, created).
    async fn app_passwords(&self, account: AccountId) -> Result<Vec<(String, UnixTime)>>;
    async fn delete_app_password(&self, account: AccountId, name: &str) -> Result<()>;
    /// Bytes used by all messages of the account.
    async fn usage(&self, account: AccountId) -> Result<u64>;

    // Aliases.
    /// `address` may be `@domain` (catch-all); targets must be local accounts.
    async fn add_alias(&self, address: &str, targets: &[&str]) -> Result<Alias>;
    /// The aliases (not catch-alls) that deliver to the account `address`: what it may send as.
    async fn sender_aliases(&self, address: &str) -> Result<Vec<String>>;
    async fn aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>>;
    async fn delete_alias(&self, address: &str) -> Result<()>;
    /// Who receives mail for `address`: its account, else its alias, else the domain's
    /// catch-all.
    async fn resolve(&self, address: &str) -> Result<Recipient> {
        self.resolve_address(address, true).await
    }
    /// `resolve`, with the catch-all only if `catch_all` (a sub-address `user+tag` asks for
    /// its own account or alias first, then `user`'s, and only then the catch-all).
    async fn resolve_address(&self, address: &str, catch_all: bool) -> Result<Recipient>;

    // Mailboxes.
    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>>;
    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>>;
    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox>;
    /// Renames a mailbox and its children, subscriptions included; a new UIDVALIDITY is not
    /// needed (RFC 9051 §6.3.6).
    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    /// Deletes the mailbox and its messages (its subscription stays); INBOX cannot be deleted.
    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()>;
    /// Subscribes or unsubscribes a name, whether or not a mailbox has it (RFC 9051 §6.3.7);
    /// unsubscribing a name that is not subscribed is `NotFound`.
    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()>;
    /// The subscribed names, sorted.
    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>>;
    /// Makes the messages up to now no longer recent for anyone else and returns the first UID
    /// that is recent for the caller (RFC 3501 §2.3.2: a message is recent in one session only).
    async fn claim_recent(&self, mailbox: MailboxId) -> Result<u32>;

    // Messages.
    /// Durable when it returns (see the crate doc). Checks the quota.
    async fn append(
        &self,
        mailbox: MailboxId,
        body: &[u8],
        flags: &[&str],
        internal_date: UnixTime,
    ) -> Result<Appended>;
    /// Appends `body` to the INBOX of every account, all or nothing; durable when it returns.
    async fn deliver(&self, accounts: &[AccountId], body: &[u8]) -> Result<Vec<Appended>> {
        self.deliver_and_enqueue(accounts, Folder::Inbox, body, None)
            .await
            .map(|(a, _)| a)
    }
    /// `deliver` into `folder`, and in the same transaction queues `body` for `remote`
    /// recipients (submission: a message for local and remote recipients is durable as a whole
    /// or not at all).
    async fn deliver_and_enqueue(
        &self,
        accounts: &[AccountId],
        folder: Folder,
        body: &[u8],
        remote: Option<&NewQueueEntry>,
    ) -> Result<(Vec<Appended>, Option<QueueId>)> {
        let placements: Vec<Placement> = accounts
            .iter()
            .map(|a| Placement {
                account: *a,
                target: Target::Folder(folder),
                flags: Vec::new(),
                body: None,
            })
            .collect();
        let queue: Vec<(NewQueueEntry, Option<Vec<u8>>)> =
            remote.map(|e| (e.clone(), None)).into_iter().collect();
        let (appended, queued) = self.deliver_placed(&placements, body, &queue).await?;
        Ok((appended, queued.into_iter().next()))
    }
    /// Every copy of `placements` and every queue entry (each with its own body, or `body`),
    /// all in one transaction: durable as a whole or not at all.
    async fn deliver_placed(
        &self,
        placements: &[Placement],
        body: &[u8],
        queue: &[(NewQueueEntry, Option<Vec<u8>>)],
    ) -> Result<(Vec<Appended>, Vec<QueueId>)>;
    /// Metadata of every message in the mailbox, by UID.
    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>>;
    /// Metadata of the messages whose MODSEQ is above `modseq` (appended or flags changed
    /// since), by UID: how an IMAP session catches up without reading the whole mailbox.
    async fn messages_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<MessageMeta>>;
    async fn message_body(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>>;
    /// UIDs expunged after `modseq`, ascending (QRESYNC's VANISHED, RFC 7162 §3.2.10).
    async fn expunged_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<u32>>;
    /// Changes flags; each changed message gets a new MODSEQ. Returns the changed messages.
    async fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        change: FlagChange,
        flags: &[&str],
    ) -> Result<Vec<MessageMeta>>;
    /// Removes messages; returns the UIDs that were removed. They are remembered with the
    /// MODSEQ of the removal (`expunged_since`).
    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<u32>>;
    /// Copies messages (with flags and internal date); returns (source UID, new UID) pairs.
    async fn copy(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>>;
    /// Announcements of changes to any mailbox (IMAP IDLE and NOTIFY filter them).
    fn subscribe(&self) -> broadcast::Receiver<MailboxChange>;

    // The outbound queue.
    /// Durable when it returns (see the crate doc).
    async fn enqueue(&self, entry: &NewQueueEntry, body: &[u8]) -> Result<QueueId>;
    /// Leases up to `limit` due entries (next attempt reached, no live lease) to `holder` until
    /// `now + lease_secs`. Two workers never get the same entry while a lease is live.
    async fn lease(
        &self,
        holder: &str,
        now: UnixTime,
        lease_secs: u32,
        limit: u32,
    ) -> Result<Vec<QueueEntry>>;
    async fn queue_body(&self, id: QueueId) -> Result<Option<Vec<u8>>>;
    /// Records per-recipient results; then deletes the entry if no recipient is pending, or
    /// releases it for a new attempt at `next_attempt`. Fails with `LeaseLost` if `holder`
    /// no longer holds the lease.
    async fn finish_attempt(
        &self,
        id: QueueId,
        holder: &str,
        results: &[(String, RecipientStatus, Option<String>)],
        next_attempt: UnixTime,
    ) -> Result<()>;
    async fn queue(&self) -> Result<Vec<QueueEntry>>;
    /// Every recorded attempt of entry `id`, oldest first (one row per recipient and attempt).
    async fn queue_attempts(&self, id: QueueId) -> Result<Vec<QueueAttempt>>;
    /// Makes the entry due at `now` (an operator's "retry now"); `Invalid` while a worker holds
    /// its lease, `NotFound` if there is none.
    async fn retry_queue_entry(&self, id: QueueId, now: UnixTime) -> Result<()>;
    /// Removes the entry and its body without a notice (an operator's "delete"); `Invalid`
    /// while a worker holds its lease at `now`.
    async fn delete_queue_entry(&self, id: QueueId, now: UnixTime) -> Result<()>;

    // The web administration.
    /// What the account administers (empty: only itself).
    async fn admin_scopes(&self, account: AccountId) -> Result<Vec<AdminScope>>;
    /// Grants (`granted`) or takes back `scope` for the account `address`; a domain scope
    /// must be a hosted domain.
    async fn set_admin_scope(&self, address: &str, scope: &AdminScope, granted: bool)
    -> Result<()>;
    /// Keeps a new session; the account's oldest end beyond `MAX_WEB_SESSIONS`.
    async fn put_web_session(&self, session: &WebSession) -> Result<()>;
    /// The session with `id` and its account, if it has not expired at `now` and the account
    /// is enabled.
    async fn web_session(&self, id: &str, now: UnixTime) -> Result<Option<(WebSession, Account)>>;
    async fn delete_web_session(&self, id: &str) -> Result<()>;
    /// Forgets the sessions expired at `now`; how many.
    async fn prune_web_sessions(&self, now: UnixTime) -> Result<u64>;
    /// Keeps a new token; `Exists` if the account has one of that name.
    async fn put_api_token(&self, token: &ApiToken) -> Result<()>;
    /// The token with the public `id` and its account, if the account is enabled.
    async fn api_token(&self, id: &str) -> Result<Option<(ApiToken, Account)>>;
    async fn api_tokens(&self, account: AccountId) -> Result<Vec<ApiToken>>;
    async fn delete_api_token(&self, account: AccountId, name: &str) -> Result<()>;

    // TLSRPT (RFC 8460) and MTA-STS (RFC 8461).
    /// Keeps `outcome`, which happened at `at`.
    async fn record_tls_event(&self, outcome: &TlsOutcome, at: UnixTime) -> Result<()>;
    /// Events with `from <= at < until`.
    async fn tls_events(&self, from: UnixTime, until: UnixTime) -> Result<Vec<TlsOutcome>>;
    async fn store_report(&self, report_domain: &str, submitter: &str, json: &[u8]) -> Result<i64>;
    async fn reports(&self) -> Result<Vec<ReceivedReport>>;
    async fn put_sts_policy(&self, policy: &CachedStsPolicy) -> Result<()>;
    /// Claims the `kind` report of `domain` for the UTC day starting at `day`: true if this
    /// call claimed it (send it now), false if it was claimed before, here or on another node.
    async fn claim_report(
        &self,
        kind: ReportKind,
        domain: &str,
        day: UnixTime,
        report_id: &str,
        now: UnixTime,
    ) -> Result<bool>;
    /// The `kind` reports claimed (sent, or being sent) for days from `since` on:
    /// (domain, day, report id, when), newest day first.
    async fn sent_reports(
        &self,
        kind: ReportKind,
        since: UnixTime,
    ) -> Result<Vec<(String, UnixTime, String, UnixTime)>>;
    /// Gives a claim back after the report could not be handed on (so a later run sends it).
    async fn release_report(&self, kind: ReportKind, domain: &str, day: UnixTime) -> Result<()>;

    // DMARC aggregate reports (RFC 7489 §7.2).
    /// Keeps `event`, which happened at `at`.
    async fn record_dmarc_event(&self, event: &DmarcEvent, at: UnixTime) -> Result<()>;
    /// Events with `from <= at < until`, in the order they happened.
    async fn dmarc_events(&self, from: UnixTime, until: UnixTime) -> Result<Vec<DmarcEvent>>;
    /// Forgets TLS and DMARC events before `before` (once reported they are no longer needed:
    /// inbound mail must not grow the store without bound). Returns how many went.
    async fn prune_report_events(&self, before: UnixTime) -> Result<u64>;
    async fn store_dmarc_report(
        &self,
        policy_domain: &str,
        reporter: &str,
        xml: &[u8],
    ) -> Result<i64>;
    async fn dmarc_reports(&self) -> Result<Vec<ReceivedDmarcReport>>;
    async fn sts_policy(&self, domain: &str) -> Result<Option<CachedStsPolicy>>;

    // Sieve (RFC 5228) scripts of an account, ManageSieve's model (RFC 5804).
    /// Every script of the account, by name.
    async fn sieve_scripts(&self, account: AccountId) -> Result<Vec<SieveScript>>;
    /// Which of `accounts` have an active script (one query for a whole delivery, so that
    /// mail to accounts without Sieve costs nothing more).
    async fn sieve_active(&self, accounts: &[AccountId]) -> Result<Vec<AccountId>>;
    /// Stores a script (new or replaced); the active flag of a replaced one stays.
    async fn put_sieve_script(&self, account: AccountId, name: &str, content: &str) -> Result<()>;
    /// Removes a script; the active one cannot be removed (`Invalid`).
    async fn delete_sieve_script(&self, account: AccountId, name: &str) -> Result<()>;
    /// Renames a script (`Exists` if the new name is taken).
    async fn rename_sieve_script(&self, account: AccountId, from: &str, to: &str) -> Result<()>;
    /// Makes `name` the only active script; `None` leaves none active.
    async fn activate_sieve_script(&self, account: AccountId, name: Option<&str>) -> Result<()>;
    /// Records a vacation reply to `sender` under `handle` at `now`, unless one went out
    /// within `period` seconds before (RFC 5230 §4.2) or the account sent `per_day` replies
    /// in the last 24 hours already: true if the reply is to be sent.
    async fn vacation_reply_due(
        &self,
        account: AccountId,
        sender: &str,
        handle: &str,
        now: UnixTime,
        period: i64,
        per_day: u32,
    ) -> Result<bool>;

    // Greylisting (shared by every node of one store).
    async fn greylist_get(&self, triplet: &GreyTriplet) -> Result<Option<GreyRecord>>;
    async fn greylist_put(&self, triplet: &GreyTriplet, record: &GreyRecord) -> Result<()>;
    /// Forgets triplets last seen before `before`. Returns how many went.
    async fn greylist_prune(&self, before: UnixTime) -> Result<u64>;
}

/// Opens the store a URL names: `sqlite:/path/to/kurier.db`, `postgres://user@host/db`, or
/// `postgres:` followed by a libpq key=value string.
pub async fn open(url: &str) -> Result<Arc<dyn Store>> {
    if let Some(path) = url.strip_prefix("sqlite:") {
        Ok(Arc::new(SqliteStore::open(Path::new(path)).await?))
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Arc::new(PostgresStore::connect(url).await?))
    } else if let Some(conninfo) = url.strip_prefix("postgres:") {
        // libpq key=value form: `postgres:host=/run/postgresql dbname=kurier`.
        Ok(Arc::new(PostgresStore::connect(conninfo).await?))
    } else {
        Err(StoreError::Invalid(format!(
            "store URL {url:?}: use sqlite:/var/lib/kurier/kurier.db, postgres://user@host/dbname or postgres:host=… dbname=…"
        )))
    }
}

/// A queue entry needs recipients (both backends check the same way).
pub(crate) fn check_entry(entry: &NewQueueEntry) -> Result<()> {
    if entry.recipients.is_empty() {
        return Err(StoreError::Invalid(
            "a queue entry needs at least one recipient".into(),
        ));
    }
    Ok(())
}

/// Flags are kept sorted, de-duplicated, and system flags in their canonical case
/// (RFC 9051 §2.3.2). Keywords are IMAP atoms; anything else is refused.
pub fn normalize_flags<'a>(flags: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>> {
    const SYSTEM: &[&str] = &["\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"];
    let mut out = Vec::new();
    for f in flags {
        let f = match SYSTEM.iter().find(|s| s.eq_ignore_ascii_case(f)) {
            Some(system) => (*system).to_string(),
            None if is_keyword(f) => f.to_string(),
            None => {
                return Err(StoreError::Invalid(format!(
                    "flag {f:?} is neither a system flag nor a valid keyword"
                )));
            }
        };
        if !out.contains(&f) {
            out.push(f);
        }
    }
    out.sort();
    Ok(out)
}

/// An IMAP atom (RFC 9051 §9 `atom`), which is what a keyword is.
fn is_keyword(f: &str) -> bool {
    !f.is_empty()
        && f.len() <= 255
        && f.chars()
            .all(|c| c.is_ascii_graphic() && !"(){%*\"\\]".contains(c))
}

#[cfg(test)]
mod tests {
    #[test]
    fn flags_are_canonical_sorted_and_checked() {
        let f = super::normalize_flags(["\\seen", "$Label1", "\\Seen", "\\FLAGGED"]).unwrap();
        assert_eq!(f, ["$Label1", "\\Flagged", "\\Seen"]);
        for bad in ["\\Recent", "\\Bogus", "a b", "", "x(y"] {
            assert!(super::normalize_flags([bad]).is_err(), "{bad}");
        }
    }
}
