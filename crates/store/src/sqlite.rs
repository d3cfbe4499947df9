//! The SQLite backend: the embedded default. One file in the data folder, WAL mode,
//! `synchronous=FULL` (the WAL is fsynced at every commit: the durability contract), foreign
//! keys on. Message bodies live in the database too (table `blobs`, shared by copies), so a
//! message and its metadata commit in one transaction and no orphan files can exist.
//!
//! All calls run on tokio's blocking pool over one connection; SQLite serializes writers anyway.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{
    Connection, ErrorCode, OptionalExtension, Transaction, TransactionBehavior, params,
};
use tokio::sync::broadcast;

use crate::check_entry;
use crate::rules::{self, decode_flags, decode_list, encode_flags, encode_list, to_u64};
use crate::schema::{SQLITE, SQLITE_APPLICATION_ID};
use crate::{
    Account, AccountId, Alias, Appended, CachedStsPolicy, ChangeKind, DEFAULT_MAILBOXES,
    DmarcEvent, Domain, FlagChange, Folder, Mailbox, MailboxChange, MailboxId, MessageDsn,
    MessageMeta, NewQueueEntry, QueueEntry, QueueId, QueueRecipient, ReceivedDmarcReport,
    ReceivedReport, Recipient, RecipientStatus, ReportKind, Result, SpecialUse, Store, StoreError,
    TlsOutcome, UnixTime, address, normalize_flags, now, password,
};
use crate::{AdminScope, ApiToken, QueueAttempt, WebSession};
use crate::{GreyRecord, GreyTriplet, Placement, SieveScript, Target};

pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    changes: broadcast::Sender<MailboxChange>,
    path: PathBuf,
    /// `Some(next try)` while the database is open read-only because it could not be opened
    /// for writing (a full disk): reads work, writes fail as `Unavailable` (451, NO
    /// [UNAVAILABLE]), and from the next try on each call attempts the writable open again.
    read_only_until: Arc<Mutex<Option<std::time::Instant>>>,
}

/// How often a read-only store tries to become writable again.
const WRITABLE_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

fn err(e: rusqlite::Error) -> StoreError {
    match e.sqlite_error_code() {
        Some(
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::OutOfMemory
            | ErrorCode::ReadOnly,
        ) => StoreError::Unavailable(e.to_string()),
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => StoreError::Backend(format!(
            "{e}: the file is not a Kurier database or is damaged"
        )),
        _ => StoreError::Backend(e.to_string()),
    }
}

/// Maps a UNIQUE violation to `Exists(what)`.
fn unique(what: String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation) => StoreError::Exists(what),
        _ => err(e),
    }
}

impl SqliteStore {
    /// Opens (or creates) the database at `path` and brings its schema up to date.
    pub async fn open(path: &Path) -> Result<Self> {
        let p = path.to_owned();
        let (conn, read_only) = tokio::task::spawn_blocking(move || match open_sync(&p) {
            Ok(c) => Ok((c, false)),
            // A full disk must not keep the server from starting: serve what is stored and
            // refuse writes with a temporary error until space returns.
            Err(StoreError::Unavailable(why)) if p.exists() => match open_read_only(&p) {
                Ok(c) => {
                    tracing::warn!(store = %p.display(), error = %why, "the store cannot be written (disk full?): open read-only; new mail gets 451 until it can be written again");
                    Ok((c, true))
                }
                Err(_) => Err(StoreError::Unavailable(why)),
            },
            Err(e) => Err(e),
        })
        .await
        .map_err(|e| StoreError::Backend(e.to_string()))??;
        let (changes, _) = broadcast::channel(1024);
        Ok(SqliteStore {
            conn: Arc::new(Mutex::new(conn)),
            changes,
            path: path.to_owned(),
            read_only_until: Arc::new(Mutex::new(
                read_only.then(|| std::time::Instant::now() + WRITABLE_RETRY),
            )),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let conn = self.conn.clone();
        let read_only = self.read_only_until.clone();
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || {
            let mut c = conn.lock().unwrap_or_else(|p| p.into_inner());
            become_writable(&mut c, &read_only, &path);
            f(&mut c)
        })
        .await
        .map_err(|e| StoreError::Backend(format!("store task failed: {e}")))?
    }

    fn announce(&self, changes: impl IntoIterator<Item = MailboxChange>) {
        for c in changes {
            // No receiver is fine: nobody is idling.
            let _ = self.changes.send(c);
        }
    }
}

fn open_sync(path: &Path) -> Result<Connection> {
    let describe = |e: rusqlite::Error| match err(e) {
        StoreError::Backend(m) => StoreError::Backend(format!("{}: {m}", path.display())),
        StoreError::Unavailable(m) => StoreError::Unavailable(format!("{}: {m}", path.display())),
        other => other,
    };
    let conn = Connection::open(path).map_err(describe)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(describe)?;
    let tables: i64 = conn
        .query_row(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'",
            [],
            |r| r.get(0),
        )
        .map_err(describe)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(describe)?;
    if tables > 0 && app_id != SQLITE_APPLICATION_ID {
        return Err(StoreError::Backend(format!(
            "{}: this SQLite database belongs to another program (application_id {app_id:#x}); give Kurier its own file",
            path.display()
        )));
    }
    let mode: String = conn
        .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
        .map_err(describe)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "{}: cannot switch to WAL mode (got {mode})",
            path.display()
        )));
    }
    conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;")
        .map_err(describe)?;
    migrate(&conn).map_err(|e| match e {
        StoreError::Backend(m) => StoreError::Backend(format!("{}: {m}", path.display())),
        other => other,
    })?;
    Ok(conn)
}

/// Opens an existing, current Kurier database for reading only (no WAL index, no schema
/// change): what still works when the disk is full.
fn open_read_only(path: &Path) -> Result<Connection> {
    use rusqlite::OpenFlags;
    // After a clean stop there is no WAL, and `immutable` needs no -shm file (which cannot be
    // created on a full disk). A WAL left by a crash holds committed data: then read through
    // it (`mode=ro`, which needs the -shm file the crash left too).
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    let pending = std::fs::metadata(&wal).is_ok_and(|m| m.len() > 0);
    let uri = format!(
        "file:{}?{}",
        path.display()
            .to_string()
            .replace('%', "%25")
            .replace('?', "%3f")
            .replace('#', "%23"),
        if pending { "mode=ro" } else { "immutable=1" }
    );
    let conn = Connection::open_with_flags(
        uri,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_URI,
    )
    .map_err(err)?;
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .map_err(err)?;
    let app_id: i32 = conn
        .query_row("PRAGMA application_id", [], |r| r.get(0))
        .map_err(err)?;
    if app_id != SQLITE_APPLICATION_ID || version as usize != SQLITE.len() {
        return Err(StoreError::Unavailable(
            "a read-only store must be a current Kurier database".into(),
        ));
    }
    Ok(conn)
}

/// While the store is read-only, tries (at most every `WRITABLE_RETRY`) to open it for
/// writing again, and swaps the connection when that works.
fn become_writable(
    conn: &mut Connection,
    read_only_until: &Mutex<Option<std::time::Instant>>,
    path: &Path,
) {
    let mut until = read_only_until.lock().unwrap_or_else(|p| p.into_inner());
    let Some(next) = *until else { return };
    if std::time::Instant::now() < next {
        return;
    }
    match open_sync(path) {
        Ok(writable) => {
            *conn = writable;
            *until = None;
            tracing::info!(store = %path.display(), "the store can be written again");
        }
        Err(_) => *until = Some(std::time::Instant::now() + WRITABLE_RETRY),
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    let version: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(err)? as usize;
    if version > SQLITE.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this Kurier knows ({}); upgrade Kurier",
            SQLITE.len()
        )));
    }
    for (i, sql) in SQLITE.iter().enumerate().skip(version) {
        let batch = format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA application_id = {SQLITE_APPLICATION_ID}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        );
        if let Err(e) = conn.execute_batch(&batch) {
            let _ = conn.execute_batch("ROLLBACK");
            return Err(StoreError::Backend(format!(
                "schema migration {} failed: {e}",
                i + 1
            )));
        }
        tracing::info!(version = i + 1, "store schema migrated");
    }
    Ok(())
}

fn immediate(c: &mut Connection) -> Result<Transaction<'_>> {
    c.transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(err)
}

const ACCOUNT_COLUMNS: &str = "id, address, domain, quota, enabled, created";

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        address: r.get(1)?,
        domain: r.get(2)?,
        quota: r.get::<_, Option<i64>>(3)?.map(to_u64),
        enabled: r.get(4)?,
        created: r.get(5)?,
    })
}

fn account_by_address(c: &Connection, address: &str) -> Result<Option<Account>> {
    c.query_row(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE address = ?1"),
        [address],
        account_row,
    )
    .optional()
    .map_err(err)
}

fn require_account(c: &Connection, address: &str) -> Result<Account> {
    account_by_address(c, address)?
        .ok_or_else(|| StoreError::NotFound(format!("account {address}")))
}

fn domain_exists(c: &Connection, domain: &str) -> Result<bool> {
    c.query_row(
        "SELECT 1 FROM domains WHERE name = ?1",
        [domain],
        |_| Ok(()),
    )
    .optional()
    .map(|o| o.is_some())
    .map_err(err)
}

fn require_domain(c: &Connection, domain: &str) -> Result<()> {
    if domain_exists(c, domain)? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!(
            "domain {domain} (add it first: kurier domain add {domain})"
        )))
    }
}

/// The mailbox delivery uses: the one with the folder's special use, else INBOX.
const DELIVERY_MAILBOX: &str = "SELECT id FROM mailboxes WHERE account = ?1 AND (name = 'INBOX' OR special_use = ?2) ORDER BY (name = 'INBOX') LIMIT 1";

const MAILBOX_COLUMNS: &str = "m.id, m.account, m.name, m.special_use, m.uid_validity, m.uid_next, m.highest_modseq, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account = m.account AND s.name = m.name), \
     (SELECT count(*) FROM messages WHERE mailbox = m.id), m.recent_uid";

fn mailbox_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Mailbox> {
    Ok(Mailbox {
        id: r.get(0)?,
        account: r.get(1)?,
        name: r.get(2)?,
        special_use: r
            .get::<_, Option<String>>(3)?
            .and_then(|s| SpecialUse::from_attribute(&s)),
        uid_validity: r.get::<_, i64>(4)? as u32,
        uid_next: r.get::<_, i64>(5)? as u32,
        highest_modseq: to_u64(r.get(6)?),
        subscribed: r.get(7)?,
        messages: r.get::<_, i64>(8)? as u32,
        recent_uid: r.get::<_, i64>(9)? as u32,
    })
}

fn insert_mailbox(
    c: &Connection,
    account: AccountId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<MailboxId> {
    c.execute(
        "INSERT INTO mailboxes (account, name, special_use, uid_validity) VALUES (?1, ?2, ?3, 0)",
        params![account, name, special_use.map(|u| u.attribute())],
    )
    .map_err(unique(format!("mailbox {name}")))?;
    let id = c.last_insert_rowid();
    // Ids are never reused (AUTOINCREMENT), so a re-created name gets a new UIDVALIDITY.
    c.execute("UPDATE mailboxes SET uid_validity = id WHERE id = ?1", [id])
        .map_err(err)?;
    Ok(id)
}

/// Appends one message in an open transaction; the blob is inserted by the caller.
fn append_in(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    blob: i64,
    size: u64,
    flags: &[String],
    internal_date: UnixTime,
) -> Result<(Appended, AccountId)> {
    let (account, address, quota, used, uid_validity, uid_next, modseq): (
        i64,
        String,
        Option<i64>,
        i64,
        i64,
        i64,
        i64,
    ) = tx
        .query_row(
            "SELECT a.id, a.address, a.quota, a.used, m.uid_validity, m.uid_next, m.highest_modseq \
             FROM mailboxes m JOIN accounts a ON a.id = m.account WHERE m.id = ?1",
            [mailbox],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )
        .optional()
        .map_err(err)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
    if let Some(q) = quota
        && to_u64(used) + size > to_u64(q)
    {
        return Err(StoreError::QuotaExceeded {
            address,
            used: to_u64(used),
            quota: to_u64(q),
            size,
        });
    }
    let modseq = modseq + 1;
    tx.execute(
        "INSERT INTO messages (mailbox, uid, modseq, flags, internal_date, size, blob) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![mailbox, uid_next, modseq, encode_flags(flags), internal_date, size as i64, blob],
    )
    .map_err(err)?;
    tx.execute(
        "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = ?2 WHERE id = ?1",
        params![mailbox, modseq],
    )
    .map_err(err)?;
    Ok((
        Appended {
            mailbox,
            uid_validity: uid_validity as u32,
            uid: uid_next as u32,
            modseq: modseq as u64,
        },
        account,
    ))
}

/// Inserts a queue entry in an open transaction.
fn enqueue_in(tx: &Transaction<'_>, entry: &NewQueueEntry, body: &[u8]) -> Result<QueueId> {
    tx.execute(
        "INSERT INTO queue (sender, size, created, next_attempt, require_tls, body, dsn_ret, dsn_envid) VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
        params![entry.sender, body.len() as i64, now(), entry.require_tls, body, rules::encode_ret(&entry.dsn), entry.dsn.envid],
    )
    .map_err(err)?;
    let id = tx.last_insert_rowid();
    for (rcpt, dsn) in &entry.recipients {
        tx.execute(
            "INSERT INTO queue_recipients (queue, address, status, dsn) VALUES (?1, ?2, 'pending', ?3)",
            params![id, rcpt, rules::encode_recipient_dsn(dsn)],
        )
        .map_err(unique(format!("recipient {rcpt} twice in one queue entry")))?;
    }
    Ok(id)
}

fn insert_blob(tx: &Transaction<'_>, body: &[u8]) -> Result<i64> {
    tx.execute("INSERT INTO blobs (data, refs) VALUES (?1, 0)", [body])
        .map_err(err)?;
    Ok(tx.last_insert_rowid())
}

fn message_row(mailbox: MailboxId) -> impl Fn(&rusqlite::Row<'_>) -> rusqlite::Result<MessageMeta> {
    move |r| {
        Ok(MessageMeta {
            mailbox,
            uid: r.get::<_, i64>(0)? as u32,
            modseq: to_u64(r.get(1)?),
            flags: decode_flags(&r.get::<_, String>(2)?),
            internal_date: r.get(3)?,
            size: to_u64(r.get(4)?),
        })
    }
}

fn mailbox_account(tx: &Connection, mailbox: MailboxId) -> Result<(AccountId, i64)> {
    tx.query_row(
        "SELECT account, highest_modseq FROM mailboxes WHERE id = ?1",
        [mailbox],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()
    .map_err(err)?
    .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))
}

/// The outcome of an operator's change to queue entry `id` that touched `n` rows: none
/// means it is gone or a worker holds it.
fn queue_change(c: &rusqlite::Connection, id: QueueId, n: usize) -> Result<()> {
    if n > 0 {
        return Ok(());
    }
    let exists: bool = c
        .query_row(
            "SELECT EXISTS (SELECT 1 FROM queue WHERE id = ?1)",
            [id],
            |r| r.get(0),
        )
        .map_err(err)?;
    Err(if exists {
        StoreError::Invalid(format!(
            "queue entry {id} is being delivered right now; try again in a minute"
        ))
    } else {
        StoreError::NotFound(format!("queue entry {id}"))
    })
}

fn load_queue_entries(
    c: &Connection,
    where_clause: &str,
    p: &[&dyn rusqlite::ToSql],
) -> Result<Vec<QueueEntry>> {
    let mut stmt = c
        .prepare(&format!(
            "SELECT id, sender, size, created, next_attempt, attempts, require_tls, lease_holder, lease_expires, dsn_ret, dsn_envid \
             FROM queue {where_clause} ORDER BY next_attempt, id"
        ))
        .map_err(err)?;
    let mut entries: Vec<QueueEntry> = stmt
        .query_map(p, |r| {
            let holder: Option<String> = r.get(7)?;
            let expires: Option<i64> = r.get(8)?;
            Ok(QueueEntry {
                id: r.get(0)?,
                sender: r.get(1)?,
                recipients: Vec::new(),
                size: to_u64(r.get(2)?),
                created: r.get(3)?,
                next_attempt: r.get(4)?,
                attempts: r.get::<_, i64>(5)? as u32,
                require_tls: r.get(6)?,
                dsn: MessageDsn {
                    ret: rules::decode_ret(r.get::<_, Option<String>>(9)?.as_deref()),
                    envid: r.get(10)?,
                },
                lease: holder.zip(expires),
            })
        })
        .map_err(err)?
        .collect::<rusqlite::Result<_>>()
        .map_err(err)?;
    let mut rs = c
        .prepare("SELECT address, status, last_error, dsn FROM queue_recipients WHERE queue = ?1 ORDER BY rowid")
        .map_err(err)?;
    for e in &mut entries {
        e.recipients = rs
            .query_map([e.id], |r| {
                Ok(QueueRecipient {
                    address: r.get(0)?,
                    status: RecipientStatus::parse(&r.get::<_, String>(1)?)
                        .unwrap_or(RecipientStatus::Pending),
                    last_error: r.get(2)?,
                    dsn: rules::decode_recipient_dsn(r.get::<_, Option<String>>(3)?.as_deref()),
                })
            })
            .map_err(err)?
            .collect::<rusqlite::Result<_>>()
            .map_err(err)?;
    }
    Ok(entries)
}

#[async_trait]
impl Store for SqliteStore {
    async fn add_domain(&self, name: &str) -> Result<Domain> {
        let name = address::normalize_domain(name)?;
        self.run(move |c| {
            let created = now();
            c.execute(
                "INSERT INTO domains (name, created) VALUES (?1, ?2)",
                params![name, created],
            )
            .map_err(unique(format!("domain {name}")))?;
            Ok(Domain { name, created })
        })
        .await
    }

    async fn domains(&self) -> Result<Vec<Domain>> {
        self.run(|c| {
            let mut s = c
                .prepare("SELECT name, created FROM domains ORDER BY name")
                .map_err(err)?;
            let rows = s
                .query_map([], |r| {
                    Ok(Domain {
                        name: r.get(0)?,
                        created: r.get(1)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn delete_domain(&self, name: &str) -> Result<()> {
        let name = address::normalize_domain(name)?;
        self.run(move |c| {
            let tx = immediate(c)?;
            require_domain(&tx, &name)?;
            let (accounts, aliases): (i64, i64) = tx
                .query_row(
                    "SELECT (SELECT count(*) FROM accounts WHERE domain = ?1), (SELECT count(*) FROM aliases WHERE domain = ?1)",
                    [&name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .map_err(err)?;
            if accounts + aliases > 0 {
                return Err(StoreError::Invalid(format!(
                    "domain {name} still has {accounts} accounts and {aliases} aliases; delete them first"
                )));
            }
            tx.execute("DELETE FROM domains WHERE name = ?1", [&name]).map_err(err)?;
            tx.commit().map_err(err)
        })
        .await
    }

    async fn set_domain_setting(&self, domain: &str, key: &str, value: Option<&str>) -> Result<()> {
        let domain = address::normalize_domain(domain)?;
        let key = rules::setting_key(key)?.to_string();
        let value = value.map(str::to_string);
        self.run(move |c| {
            let tx = immediate(c)?;
            require_domain(&tx, &domain)?;
            match value {
                Some(v) => tx.execute(
                    "INSERT INTO domain_settings (domain, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (domain, key) DO UPDATE SET value = ?3",
                    params![domain, key, v],
                ),
                None => tx.execute(
                    "DELETE FROM domain_settings WHERE domain = ?1 AND key = ?2",
                    params![domain, key],
                ),
            }
            .map_err(err)?;
            tx.commit().map_err(err)
        })
        .await
    }

    async fn domain_settings(
        &self,
        domain: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let domain = address::normalize_domain(domain)?;
        self.run(move |c| {
            require_domain(c, &domain)?;
            let mut s = c
                .prepare("SELECT key, value FROM domain_settings WHERE domain = ?1")
                .map_err(err)?;
            let rows = s
                .query_map([&domain], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn add_account(
        &self,
        address: &str,
        password: &str,
        quota: Option<u64>,
    ) -> Result<Account> {
        let address = address::normalize(address)?;
        let hash = password::hash(password)?;
        self.run(move |c| {
            let tx = immediate(c)?;
            let domain = address::domain_of(&address).to_string();
            require_domain(&tx, &domain)?;
            let is_alias = tx
                .query_row("SELECT 1 FROM aliases WHERE address = ?1", [&address], |_| Ok(()))
                .optional()
                .map_err(err)?
                .is_some();
            if is_alias {
                return Err(StoreError::Exists(format!("alias {address}")));
            }
            tx.execute(
                "INSERT INTO accounts (address, domain, password, quota, created) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![address, domain, hash, quota.map(|q| q as i64), now()],
            )
            .map_err(unique(format!("account {address}")))?;
            let id = tx.last_insert_rowid();
            for (name, special) in DEFAULT_MAILBOXES {
                insert_mailbox(&tx, id, name, *special)?;
                tx.execute(
                    "INSERT INTO subscriptions (account, name) VALUES (?1, ?2)",
                    params![id, name],
                )
                .map_err(err)?;
            }
            let account = require_account(&tx, &address)?;
            tx.commit().map_err(err)?;
            Ok(account)
        })
        .await
    }

    async fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = address::normalize(address) else {
            return Ok(None);
        };
        self.run(move |c| account_by_address(c, &address)).await
    }

    async fn accounts(&self, domain: Option<&str>) -> Result<Vec<Account>> {
        let domain = domain.map(address::normalize_domain).transpose()?;
        self.run(move |c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE ?1 IS NULL OR domain = ?1 ORDER BY address"
                ))
                .map_err(err)?;
            let rows = s.query_map([domain], account_row).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn set_password(&self, address: &str, password: &str) -> Result<()> {
        let address = address::normalize(address)?;
        let hash = password::hash(password)?;
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET password = ?2 WHERE address = ?1",
                    params![address, hash],
                )
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("account {address}"))
        })
        .await
    }

    async fn set_enabled(&self, address: &str, enabled: bool) -> Result<()> {
        let address = address::normalize(address)?;
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET enabled = ?2 WHERE address = ?1",
                    params![address, enabled],
                )
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("account {address}"))
        })
        .await
    }

    async fn set_quota(&self, address: &str, quota: Option<u64>) -> Result<()> {
        let address = address::normalize(address)?;
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE accounts SET quota = ?2 WHERE address = ?1",
                    params![address, quota.map(|q| q as i64)],
                )
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("account {address}"))
        })
        .await
    }

    async fn set_account_setting(
        &self,
        address: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let address = address::normalize(address)?;
        let key = rules::setting_key(key)?.to_string();
        let value = value.map(str::to_string);
        self.run(move |c| {
            let tx = immediate(c)?;
            let id: i64 = tx
                .query_row(
                    "SELECT id FROM accounts WHERE address = ?1",
                    [&address],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?
                .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?;
            match value {
                Some(v) => tx.execute(
                    "INSERT INTO account_settings (account, key, value) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (account, key) DO UPDATE SET value = ?3",
                    params![id, key, v],
                ),
                None => tx.execute(
                    "DELETE FROM account_settings WHERE account = ?1 AND key = ?2",
                    params![id, key],
                ),
            }
            .map_err(err)?;
            tx.commit().map_err(err)
        })
        .await
    }

    async fn account_settings(
        &self,
        address: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let address = address::normalize(address)?;
        self.run(move |c| {
            let mut s = c
                .prepare(
                    "SELECT s.key, s.value FROM account_settings s JOIN accounts a ON a.id = s.account \
                     WHERE a.address = ?1",
                )
                .map_err(err)?;
            let rows = s
                .query_map([&address], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn delete_account(&self, address: &str) -> Result<()> {
        let address = address::normalize(address)?;
        self.run(move |c| {
            // One statement: the cascade to mailboxes and messages is atomic with it.
            let n = c
                .execute("DELETE FROM accounts WHERE address = ?1", [&address])
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("account {address}"))
        })
        .await
    }

    async fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let password = password.to_string();
        let Ok(address) = address::normalize(address) else {
            return password::check_account_off_thread(password, None).await;
        };
        // Only the row is read under the connection lock; Argon2 runs after it is released.
        let row = self
            .run(move |c| {
                c.query_row(
                    &format!("SELECT password, {ACCOUNT_COLUMNS} FROM accounts WHERE address = ?1"),
                    [&address],
                    |r| {
                        let hash: String = r.get(0)?;
                        let a = Account {
                            id: r.get(1)?,
                            address: r.get(2)?,
                            domain: r.get(3)?,
                            quota: r.get::<_, Option<i64>>(4)?.map(to_u64),
                            enabled: r.get(5)?,
                            created: r.get(6)?,
                        };
                        Ok((hash, a))
                    },
                )
                .optional()
                .map_err(err)
            })
            .await?;
        password::check_account_off_thread(password, row).await
    }

    async fn usage(&self, account: AccountId) -> Result<u64> {
        self.run(move |c| {
            c.query_row("SELECT used FROM accounts WHERE id = ?1", [account], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map_err(err)?
            .map(to_u64)
            .ok_or_else(|| StoreError::NotFound(format!("account {account}")))
        })
        .await
    }

    async fn add_alias(&self, alias: &str, targets: &[&str]) -> Result<Alias> {
        let alias = address::normalize_alias(alias)?;
        let targets = targets
            .iter()
            .map(|t| address::normalize(t))
            .collect::<Result<Vec<_>>>()?;
        if targets.is_empty() {
            return Err(StoreError::Invalid(format!(
                "alias {alias}: name at least one target account"
            )));
        }
        self.run(move |c| {
            let tx = immediate(c)?;
            let domain = address::domain_of(&alias).to_string();
            require_domain(&tx, &domain)?;
            if account_by_address(&tx, &alias)?.is_some() {
                return Err(StoreError::Exists(format!("account {alias}")));
            }
            for t in &targets {
                require_account(&tx, t)?;
            }
            tx.execute(
                "INSERT INTO aliases (address, domain, targets) VALUES (?1, ?2, ?3)",
                params![alias, domain, encode_list(&targets)],
            )
            .map_err(unique(format!("alias {alias}")))?;
            for t in &targets {
                tx.execute(
                    "INSERT OR IGNORE INTO alias_targets (alias, target) VALUES (?1, ?2)",
                    params![alias, t],
                )
                .map_err(err)?;
            }
            tx.commit().map_err(err)?;
            Ok(Alias {
                address: alias,
                domain,
                targets,
            })
        })
        .await
    }

    async fn sender_aliases(&self, address: &str) -> Result<Vec<String>> {
        let address = address::normalize(address)?;
        self.run(move |c| {
            let mut s = c
                .prepare("SELECT alias FROM alias_targets WHERE target = ?1 AND alias NOT LIKE '@%' ORDER BY alias")
                .map_err(err)?;
            let rows = s.query_map([&address], |r| r.get(0)).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>> {
        let domain = domain.map(address::normalize_domain).transpose()?;
        self.run(move |c| {
            let mut s = c
                .prepare("SELECT address, domain, targets FROM aliases WHERE ?1 IS NULL OR domain = ?1 ORDER BY address")
                .map_err(err)?;
            let rows = s
                .query_map([domain], |r| {
                    Ok(Alias { address: r.get(0)?, domain: r.get(1)?, targets: decode_list(&r.get::<_, String>(2)?) })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn delete_alias(&self, alias: &str) -> Result<()> {
        let alias = address::normalize_alias(alias)?;
        self.run(move |c| {
            let n = c
                .execute("DELETE FROM aliases WHERE address = ?1", [&alias])
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("alias {alias}"))
        })
        .await
    }

    async fn resolve_address(&self, addr: &str, catch_all: bool) -> Result<Recipient> {
        let Ok(addr) = address::normalize(addr) else {
            return Ok(Recipient::NotHosted);
        };
        self.run(move |c| {
            let domain = address::domain_of(&addr).to_string();
            if !domain_exists(c, &domain)? {
                return Ok(Recipient::NotHosted);
            }
            if let Some(a) = account_by_address(c, &addr)? {
                return Ok(if a.enabled { Recipient::Local(vec![a]) } else { Recipient::Unknown });
            }
            let targets: Option<String> = c
                .query_row(
                    "SELECT targets FROM aliases WHERE address = ?1 UNION ALL SELECT targets FROM aliases WHERE address = ?2 AND ?3 LIMIT 1",
                    params![addr, format!("@{domain}"), catch_all],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?;
            let Some(targets) = targets else { return Ok(Recipient::Unknown) };
            let mut accounts = Vec::new();
            for t in decode_list(&targets) {
                if let Some(a) = account_by_address(c, &t)?
                    && a.enabled
                {
                    accounts.push(a);
                }
            }
            Ok(if accounts.is_empty() { Recipient::Unknown } else { Recipient::Local(accounts) })
        })
        .await
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        self.run(move |c| {
            let mut s = c
                .prepare(&format!(
                    "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = ?1 ORDER BY m.name"
                ))
                .map_err(err)?;
            let rows = s.query_map([account], mailbox_row).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        let name = rules::mailbox_name(name)?;
        self.run(move |c| {
            c.query_row(
                &format!(
                    "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = ?1 AND m.name = ?2"
                ),
                params![account, name],
                mailbox_row,
            )
            .optional()
            .map_err(err)
        })
        .await
    }

    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let name = rules::mailbox_name(name)?;
        let changes = self.changes.clone();
        let mailbox = self
            .run(move |c| {
                let tx = immediate(c)?;
                let id = insert_mailbox(&tx, account, &name, special_use)?;
                let m = tx
                    .query_row(
                        &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = ?1"),
                        [id],
                        mailbox_row,
                    )
                    .map_err(err)?;
                tx.commit().map_err(err)?;
                Ok(m)
            })
            .await?;
        let _ = changes.send(MailboxChange {
            account,
            mailbox: mailbox.id,
            kind: ChangeKind::Mailboxes,
        });
        Ok(mailbox)
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = rules::rename_names(from, to)?;
        let id = self
            .run(move |c| {
                let tx = immediate(c)?;
                let id: MailboxId = tx
                    .query_row("SELECT id FROM mailboxes WHERE account = ?1 AND name = ?2", params![account, from], |r| r.get(0))
                    .optional()
                    .map_err(err)?
                    .ok_or_else(|| StoreError::NotFound(format!("mailbox {from}")))?;
                tx.execute("UPDATE mailboxes SET name = ?3 WHERE account = ?1 AND name = ?2", params![account, from, to])
                    .map_err(unique(format!("mailbox {to}")))?;
                // Children move along: "from/x" becomes "to/x".
                tx.execute(
                    "UPDATE mailboxes SET name = ?3 || substr(name, length(?2) + 1) WHERE account = ?1 AND substr(name, 1, length(?2) + 1) = ?2 || '/'",
                    params![account, from, to],
                )
                .map_err(unique(format!("a child of mailbox {to}")))?;
                // Subscriptions follow the names; one already there for the new name stays.
                tx.execute(
                    "UPDATE OR REPLACE subscriptions SET name = ?3 || substr(name, length(?2) + 1) WHERE account = ?1 AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')",
                    params![account, from, to],
                )
                .map_err(err)?;
                tx.commit().map_err(err)?;
                Ok(id)
            })
            .await?;
        self.announce([MailboxChange {
            account,
            mailbox: id,
            kind: ChangeKind::Mailboxes,
        }]);
        Ok(())
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = rules::deletable_mailbox(name)?;
        let id = self
            .run(move |c| {
                let tx = immediate(c)?;
                let id: MailboxId = tx
                    .query_row(
                        "SELECT id FROM mailboxes WHERE account = ?1 AND name = ?2",
                        params![account, name],
                        |r| r.get(0),
                    )
                    .optional()
                    .map_err(err)?
                    .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))?;
                tx.execute("DELETE FROM messages WHERE mailbox = ?1", [id])
                    .map_err(err)?;
                tx.execute("DELETE FROM mailboxes WHERE id = ?1", [id])
                    .map_err(err)?;
                tx.commit().map_err(err)?;
                Ok(id)
            })
            .await?;
        self.announce([MailboxChange {
            account,
            mailbox: id,
            kind: ChangeKind::Mailboxes,
        }]);
        Ok(())
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = rules::mailbox_name(name)?;
        self.run(move |c| {
            if subscribed {
                c.execute(
                    "INSERT OR IGNORE INTO subscriptions (account, name) VALUES (?1, ?2)",
                    params![account, name],
                )
                .map_err(err)?;
                return Ok(());
            }
            let n = c
                .execute(
                    "DELETE FROM subscriptions WHERE account = ?1 AND name = ?2",
                    params![account, name],
                )
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("subscription {name}"))
        })
        .await
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        self.run(move |c| {
            let mut s = c
                .prepare("SELECT name FROM subscriptions WHERE account = ?1 ORDER BY name")
                .map_err(err)?;
            let rows = s.query_map([account], |r| r.get(0)).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn claim_recent(&self, mailbox: MailboxId) -> Result<u32> {
        self.run(move |c| {
            let tx = immediate(c)?;
            let old: Option<i64> = tx
                .query_row(
                    "SELECT recent_uid FROM mailboxes WHERE id = ?1",
                    [mailbox],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?;
            let old = old.ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
            tx.execute(
                "UPDATE mailboxes SET recent_uid = uid_next WHERE id = ?1",
                [mailbox],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
            Ok(old as u32)
        })
        .await
    }

    async fn append(
        &self,
        mailbox: MailboxId,
        body: &[u8],
        flags: &[&str],
        internal_date: UnixTime,
    ) -> Result<Appended> {
        let flags = normalize_flags(flags.iter().copied())?;
        let body = body.to_vec();
        let (appended, account) = self
            .run(move |c| {
                let tx = immediate(c)?;
                let blob = insert_blob(&tx, &body)?;
                let r = append_in(&tx, mailbox, blob, body.len() as u64, &flags, internal_date)?;
                tx.commit().map_err(err)?;
                Ok(r)
            })
            .await?;
        self.announce([MailboxChange {
            account,
            mailbox,
            kind: ChangeKind::Appended { uid: appended.uid },
        }]);
        Ok(appended)
    }

    async fn deliver_placed(
        &self,
        placements: &[Placement],
        body: &[u8],
        queue: &[(NewQueueEntry, Option<Vec<u8>>)],
    ) -> Result<(Vec<Appended>, Vec<QueueId>)> {
        for (e, _) in queue {
            check_entry(e)?;
        }
        let mut placements = placements.to_vec();
        for p in &mut placements {
            p.flags = normalize_flags(p.flags.iter().map(String::as_str))?;
            if let Target::Named(n) = &p.target {
                p.target = Target::Named(rules::mailbox_name(n)?);
            }
        }
        let body = body.to_vec();
        let queue = queue.to_vec();
        let (done, queued) = self
            .run(move |c| {
                let tx = immediate(c)?;
                let shared = insert_blob(&tx, &body)?;
                let mut out = Vec::new();
                for p in placements {
                    let named: Option<MailboxId> = match &p.target {
                        Target::Named(name) => tx
                            .query_row(
                                "SELECT id FROM mailboxes WHERE account = ?1 AND name = ?2",
                                params![p.account, name],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(err)?,
                        Target::Folder(_) => None,
                    };
                    let folder = match &p.target {
                        Target::Folder(f) => *f,
                        Target::Named(_) => Folder::Inbox,
                    };
                    let mailbox: MailboxId = match named {
                        Some(id) => id,
                        None => tx
                            .query_row(
                                DELIVERY_MAILBOX,
                                params![p.account, folder.special_use()],
                                |r| r.get(0),
                            )
                            .optional()
                            .map_err(err)?
                            .ok_or_else(|| {
                                StoreError::NotFound(format!("INBOX of account {}", p.account))
                            })?,
                    };
                    let (blob, size) = match &p.body {
                        Some(own) => (insert_blob(&tx, own)?, own.len()),
                        None => (shared, body.len()),
                    };
                    out.push(append_in(&tx, mailbox, blob, size as u64, &p.flags, now())?);
                }
                let mut queued = Vec::new();
                for (e, own) in &queue {
                    queued.push(enqueue_in(&tx, e, own.as_deref().unwrap_or(&body))?);
                }
                tx.commit().map_err(err)?;
                Ok((out, queued))
            })
            .await?;
        self.announce(done.iter().map(|(a, account)| MailboxChange {
            account: *account,
            mailbox: a.mailbox,
            kind: ChangeKind::Appended { uid: a.uid },
        }));
        Ok((done.into_iter().map(|(a, _)| a).collect(), queued))
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        self.run(move |c| {
            let mut s = c
                .prepare("SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox = ?1 ORDER BY uid")
                .map_err(err)?;
            let rows = s.query_map([mailbox], message_row(mailbox)).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn messages_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<MessageMeta>> {
        let modseq = i64::try_from(modseq).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut s = c
                .prepare_cached("SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid")
                .map_err(err)?;
            let rows = s.query_map(params![mailbox, modseq], message_row(mailbox)).map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn expunged_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<u32>> {
        let modseq = i64::try_from(modseq).unwrap_or(i64::MAX);
        self.run(move |c| {
            let mut s = c
                .prepare_cached(
                    "SELECT uid FROM expunged WHERE mailbox = ?1 AND modseq > ?2 ORDER BY uid",
                )
                .map_err(err)?;
            let rows = s
                .query_map(params![mailbox, modseq], |r| r.get::<_, i64>(0))
                .map_err(err)?;
            rows.map(|r| r.map(|u| u as u32))
                .collect::<rusqlite::Result<_>>()
                .map_err(err)
        })
        .await
    }

    async fn message_body(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>> {
        self.run(move |c| {
            c.query_row(
                "SELECT b.data FROM messages m JOIN blobs b ON b.id = m.blob WHERE m.mailbox = ?1 AND m.uid = ?2",
                params![mailbox, uid],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)
        })
        .await
    }

    async fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        change: FlagChange,
        flags: &[&str],
    ) -> Result<Vec<MessageMeta>> {
        let flags = normalize_flags(flags.iter().copied())?;
        let uids = uids.to_vec();
        let (account, changed) = self
            .run(move |c| {
                let tx = immediate(c)?;
                let (account, mut modseq) = mailbox_account(&tx, mailbox)?;
                let mut changed = Vec::new();
                for uid in uids {
                    let Some(mut meta) = tx
                        .query_row(
                            "SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox = ?1 AND uid = ?2",
                            params![mailbox, uid],
                            message_row(mailbox),
                        )
                        .optional()
                        .map_err(err)?
                    else {
                        continue;
                    };
                    if let Some(next) = rules::apply_flags(&meta.flags, change, &flags) {
                        modseq += 1;
                        tx.execute(
                            "UPDATE messages SET flags = ?3, modseq = ?4 WHERE mailbox = ?1 AND uid = ?2",
                            params![mailbox, uid, encode_flags(&next), modseq],
                        )
                        .map_err(err)?;
                        meta.flags = next;
                        meta.modseq = modseq as u64;
                        changed.push(meta);
                    }
                }
                tx.execute("UPDATE mailboxes SET highest_modseq = ?2 WHERE id = ?1", params![mailbox, modseq]).map_err(err)?;
                tx.commit().map_err(err)?;
                Ok((account, changed))
            })
            .await?;
        if !changed.is_empty() {
            let uids = changed.iter().map(|m| m.uid).collect();
            self.announce([MailboxChange {
                account,
                mailbox,
                kind: ChangeKind::Flags { uids },
            }]);
        }
        Ok(changed)
    }

    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<u32>> {
        let uids = uids.to_vec();
        let (account, removed) = self
            .run(move |c| {
                let tx = immediate(c)?;
                let (account, modseq) = mailbox_account(&tx, mailbox)?;
                let mut removed = Vec::new();
                for uid in uids {
                    if tx
                        .execute(
                            "DELETE FROM messages WHERE mailbox = ?1 AND uid = ?2",
                            params![mailbox, uid],
                        )
                        .map_err(err)?
                        > 0
                    {
                        removed.push(uid);
                    }
                }
                if !removed.is_empty() {
                    tx.execute(
                        "UPDATE mailboxes SET highest_modseq = ?2 WHERE id = ?1",
                        params![mailbox, modseq + 1],
                    )
                    .map_err(err)?;
                    for uid in &removed {
                        tx.execute(
                            "INSERT OR REPLACE INTO expunged (mailbox, uid, modseq) VALUES (?1, ?2, ?3)",
                            params![mailbox, uid, modseq + 1],
                        )
                        .map_err(err)?;
                    }
                }
                tx.commit().map_err(err)?;
                Ok((account, removed))
            })
            .await?;
        if !removed.is_empty() {
            self.announce([MailboxChange {
                account,
                mailbox,
                kind: ChangeKind::Expunged {
                    uids: removed.clone(),
                },
            }]);
        }
        Ok(removed)
    }

    async fn copy(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>> {
        let uids = uids.to_vec();
        let (account, pairs) = self
            .run(move |c| {
                let tx = immediate(c)?;
                mailbox_account(&tx, from)?;
                let mut pairs = Vec::new();
                let mut account = 0;
                for uid in uids {
                    let row: Option<(String, i64, i64, i64)> = tx
                        .query_row(
                            "SELECT flags, internal_date, size, blob FROM messages WHERE mailbox = ?1 AND uid = ?2",
                            params![from, uid],
                            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                        )
                        .optional()
                        .map_err(err)?;
                    let Some((flags, date, size, blob)) = row else { continue };
                    let (a, acc) = append_in(&tx, to, blob, to_u64(size), &decode_flags(&flags), date)?;
                    account = acc;
                    pairs.push((uid, a.uid));
                }
                tx.commit().map_err(err)?;
                Ok((account, pairs))
            })
            .await?;
        self.announce(pairs.iter().map(|(_, uid)| MailboxChange {
            account,
            mailbox: to,
            kind: ChangeKind::Appended { uid: *uid },
        }));
        Ok(pairs)
    }

    fn subscribe(&self) -> broadcast::Receiver<MailboxChange> {
        self.changes.subscribe()
    }

    async fn enqueue(&self, entry: &NewQueueEntry, body: &[u8]) -> Result<QueueId> {
        check_entry(entry)?;
        let entry = entry.clone();
        let body = body.to_vec();
        self.run(move |c| {
            let tx = immediate(c)?;
            let id = enqueue_in(&tx, &entry, &body)?;
            tx.commit().map_err(err)?;
            Ok(id)
        })
        .await
    }

    async fn lease(
        &self,
        holder: &str,
        now: UnixTime,
        lease_secs: u32,
        limit: u32,
    ) -> Result<Vec<QueueEntry>> {
        let holder = holder.to_string();
        self.run(move |c| {
            let tx = immediate(c)?;
            let ids: Vec<i64> = {
                let mut s = tx
                    .prepare(
                        "SELECT id FROM queue WHERE next_attempt <= ?1 AND (lease_expires IS NULL OR lease_expires <= ?1) \
                         ORDER BY next_attempt, id LIMIT ?2",
                    )
                    .map_err(err)?;
                let rows = s.query_map(params![now, limit], |r| r.get(0)).map_err(err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(err)?
            };
            for id in &ids {
                tx.execute(
                    "UPDATE queue SET lease_holder = ?2, lease_expires = ?3 WHERE id = ?1",
                    params![id, holder, now + i64::from(lease_secs)],
                )
                .map_err(err)?;
            }
            let mut entries = Vec::new();
            for id in ids {
                entries.extend(load_queue_entries(&tx, "WHERE id = ?1", &[&id])?);
            }
            tx.commit().map_err(err)?;
            Ok(entries)
        })
        .await
    }

    async fn queue_body(&self, id: QueueId) -> Result<Option<Vec<u8>>> {
        self.run(move |c| {
            c.query_row("SELECT body FROM queue WHERE id = ?1", [id], |r| r.get(0))
                .optional()
                .map_err(err)
        })
        .await
    }

    async fn finish_attempt(
        &self,
        id: QueueId,
        holder: &str,
        results: &[(String, RecipientStatus, Option<String>)],
        next_attempt: UnixTime,
    ) -> Result<()> {
        let holder = holder.to_string();
        let results = results.to_vec();
        self.run(move |c| {
            let tx = immediate(c)?;
            let current: Option<Option<String>> =
                tx.query_row("SELECT lease_holder FROM queue WHERE id = ?1", [id], |r| r.get(0)).optional().map_err(err)?;
            match current {
                None => return Err(StoreError::NotFound(format!("queue entry {id}"))),
                Some(h) if h.as_deref() != Some(holder.as_str()) => return Err(StoreError::LeaseLost(id)),
                Some(_) => {}
            }
            let at = now();
            for (addr, status, error) in &results {
                tx.execute(
                    "UPDATE queue_recipients SET status = ?3, last_error = ?4 WHERE queue = ?1 AND address = ?2",
                    params![id, addr, status.as_str(), error],
                )
                .map_err(err)?;
                tx.execute(
                    "INSERT INTO queue_attempts (queue, at, recipient, status, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![id, at, addr, status.as_str(), error],
                )
                .map_err(err)?;
            }
            let pending: i64 = tx
                .query_row("SELECT count(*) FROM queue_recipients WHERE queue = ?1 AND status = 'pending'", [id], |r| r.get(0))
                .map_err(err)?;
            if pending == 0 {
                tx.execute("DELETE FROM queue WHERE id = ?1", [id]).map_err(err)?;
            } else {
                tx.execute(
                    "UPDATE queue SET attempts = attempts + 1, next_attempt = ?2, lease_holder = NULL, lease_expires = NULL WHERE id = ?1",
                    params![id, next_attempt],
                )
                .map_err(err)?;
            }
            tx.commit().map_err(err)
        })
        .await
    }

    async fn queue(&self) -> Result<Vec<QueueEntry>> {
        self.run(|c| load_queue_entries(c, "", &[])).await
    }

    async fn queue_attempts(&self, id: QueueId) -> Result<Vec<QueueAttempt>> {
        self.run(move |c| {
            let mut s = c
                .prepare(
                    "SELECT at, recipient, status, detail FROM queue_attempts WHERE queue = ?1 ORDER BY at, rowid",
                )
                .map_err(err)?;
            let rows = s
                .query_map([id], |r| {
                    let status: String = r.get(2)?;
                    Ok(QueueAttempt {
                        at: r.get(0)?,
                        recipient: r.get(1)?,
                        status: RecipientStatus::parse(&status).unwrap_or(RecipientStatus::Pending),
                        detail: r.get(3)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn retry_queue_entry(&self, id: QueueId, now: UnixTime) -> Result<()> {
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE queue SET next_attempt = ?2 WHERE id = ?1 \
                     AND (lease_expires IS NULL OR lease_expires <= ?2)",
                    params![id, now],
                )
                .map_err(err)?;
            queue_change(c, id, n)
        })
        .await
    }

    async fn delete_queue_entry(&self, id: QueueId, now: UnixTime) -> Result<()> {
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM queue WHERE id = ?1 AND (lease_expires IS NULL OR lease_expires <= ?2)",
                    params![id, now],
                )
                .map_err(err)?;
            queue_change(c, id, n)
        })
        .await
    }

    async fn app_password_account(&self, addr: &str, secret: &str) -> Result<Option<Account>> {
        let Ok(addr) = address::normalize(addr) else {
            return Ok(None);
        };
        let secret = secret.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT a.id, a.address, a.domain, a.quota, a.enabled, a.created FROM app_passwords p \
                 JOIN accounts a ON a.id = p.account WHERE a.address = ?1 AND p.secret = ?2 AND a.enabled",
                params![addr, secret],
                account_row,
            )
            .optional()
            .map_err(err)
        })
        .await
    }

    async fn add_app_password(
        &self,
        account: AccountId,
        name: &str,
        secret: &str,
        created: UnixTime,
    ) -> Result<()> {
        let (name, secret) = (name.to_string(), secret.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT INTO app_passwords (account, name, secret, created) VALUES (?1, ?2, ?3, ?4)",
                params![account, name, secret, created],
            )
            .map_err(unique(format!("app password {name:?}")))?;
            Ok(())
        })
        .await
    }

    async fn app_passwords(&self, account: AccountId) -> Result<Vec<(String, UnixTime)>> {
        self.run(move |c| {
            let mut s = c
                .prepare("SELECT name, created FROM app_passwords WHERE account = ?1 ORDER BY name")
                .map_err(err)?;
            let rows = s
                .query_map([account], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn delete_app_password(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_string();
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM app_passwords WHERE account = ?1 AND name = ?2",
                    params![account, name],
                )
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("app password {name:?}"))
        })
        .await
    }

    async fn admin_scopes(&self, account: AccountId) -> Result<Vec<AdminScope>> {
        self.run(move |c| {
            let mut s = c
                .prepare("SELECT domain FROM admin_roles WHERE account = ?1 ORDER BY domain")
                .map_err(err)?;
            let rows = s
                .query_map([account], |r| r.get::<_, String>(0))
                .map_err(err)?;
            rows.map(|r| r.map(AdminScope::from_stored))
                .collect::<rusqlite::Result<_>>()
                .map_err(err)
        })
        .await
    }

    async fn set_admin_scope(
        &self,
        address: &str,
        scope: &AdminScope,
        granted: bool,
    ) -> Result<()> {
        let address = address::normalize(address)?;
        let domain = match scope {
            AdminScope::Server => String::new(),
            AdminScope::Domain(d) => address::normalize_domain(d)?,
        };
        self.run(move |c| {
            let Some(a) = account_by_address(c, &address)? else {
                return Err(StoreError::NotFound(format!("account {address}")));
            };
            if !domain.is_empty() && !domain_exists(c, &domain)? {
                return Err(StoreError::NotFound(format!("domain {domain}")));
            }
            if granted {
                c.execute(
                    "INSERT INTO admin_roles (account, domain) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                    params![a.id, domain],
                )
            } else {
                c.execute(
                    "DELETE FROM admin_roles WHERE account = ?1 AND domain = ?2",
                    params![a.id, domain],
                )
            }
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn put_web_session(&self, w: &WebSession) -> Result<()> {
        let w = w.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO web_sessions (id, account, csrf, created, expires) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![w.id, w.account, w.csrf, w.created, w.expires],
            )
            .map_err(unique("session".into()))?;
            // Bounded: the account's oldest sessions beyond the newest few end.
            c.execute(
                "DELETE FROM web_sessions WHERE account = ?1 AND id NOT IN \
                 (SELECT id FROM web_sessions WHERE account = ?1 ORDER BY created DESC, id LIMIT ?2)",
                params![w.account, crate::MAX_WEB_SESSIONS],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn web_session(&self, id: &str, now: UnixTime) -> Result<Option<(WebSession, Account)>> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT a.id, a.address, a.domain, a.quota, a.enabled, a.created, \
                 s.id, s.csrf, s.created, s.expires FROM web_sessions s \
                 JOIN accounts a ON a.id = s.account \
                 WHERE s.id = ?1 AND s.expires > ?2 AND a.enabled",
                params![id, now],
                |r| {
                    let a = account_row(r)?;
                    Ok((
                        WebSession {
                            id: r.get(6)?,
                            account: a.id,
                            csrf: r.get(7)?,
                            created: r.get(8)?,
                            expires: r.get(9)?,
                        },
                        a,
                    ))
                },
            )
            .optional()
            .map_err(err)
        })
        .await
    }

    async fn delete_web_session(&self, id: &str) -> Result<()> {
        let id = id.to_string();
        self.run(move |c| {
            c.execute("DELETE FROM web_sessions WHERE id = ?1", [id])
                .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn prune_web_sessions(&self, now: UnixTime) -> Result<u64> {
        self.run(move |c| {
            let n = c
                .execute("DELETE FROM web_sessions WHERE expires <= ?1", [now])
                .map_err(err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn put_api_token(&self, t: &ApiToken) -> Result<()> {
        let t = t.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO api_tokens (id, account, name, secret, created, expires) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![t.id, t.account, t.name, t.secret, t.created, t.expires],
            )
            .map_err(unique(format!("token {:?}", t.name)))?;
            Ok(())
        })
        .await
    }

    async fn api_token(&self, id: &str) -> Result<Option<(ApiToken, Account)>> {
        let id = id.to_string();
        self.run(move |c| {
            c.query_row(
                "SELECT a.id, a.address, a.domain, a.quota, a.enabled, a.created, \
                 t.id, t.name, t.secret, t.created, t.expires FROM api_tokens t \
                 JOIN accounts a ON a.id = t.account WHERE t.id = ?1 AND a.enabled",
                [id],
                |r| {
                    let a = account_row(r)?;
                    Ok((
                        ApiToken {
                            id: r.get(6)?,
                            account: a.id,
                            name: r.get(7)?,
                            secret: r.get(8)?,
                            created: r.get(9)?,
                            expires: r.get(10)?,
                        },
                        a,
                    ))
                },
            )
            .optional()
            .map_err(err)
        })
        .await
    }

    async fn api_tokens(&self, account: AccountId) -> Result<Vec<ApiToken>> {
        self.run(move |c| {
            let mut s = c
                .prepare(
                    "SELECT id, account, name, secret, created, expires FROM api_tokens \
                     WHERE account = ?1 ORDER BY name",
                )
                .map_err(err)?;
            let rows = s
                .query_map([account], |r| {
                    Ok(ApiToken {
                        id: r.get(0)?,
                        account: r.get(1)?,
                        name: r.get(2)?,
                        secret: r.get(3)?,
                        created: r.get(4)?,
                        expires: r.get(5)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn delete_api_token(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_string();
        self.run(move |c| {
            let n = c
                .execute(
                    "DELETE FROM api_tokens WHERE account = ?1 AND name = ?2",
                    params![account, name],
                )
                .map_err(err)?;
            rules::not_found_if_zero(n as u64, || format!("token {name:?}"))
        })
        .await
    }

    async fn record_tls_event(&self, e: &TlsOutcome, at: UnixTime) -> Result<()> {
        let e = rules::TlsEventRow::of(e);
        self.run(move |c| {
            c.execute(
                "INSERT INTO tls_events (policy_domain, policy_type, policy_strings, mx_host, failure, receiving_ip, sending_ip, receiving_helo, detail, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![e.policy_domain, e.policy_type, e.policy_strings, e.mx_host, e.failure, e.receiving_ip, e.sending_ip, e.receiving_helo, e.detail, at],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn tls_events(&self, from: UnixTime, until: UnixTime) -> Result<Vec<TlsOutcome>> {
        self.run(move |c| {
            let mut s = c
                .prepare(
                    "SELECT policy_domain, policy_type, policy_strings, mx_host, failure, receiving_ip, sending_ip, receiving_helo, detail \
                     FROM tls_events WHERE at >= ?1 AND at < ?2 ORDER BY at, id",
                )
                .map_err(err)?;
            let rows = s
                .query_map(params![from, until], |r| {
                    Ok(rules::TlsEventRow {
                        policy_domain: r.get(0)?,
                        policy_type: r.get(1)?,
                        policy_strings: r.get(2)?,
                        mx_host: r.get(3)?,
                        failure: r.get(4)?,
                        receiving_ip: r.get(5)?,
                        sending_ip: r.get(6)?,
                        receiving_helo: r.get(7)?,
                        detail: r.get(8)?,
                    }
                    .outcome())
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn store_report(&self, report_domain: &str, submitter: &str, json: &[u8]) -> Result<i64> {
        let (d, s, j) = (
            report_domain.to_string(),
            submitter.to_string(),
            json.to_vec(),
        );
        self.run(move |c| {
            c.execute(
                "INSERT INTO tlsrpt_reports (report_domain, submitter, received, json) VALUES (?1, ?2, ?3, ?4)",
                params![d, s, now(), j],
            )
            .map_err(err)?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn reports(&self) -> Result<Vec<ReceivedReport>> {
        self.run(|c| {
            let mut s = c
                .prepare("SELECT id, report_domain, submitter, received, json FROM tlsrpt_reports ORDER BY id")
                .map_err(err)?;
            let rows = s
                .query_map([], |r| {
                    Ok(ReceivedReport {
                        id: r.get(0)?,
                        report_domain: r.get(1)?,
                        submitter: r.get(2)?,
                        received: r.get(3)?,
                        json: r.get(4)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn put_sts_policy(&self, p: &CachedStsPolicy) -> Result<()> {
        let p = p.clone();
        self.run(move |c| {
            c.execute(
                "INSERT INTO sts_policies (domain, record_id, policy, fetched, expires) VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (domain) DO UPDATE SET record_id = ?2, policy = ?3, fetched = ?4, expires = ?5",
                params![p.domain, p.record_id, p.policy, p.fetched, p.expires],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn claim_report(
        &self,
        kind: ReportKind,
        domain: &str,
        day: UnixTime,
        report_id: &str,
        now: UnixTime,
    ) -> Result<bool> {
        let (domain, report_id) = (domain.to_ascii_lowercase(), report_id.to_string());
        let sql = format!(
            "INSERT INTO {} (domain, day, report_id, at) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (domain, day) DO NOTHING",
            rules::claim_table(kind)
        );
        self.run(move |c| {
            let n = c
                .execute(&sql, params![domain, day, report_id, now])
                .map_err(err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn sent_reports(
        &self,
        kind: ReportKind,
        since: UnixTime,
    ) -> Result<Vec<(String, UnixTime, String, UnixTime)>> {
        let sql = format!(
            "SELECT domain, day, report_id, at FROM {} WHERE day >= ?1 ORDER BY day DESC, domain",
            rules::claim_table(kind)
        );
        self.run(move |c| {
            let mut s = c.prepare(&sql).map_err(err)?;
            let rows = s
                .query_map([since], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn release_report(&self, kind: ReportKind, domain: &str, day: UnixTime) -> Result<()> {
        let domain = domain.to_ascii_lowercase();
        let sql = format!(
            "DELETE FROM {} WHERE domain = ?1 AND day = ?2",
            rules::claim_table(kind)
        );
        self.run(move |c| {
            c.execute(&sql, params![domain, day]).map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn record_dmarc_event(&self, e: &DmarcEvent, at: UnixTime) -> Result<()> {
        let (domain, json) = (e.policy_domain.to_ascii_lowercase(), rules::event_json(e)?);
        self.run(move |c| {
            c.execute(
                "INSERT INTO dmarc_events (policy_domain, at, event) VALUES (?1, ?2, ?3)",
                params![domain, at, json],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn dmarc_events(&self, from: UnixTime, until: UnixTime) -> Result<Vec<DmarcEvent>> {
        let rows: Vec<String> = self
            .run(move |c| {
                let mut s = c
                    .prepare(
                        "SELECT event FROM dmarc_events WHERE at >= ?1 AND at < ?2 ORDER BY at, id",
                    )
                    .map_err(err)?;
                let rows = s
                    .query_map(params![from, until], |r| r.get(0))
                    .map_err(err)?;
                rows.collect::<rusqlite::Result<_>>().map_err(err)
            })
            .await?;
        rows.iter().map(|j| rules::event_of(j)).collect()
    }

    async fn prune_report_events(&self, before: UnixTime) -> Result<u64> {
        self.run(move |c| {
            let t = c.transaction().map_err(err)?;
            let mut n = t
                .execute("DELETE FROM dmarc_events WHERE at < ?1", [before])
                .map_err(err)?;
            n += t
                .execute("DELETE FROM tls_events WHERE at < ?1", [before])
                .map_err(err)?;
            t.commit().map_err(err)?;
            Ok(n as u64)
        })
        .await
    }

    async fn store_dmarc_report(
        &self,
        policy_domain: &str,
        reporter: &str,
        xml: &[u8],
    ) -> Result<i64> {
        let (d, r, x) = (
            policy_domain.to_ascii_lowercase(),
            reporter.to_ascii_lowercase(),
            xml.to_vec(),
        );
        self.run(move |c| {
            c.execute(
                "INSERT INTO dmarc_reports (policy_domain, reporter, received, xml) VALUES (?1, ?2, ?3, ?4)",
                params![d, r, now(), x],
            )
            .map_err(err)?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    async fn dmarc_reports(&self) -> Result<Vec<ReceivedDmarcReport>> {
        self.run(|c| {
            let mut s = c
                .prepare("SELECT id, policy_domain, reporter, received, xml FROM dmarc_reports ORDER BY id")
                .map_err(err)?;
            let rows = s
                .query_map([], |r| {
                    Ok(ReceivedDmarcReport {
                        id: r.get(0)?,
                        policy_domain: r.get(1)?,
                        reporter: r.get(2)?,
                        received: r.get(3)?,
                        xml: r.get(4)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn sts_policy(&self, domain: &str) -> Result<Option<CachedStsPolicy>> {
        let domain = domain.to_ascii_lowercase();
        self.run(move |c| {
            c.query_row(
                "SELECT domain, record_id, policy, fetched, expires FROM sts_policies WHERE domain = ?1",
                [domain],
                |r| {
                    Ok(CachedStsPolicy {
                        domain: r.get(0)?,
                        record_id: r.get(1)?,
                        policy: r.get(2)?,
                        fetched: r.get(3)?,
                        expires: r.get(4)?,
                    })
                },
            )
            .optional()
            .map_err(err)
        })
        .await
    }

    async fn sieve_scripts(&self, account: AccountId) -> Result<Vec<SieveScript>> {
        self.run(move |c| {
            let mut s = c
                .prepare("SELECT name, active, content FROM sieve_scripts WHERE account = ?1 ORDER BY name")
                .map_err(err)?;
            let rows = s
                .query_map([account], |r| {
                    Ok(SieveScript {
                        name: r.get(0)?,
                        active: r.get(1)?,
                        content: r.get(2)?,
                    })
                })
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn sieve_active(&self, accounts: &[AccountId]) -> Result<Vec<AccountId>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let accounts = accounts.to_vec();
        self.run(move |c| {
            let marks = vec!["?"; accounts.len()].join(", ");
            let mut s = c
                .prepare(&format!(
                    "SELECT DISTINCT account FROM sieve_scripts WHERE active AND account IN ({marks})"
                ))
                .map_err(err)?;
            let rows = s
                .query_map(rusqlite::params_from_iter(accounts.iter()), |r| r.get(0))
                .map_err(err)?;
            rows.collect::<rusqlite::Result<_>>().map_err(err)
        })
        .await
    }

    async fn put_sieve_script(&self, account: AccountId, name: &str, content: &str) -> Result<()> {
        let (name, content) = (rules::sieve_name(name)?, content.to_string());
        self.run(move |c| {
            c.execute(
                "INSERT INTO sieve_scripts (account, name, content, active) VALUES (?1, ?2, ?3, FALSE) \
                 ON CONFLICT (account, name) DO UPDATE SET content = ?3",
                params![account, name, content],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn delete_sieve_script(&self, account: AccountId, name: &str) -> Result<()> {
        let name = name.to_string();
        self.run(move |c| {
            let active: Option<bool> = c
                .query_row(
                    "SELECT active FROM sieve_scripts WHERE account = ?1 AND name = ?2",
                    params![account, name],
                    |r| r.get(0),
                )
                .optional()
                .map_err(err)?;
            match active {
                None => Err(StoreError::NotFound(format!("script {name:?}"))),
                Some(true) => Err(StoreError::Invalid(format!(
                    "script {name:?} is active: activate another (or none) first"
                ))),
                Some(false) => {
                    c.execute(
                        "DELETE FROM sieve_scripts WHERE account = ?1 AND name = ?2",
                        params![account, name],
                    )
                    .map_err(err)?;
                    Ok(())
                }
            }
        })
        .await
    }

    async fn rename_sieve_script(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = (from.to_string(), rules::sieve_name(to)?);
        self.run(move |c| {
            let t = c.transaction().map_err(err)?;
            let taken: i64 = t
                .query_row(
                    "SELECT COUNT(*) FROM sieve_scripts WHERE account = ?1 AND name = ?2",
                    params![account, to],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if taken > 0 {
                return Err(StoreError::Exists(format!("script {to:?}")));
            }
            let n = t
                .execute(
                    "UPDATE sieve_scripts SET name = ?3 WHERE account = ?1 AND name = ?2",
                    params![account, from, to],
                )
                .map_err(err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("script {from:?}")));
            }
            t.commit().map_err(err)
        })
        .await
    }

    async fn activate_sieve_script(&self, account: AccountId, name: Option<&str>) -> Result<()> {
        let name = name.map(str::to_string);
        self.run(move |c| {
            let t = c.transaction().map_err(err)?;
            t.execute(
                "UPDATE sieve_scripts SET active = FALSE WHERE account = ?1",
                [account],
            )
            .map_err(err)?;
            if let Some(name) = &name {
                let n = t
                    .execute(
                        "UPDATE sieve_scripts SET active = TRUE WHERE account = ?1 AND name = ?2",
                        params![account, name],
                    )
                    .map_err(err)?;
                if n == 0 {
                    return Err(StoreError::NotFound(format!("script {name:?}")));
                }
            }
            t.commit().map_err(err)
        })
        .await
    }

    async fn vacation_reply_due(
        &self,
        account: AccountId,
        sender: &str,
        handle: &str,
        now: UnixTime,
        period: i64,
        per_day: u32,
    ) -> Result<bool> {
        let (sender, handle) = (sender.to_ascii_lowercase(), handle.to_string());
        self.run(move |c| {
            // One statement: a reply is due when there is no record or it is older than the
            // period; only then is the time written.
            let n = c
                .execute(
                    "INSERT INTO vacation_replies (account, sender, handle, sent) SELECT ?1, ?2, ?3, ?4 \
                     WHERE (SELECT count(*) FROM vacation_replies WHERE account = ?1 AND sent > ?4 - 86400) < ?6 \
                     ON CONFLICT (account, sender, handle) DO UPDATE SET sent = ?4 \
                     WHERE vacation_replies.sent <= ?4 - ?5",
                    params![account, sender, handle, now, period, per_day],
                )
                .map_err(err)?;
            Ok(n == 1)
        })
        .await
    }

    async fn greylist_get(&self, t: &GreyTriplet) -> Result<Option<GreyRecord>> {
        let t = t.clone();
        self.run(move |c| {
            c.query_row(
                "SELECT first_seen, last_seen, passed FROM greylist \
                 WHERE network = ?1 AND sender = ?2 AND recipient = ?3",
                params![t.network, t.sender, t.recipient],
                |r| {
                    Ok(GreyRecord {
                        first_seen: r.get(0)?,
                        last_seen: r.get(1)?,
                        passed: r.get(2)?,
                    })
                },
            )
            .optional()
            .map_err(err)
        })
        .await
    }

    async fn greylist_put(&self, t: &GreyTriplet, g: &GreyRecord) -> Result<()> {
        let (t, g) = (t.clone(), *g);
        self.run(move |c| {
            c.execute(
                "INSERT INTO greylist (network, sender, recipient, first_seen, last_seen, passed) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (network, sender, recipient) \
                 DO UPDATE SET first_seen = ?4, last_seen = ?5, passed = ?6",
                params![
                    t.network,
                    t.sender,
                    t.recipient,
                    g.first_seen,
                    g.last_seen,
                    g.passed
                ],
            )
            .map_err(err)?;
            Ok(())
        })
        .await
    }

    async fn greylist_prune(&self, before: UnixTime) -> Result<u64> {
        self.run(move |c| {
            let n = c
                .execute("DELETE FROM greylist WHERE last_seen < ?1", [before])
                .map_err(err)?;
            Ok(n as u64)
        })
        .await
    }
}
