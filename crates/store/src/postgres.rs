//! The PostgreSQL backend: several Kurier nodes share one database. Everything, message bodies
//! included, lives in the database, so every node sees the same data. Queue leases use
//! `FOR UPDATE SKIP LOCKED`; mailbox changes travel as `NOTIFY kurier_changes` so that IMAP
//! sessions on every node hear them (the notification is sent at commit).
//!
//! Counters (UIDNEXT, MODSEQ, quota usage) are updated under a row lock of the mailbox and the
//! account (`FOR UPDATE`), which makes concurrent appends from any node safe.

use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Transaction,
};
use tokio::sync::broadcast;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, NoTls, Row};

use crate::check_entry;
use crate::rules::{self, decode_flags, decode_list, encode_flags, encode_list, to_u64};
use crate::schema::POSTGRES;
use crate::{
    Account, AccountId, Alias, Appended, CachedStsPolicy, ChangeKind, DEFAULT_MAILBOXES,
    DmarcEvent, Domain, FlagChange, Folder, Mailbox, MailboxChange, MailboxId, MessageDsn,
    MessageMeta, NewQueueEntry, QueueEntry, QueueId, QueueRecipient, ReceivedDmarcReport,
    ReceivedReport, Recipient, RecipientStatus, ReportKind, Result, SpecialUse, Store, StoreError,
    TlsOutcome, UnixTime, address, normalize_flags, now, password,
};
use crate::{AdminScope, ApiToken, QueueAttempt, WebSession};
use crate::{GreyRecord, GreyTriplet, Placement, SieveScript, Target};

/// The NOTIFY channel for mailbox changes.
const CHANNEL: &str = "kurier_changes";
/// Serializes schema migrations of nodes that start at the same time.
const MIGRATION_LOCK: i64 = 0x4B55_5249;

pub struct PostgresStore {
    pool: Pool,
    changes: broadcast::Sender<MailboxChange>,
}

fn err(e: tokio_postgres::Error) -> StoreError {
    match e.code() {
        Some(c)
            if *c == SqlState::DISK_FULL
                || *c == SqlState::TOO_MANY_CONNECTIONS
                || *c == SqlState::ADMIN_SHUTDOWN
                || *c == SqlState::CANNOT_CONNECT_NOW
                || *c == SqlState::T_R_SERIALIZATION_FAILURE
                || *c == SqlState::T_R_DEADLOCK_DETECTED
                || *c == SqlState::OUT_OF_MEMORY =>
        {
            StoreError::Unavailable(e.to_string())
        }
        Some(_) => StoreError::Backend(e.to_string()),
        // No SQLSTATE: the connection itself failed.
        None => StoreError::Unavailable(format!("PostgreSQL: {e}")),
    }
}

fn unique(what: String) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::Exists(what)
        } else {
            err(e)
        }
    }
}

type Client = deadpool_postgres::Object;

impl PostgresStore {
    /// Connects (URL or libpq key=value string), migrates the schema, starts the NOTIFY listener.
    pub async fn connect(conninfo: &str) -> Result<Self> {
        let config = tokio_postgres::Config::from_str(conninfo)
            .map_err(|e| StoreError::Invalid(format!("PostgreSQL connection string: {e}")))?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(16)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(10)))
            .create_timeout(Some(Duration::from_secs(10)))
            .build()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))?;
        let store = PostgresStore {
            pool,
            changes: broadcast::channel(1024).0,
        };
        let mut c = store.client().await?;
        migrate(&mut c).await?;
        drop(c);
        // Listen before returning, so that no change after `connect` is missed.
        let first = listen(&config).await?;
        tokio::spawn(change_feed(config, first, store.changes.clone()));
        Ok(store)
    }

    async fn client(&self) -> Result<Client> {
        self.pool
            .get()
            .await
            .map_err(|e| StoreError::Unavailable(format!("PostgreSQL: {e}")))
    }
}

/// A connection that has run `LISTEN` on the change channel.
type Listening = (
    tokio_postgres::Client,
    tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
);

/// Connects and runs LISTEN, driving the connection while the command completes.
async fn listen(config: &tokio_postgres::Config) -> Result<Listening> {
    let (client, mut connection) = config.connect(NoTls).await.map_err(err)?;
    let sql = format!("LISTEN {CHANNEL}");
    {
        let listen = client.batch_execute(&sql);
        tokio::pin!(listen);
        loop {
            tokio::select! {
                r = &mut listen => {
                    r.map_err(err)?;
                    break;
                }
                m = std::future::poll_fn(|cx| connection.poll_message(cx)) => match m {
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(err(e)),
                    None => return Err(StoreError::Unavailable("PostgreSQL: connection closed during LISTEN".into())),
                }
            }
        }
    }
    Ok((client, connection))
}

/// Hands every notification to the local subscribers, for as long as the process runs: when
/// the connection breaks (database restart, network) it reconnects with a growing pause
/// (1 s … 30 s), logs once per state change, and after reconnecting tells every subscriber
/// that it may have missed changes (`ChangeKind::Missed`), so IDLE sessions re-read their
/// mailbox instead of going deaf for good.
async fn change_feed(
    config: tokio_postgres::Config,
    first: Listening,
    sender: broadcast::Sender<MailboxChange>,
) {
    let mut current = Some(first);
    let mut pause = Duration::from_secs(1);
    loop {
        let (client, mut connection) = match current.take() {
            Some(c) => c,
            None => match listen(&config).await {
                Ok(c) => {
                    tracing::info!(
                        "PostgreSQL change listener reconnected; sessions re-read their mailboxes"
                    );
                    let _ = sender.send(MailboxChange {
                        account: 0,
                        mailbox: 0,
                        kind: ChangeKind::Missed,
                    });
                    pause = Duration::from_secs(1);
                    c
                }
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(30));
                    continue;
                }
            },
        };
        let why = loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    if let Some(change) = decode_change(n.payload()) {
                        let _ = sender.send(change);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => break e.to_string(),
                None => break "connection closed".to_string(),
            }
        };
        drop(client);
        tracing::error!(error = %why, "PostgreSQL change listener lost its connection; IMAP IDLE does not hear other nodes until it reconnects");
        tokio::time::sleep(pause).await;
    }
}

async fn migrate(c: &mut Client) -> Result<()> {
    let tx = c.transaction().await.map_err(err)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(err)?;
    tx.batch_execute("CREATE TABLE IF NOT EXISTS kurier_schema (version BIGINT NOT NULL)")
        .await
        .map_err(err)?;
    let version: i64 = tx
        .query_opt("SELECT version FROM kurier_schema", &[])
        .await
        .map_err(err)?
        .map(|r| r.get(0))
        .unwrap_or(0);
    if version as usize > POSTGRES.len() {
        return Err(StoreError::Backend(format!(
            "the database has schema version {version}, newer than this Kurier knows ({}); upgrade Kurier",
            POSTGRES.len()
        )));
    }
    if version == 0 {
        let foreign: i64 = tx
            .query_one(
                "SELECT count(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name <> 'kurier_schema'",
                &[],
            )
            .await
            .map_err(err)?
            .get(0);
        if foreign > 0 {
            return Err(StoreError::Backend(
                "the PostgreSQL database holds other tables but no Kurier schema; give Kurier its own database".into(),
            ));
        }
        tx.execute("INSERT INTO kurier_schema (version) VALUES (0)", &[])
            .await
            .map_err(err)?;
    }
    for (i, sql) in POSTGRES.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql)
            .await
            .map_err(|e| StoreError::Backend(format!("schema migration {} failed: {e}", i + 1)))?;
        tx.execute(
            "UPDATE kurier_schema SET version = $1",
            &[&((i + 1) as i64)],
        )
        .await
        .map_err(err)?;
        tracing::info!(version = i + 1, "store schema migrated");
    }
    tx.commit().await.map_err(err)
}

/// `account mailbox kind uid,uid,…` — what travels through NOTIFY.
fn encode_change(c: &MailboxChange) -> Vec<String> {
    let (kind, uids): (&str, &[u32]) = match &c.kind {
        ChangeKind::Appended { uid } => ("a", std::slice::from_ref(uid)),
        ChangeKind::Flags { uids } => ("f", uids),
        ChangeKind::Expunged { uids } => ("e", uids),
        ChangeKind::Mailboxes => ("m", &[]),
        // Local only: never sent to other nodes.
        ChangeKind::Missed => return Vec::new(),
    };
    // NOTIFY payloads are limited to 8000 bytes: split long UID lists.
    let chunks: Vec<&[u32]> = if uids.is_empty() {
        vec![&[]]
    } else {
        uids.chunks(500).collect()
    };
    chunks
        .into_iter()
        .map(|chunk| {
            let list = chunk
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(",");
            format!("{} {} {kind} {list}", c.account, c.mailbox)
        })
        .collect()
}

fn decode_change(payload: &str) -> Option<MailboxChange> {
    let mut parts = payload.split(' ');
    let account = parts.next()?.parse().ok()?;
    let mailbox = parts.next()?.parse().ok()?;
    let kind = parts.next()?;
    let uids: Vec<u32> = parts
        .next()
        .unwrap_or("")
        .split(',')
        .filter(|s| !s.is_empty())
        .filter_map(|s| s.parse().ok())
        .collect();
    let kind = match kind {
        "a" => ChangeKind::Appended {
            uid: *uids.first()?,
        },
        "f" => ChangeKind::Flags { uids },
        "e" => ChangeKind::Expunged { uids },
        "m" => ChangeKind::Mailboxes,
        _ => return None,
    };
    Some(MailboxChange {
        account,
        mailbox,
        kind,
    })
}

async fn notify(tx: &Transaction<'_>, changes: &[MailboxChange]) -> Result<()> {
    for c in changes {
        for payload in encode_change(c) {
            tx.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload])
                .await
                .map_err(err)?;
        }
    }
    Ok(())
}

const ACCOUNT_COLUMNS: &str = "id, address, domain, quota, enabled, created";

fn account_row(r: &Row) -> Account {
    Account {
        id: r.get(0),
        address: r.get(1),
        domain: r.get(2),
        quota: r.get::<_, Option<i64>>(3).map(to_u64),
        enabled: r.get(4),
        created: r.get(5),
    }
}

async fn account_by_address(c: &impl GenericClient, address: &str) -> Result<Option<Account>> {
    Ok(c.query_opt(
        &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE address = $1"),
        &[&address],
    )
    .await
    .map_err(err)?
    .map(|r| account_row(&r)))
}

async fn require_account(c: &impl GenericClient, address: &str) -> Result<Account> {
    account_by_address(c, address)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("account {address}")))
}

/// The outcome of an operator's change to queue entry `id` that touched `n` rows: none
/// means it is gone or a worker holds it.
async fn queue_change(c: &impl GenericClient, id: QueueId, n: u64) -> Result<()> {
    if n > 0 {
        return Ok(());
    }
    let exists: bool = c
        .query_one("SELECT EXISTS (SELECT 1 FROM queue WHERE id = $1)", &[&id])
        .await
        .map_err(err)?
        .get(0);
    Err(if exists {
        StoreError::Invalid(format!(
            "queue entry {id} is being delivered right now; try again in a minute"
        ))
    } else {
        StoreError::NotFound(format!("queue entry {id}"))
    })
}

async fn domain_exists(c: &impl GenericClient, domain: &str) -> Result<bool> {
    Ok(
        c.query_opt("SELECT 1 FROM domains WHERE name = $1", &[&domain])
            .await
            .map_err(err)?
            .is_some(),
    )
}

async fn require_domain(c: &impl GenericClient, domain: &str) -> Result<()> {
    if domain_exists(c, domain).await? {
        Ok(())
    } else {
        Err(StoreError::NotFound(format!(
            "domain {domain} (add it first: kurier domain add {domain})"
        )))
    }
}

const MAILBOX_COLUMNS: &str = "m.id, m.account, m.name, m.special_use, m.uid_validity, m.uid_next, m.highest_modseq, \
     EXISTS (SELECT 1 FROM subscriptions s WHERE s.account = m.account AND s.name = m.name), \
     (SELECT count(*) FROM messages WHERE mailbox = m.id), m.recent_uid";

fn mailbox_row(r: &Row) -> Mailbox {
    Mailbox {
        id: r.get(0),
        account: r.get(1),
        name: r.get(2),
        special_use: r
            .get::<_, Option<String>>(3)
            .and_then(|s| SpecialUse::from_attribute(&s)),
        uid_validity: r.get::<_, i64>(4) as u32,
        uid_next: r.get::<_, i64>(5) as u32,
        highest_modseq: to_u64(r.get(6)),
        subscribed: r.get(7),
        messages: r.get::<_, i64>(8) as u32,
        recent_uid: r.get::<_, i64>(9) as u32,
    }
}

async fn insert_mailbox(
    tx: &Transaction<'_>,
    account: AccountId,
    name: &str,
    special_use: Option<SpecialUse>,
) -> Result<MailboxId> {
    let special = special_use.map(|u| u.attribute());
    // BIGSERIAL ids are never reused, so a re-created name gets a new UIDVALIDITY.
    let row = tx
        .query_one(
            "INSERT INTO mailboxes (account, name, special_use, uid_validity) VALUES ($1, $2, $3, 0) RETURNING id",
            &[&account, &name, &special],
        )
        .await
        .map_err(unique(format!("mailbox {name}")))?;
    let id: i64 = row.get(0);
    tx.execute(
        "UPDATE mailboxes SET uid_validity = id WHERE id = $1",
        &[&id],
    )
    .await
    .map_err(err)?;
    Ok(id)
}

/// Inserts a queue entry in an open transaction.
async fn enqueue_in(tx: &Transaction<'_>, entry: &NewQueueEntry, body: &[u8]) -> Result<QueueId> {
    let id: i64 = tx
        .query_one(
            "INSERT INTO queue (sender, size, created, next_attempt, require_tls, body, dsn_ret, dsn_envid) VALUES ($1, $2, $3, $3, $4, $5, $6, $7) RETURNING id",
            &[&entry.sender, &(body.len() as i64), &now(), &entry.require_tls, &body, &rules::encode_ret(&entry.dsn), &entry.dsn.envid],
        )
        .await
        .map_err(err)?
        .get(0);
    for (rcpt, dsn) in &entry.recipients {
        tx.execute(
            "INSERT INTO queue_recipients (queue, address, status, dsn) VALUES ($1, $2, 'pending', $3)",
            &[&id, rcpt, &rules::encode_recipient_dsn(dsn)],
        )
        .await
        .map_err(unique(format!("recipient {rcpt} twice in one queue entry")))?;
    }
    Ok(id)
}

async fn insert_blob(tx: &Transaction<'_>, body: &[u8]) -> Result<i64> {
    Ok(tx
        .query_one(
            "INSERT INTO blobs (data, refs) VALUES ($1, 0) RETURNING id",
            &[&body],
        )
        .await
        .map_err(err)?
        .get(0))
}

async fn append_in(
    tx: &Transaction<'_>,
    mailbox: MailboxId,
    blob: i64,
    size: u64,
    flags: &[String],
    internal_date: UnixTime,
) -> Result<(Appended, AccountId)> {
    let row = tx
        .query_opt(
            "SELECT a.id, a.address, a.quota, a.used, m.uid_validity, m.uid_next, m.highest_modseq \
             FROM mailboxes m JOIN accounts a ON a.id = m.account WHERE m.id = $1 FOR UPDATE OF m, a",
            &[&mailbox],
        )
        .await
        .map_err(err)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
    let (account, address, quota, used): (i64, String, Option<i64>, i64) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let (uid_validity, uid_next, modseq): (i64, i64, i64) = (row.get(4), row.get(5), row.get(6));
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
        "INSERT INTO messages (mailbox, uid, modseq, flags, internal_date, size, blob) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        &[&mailbox, &uid_next, &modseq, &encode_flags(flags), &internal_date, &(size as i64), &blob],
    )
    .await
    .map_err(err)?;
    tx.execute(
        "UPDATE mailboxes SET uid_next = uid_next + 1, highest_modseq = $2 WHERE id = $1",
        &[&mailbox, &modseq],
    )
    .await
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

fn message_meta(mailbox: MailboxId, r: &Row) -> MessageMeta {
    MessageMeta {
        mailbox,
        uid: r.get::<_, i64>(0) as u32,
        modseq: to_u64(r.get(1)),
        flags: decode_flags(r.get(2)),
        internal_date: r.get(3),
        size: to_u64(r.get(4)),
    }
}

/// The id of `account`'s mailbox `name`, its row locked for the transaction.
async fn mailbox_for_update(
    tx: &Transaction<'_>,
    account: AccountId,
    name: &str,
) -> Result<MailboxId> {
    tx.query_opt(
        "SELECT id FROM mailboxes WHERE account = $1 AND name = $2 FOR UPDATE",
        &[&account, &name],
    )
    .await
    .map_err(err)?
    .map(|r| r.get(0))
    .ok_or_else(|| StoreError::NotFound(format!("mailbox {name}")))
}

/// Locks the mailbox row; returns (account, highest_modseq).
async fn lock_mailbox(tx: &Transaction<'_>, mailbox: MailboxId) -> Result<(AccountId, i64)> {
    let r = tx
        .query_opt(
            "SELECT account, highest_modseq FROM mailboxes WHERE id = $1 FOR UPDATE",
            &[&mailbox],
        )
        .await
        .map_err(err)?
        .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
    Ok((r.get(0), r.get(1)))
}

async fn load_queue_entries(
    c: &impl GenericClient,
    ids: Option<&[i64]>,
) -> Result<Vec<QueueEntry>> {
    const COLUMNS: &str = "SELECT id, sender, size, created, next_attempt, attempts, require_tls, lease_holder, lease_expires, dsn_ret, dsn_envid FROM queue";
    let rows = match ids {
        Some(ids) => {
            c.query(
                &format!("{COLUMNS} WHERE id = ANY($1) ORDER BY next_attempt, id"),
                &[&ids],
            )
            .await
        }
        None => {
            c.query(&format!("{COLUMNS} ORDER BY next_attempt, id"), &[])
                .await
        }
    }
    .map_err(err)?;
    let mut out = Vec::new();
    for r in rows {
        let id: i64 = r.get(0);
        let recipients = c
            .query("SELECT address, status, last_error, dsn FROM queue_recipients WHERE queue = $1 ORDER BY ctid", &[&id])
            .await
            .map_err(err)?
            .iter()
            .map(|q| QueueRecipient {
                address: q.get(0),
                status: RecipientStatus::parse(q.get(1)).unwrap_or(RecipientStatus::Pending),
                last_error: q.get(2),
                dsn: rules::decode_recipient_dsn(q.get::<_, Option<&str>>(3)),
            })
            .collect();
        let holder: Option<String> = r.get(7);
        let expires: Option<i64> = r.get(8);
        out.push(QueueEntry {
            id,
            sender: r.get(1),
            recipients,
            size: to_u64(r.get(2)),
            created: r.get(3),
            next_attempt: r.get(4),
            attempts: r.get::<_, i64>(5) as u32,
            require_tls: r.get(6),
            dsn: MessageDsn {
                ret: rules::decode_ret(r.get::<_, Option<&str>>(9)),
                envid: r.get(10),
            },
            lease: holder.zip(expires),
        });
    }
    Ok(out)
}

#[async_trait]
impl Store for PostgresStore {
    async fn add_domain(&self, name: &str) -> Result<Domain> {
        let name = address::normalize_domain(name)?;
        let created = now();
        self.client()
            .await?
            .execute(
                "INSERT INTO domains (name, created) VALUES ($1, $2)",
                &[&name, &created],
            )
            .await
            .map_err(unique(format!("domain {name}")))?;
        Ok(Domain { name, created })
    }

    async fn domains(&self) -> Result<Vec<Domain>> {
        let rows = self
            .client()
            .await?
            .query("SELECT name, created FROM domains ORDER BY name", &[])
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| Domain {
                name: r.get(0),
                created: r.get(1),
            })
            .collect())
    }

    async fn delete_domain(&self, name: &str) -> Result<()> {
        let name = address::normalize_domain(name)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        require_domain(&tx, &name).await?;
        let r = tx
            .query_one(
                "SELECT (SELECT count(*) FROM accounts WHERE domain = $1), (SELECT count(*) FROM aliases WHERE domain = $1)",
                &[&name],
            )
            .await
            .map_err(err)?;
        let (accounts, aliases): (i64, i64) = (r.get(0), r.get(1));
        if accounts + aliases > 0 {
            return Err(StoreError::Invalid(format!(
                "domain {name} still has {accounts} accounts and {aliases} aliases; delete them first"
            )));
        }
        tx.execute("DELETE FROM domains WHERE name = $1", &[&name])
            .await
            .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    async fn set_domain_setting(&self, domain: &str, key: &str, value: Option<&str>) -> Result<()> {
        let domain = address::normalize_domain(domain)?;
        let key = rules::setting_key(key)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        require_domain(&tx, &domain).await?;
        match value {
            Some(v) => {
                tx.execute(
                    "INSERT INTO domain_settings (domain, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (domain, key) DO UPDATE SET value = $3",
                    &[&domain, &key, &v],
                )
                .await
            }
            None => {
                tx.execute(
                    "DELETE FROM domain_settings WHERE domain = $1 AND key = $2",
                    &[&domain, &key],
                )
                .await
            }
        }
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    async fn domain_settings(
        &self,
        domain: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let domain = address::normalize_domain(domain)?;
        let c = self.client().await?;
        require_domain(&c, &domain).await?;
        let rows = c
            .query(
                "SELECT key, value FROM domain_settings WHERE domain = $1",
                &[&domain],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn add_account(
        &self,
        address: &str,
        password: &str,
        quota: Option<u64>,
    ) -> Result<Account> {
        let address = address::normalize(address)?;
        let hash = password::hash(password)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let domain = address::domain_of(&address).to_string();
        require_domain(&tx, &domain).await?;
        if tx
            .query_opt("SELECT 1 FROM aliases WHERE address = $1", &[&address])
            .await
            .map_err(err)?
            .is_some()
        {
            return Err(StoreError::Exists(format!("alias {address}")));
        }
        let row = tx
            .query_one(
                "INSERT INTO accounts (address, domain, password, quota, created) VALUES ($1, $2, $3, $4, $5) RETURNING id",
                &[&address, &domain, &hash, &quota.map(|q| q as i64), &now()],
            )
            .await
            .map_err(unique(format!("account {address}")))?;
        let id: i64 = row.get(0);
        for (name, special) in DEFAULT_MAILBOXES {
            insert_mailbox(&tx, id, name, *special).await?;
            tx.execute(
                "INSERT INTO subscriptions (account, name) VALUES ($1, $2)",
                &[&id, name],
            )
            .await
            .map_err(err)?;
        }
        let account = require_account(&tx, &address).await?;
        tx.commit().await.map_err(err)?;
        Ok(account)
    }

    async fn account(&self, address: &str) -> Result<Option<Account>> {
        let Ok(address) = address::normalize(address) else {
            return Ok(None);
        };
        account_by_address(&self.client().await?, &address).await
    }

    async fn accounts(&self, domain: Option<&str>) -> Result<Vec<Account>> {
        let domain = domain.map(address::normalize_domain).transpose()?;
        let rows = self
            .client()
            .await?
            .query(
                &format!("SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE $1::TEXT IS NULL OR domain = $1 ORDER BY address"),
                &[&domain],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(account_row).collect())
    }

    async fn set_password(&self, address: &str, password: &str) -> Result<()> {
        let address = address::normalize(address)?;
        let hash = password::hash(password)?;
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE accounts SET password = $2 WHERE address = $1",
                &[&address, &hash],
            )
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("account {address}"))
    }

    async fn set_enabled(&self, address: &str, enabled: bool) -> Result<()> {
        let address = address::normalize(address)?;
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE accounts SET enabled = $2 WHERE address = $1",
                &[&address, &enabled],
            )
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("account {address}"))
    }

    async fn set_quota(&self, address: &str, quota: Option<u64>) -> Result<()> {
        let address = address::normalize(address)?;
        let n = self
            .client()
            .await?
            .execute(
                "UPDATE accounts SET quota = $2 WHERE address = $1",
                &[&address, &quota.map(|q| q as i64)],
            )
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("account {address}"))
    }

    async fn set_account_setting(
        &self,
        address: &str,
        key: &str,
        value: Option<&str>,
    ) -> Result<()> {
        let address = address::normalize(address)?;
        let key = rules::setting_key(key)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let id: i64 = tx
            .query_opt("SELECT id FROM accounts WHERE address = $1", &[&address])
            .await
            .map_err(err)?
            .ok_or_else(|| StoreError::NotFound(format!("account {address}")))?
            .get(0);
        match value {
            Some(v) => {
                tx.execute(
                    "INSERT INTO account_settings (account, key, value) VALUES ($1, $2, $3) \
                     ON CONFLICT (account, key) DO UPDATE SET value = $3",
                    &[&id, &key, &v],
                )
                .await
            }
            None => {
                tx.execute(
                    "DELETE FROM account_settings WHERE account = $1 AND key = $2",
                    &[&id, &key],
                )
                .await
            }
        }
        .map_err(err)?;
        tx.commit().await.map_err(err)
    }

    async fn account_settings(
        &self,
        address: &str,
    ) -> Result<std::collections::BTreeMap<String, String>> {
        let address = address::normalize(address)?;
        let rows = self
            .client()
            .await?
            .query(
                "SELECT s.key, s.value FROM account_settings s JOIN accounts a ON a.id = s.account \
                 WHERE a.address = $1",
                &[&address],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    async fn delete_account(&self, address: &str) -> Result<()> {
        let address = address::normalize(address)?;
        let n = self
            .client()
            .await?
            .execute("DELETE FROM accounts WHERE address = $1", &[&address])
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("account {address}"))
    }

    async fn authenticate(&self, address: &str, password: &str) -> Result<Option<Account>> {
        let Ok(address) = address::normalize(address) else {
            return password::check_account_off_thread(password.to_string(), None).await;
        };
        let row = self
            .client()
            .await?
            .query_opt(
                &format!("SELECT password, {ACCOUNT_COLUMNS} FROM accounts WHERE address = $1"),
                &[&address],
            )
            .await
            .map_err(err)?;
        let row = row.map(|r| {
            let account = Account {
                id: r.get(1),
                address: r.get(2),
                domain: r.get(3),
                quota: r.get::<_, Option<i64>>(4).map(to_u64),
                enabled: r.get(5),
                created: r.get(6),
            };
            (r.get::<_, String>(0), account)
        });
        // Argon2 takes tens of milliseconds: off the async threads, on the bounded pool.
        password::check_account_off_thread(password.to_string(), row).await
    }

    async fn usage(&self, account: AccountId) -> Result<u64> {
        self.client()
            .await?
            .query_opt("SELECT used FROM accounts WHERE id = $1", &[&account])
            .await
            .map_err(err)?
            .map(|r| to_u64(r.get(0)))
            .ok_or_else(|| StoreError::NotFound(format!("account {account}")))
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
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let domain = address::domain_of(&alias).to_string();
        require_domain(&tx, &domain).await?;
        if account_by_address(&tx, &alias).await?.is_some() {
            return Err(StoreError::Exists(format!("account {alias}")));
        }
        for t in &targets {
            require_account(&tx, t).await?;
        }
        tx.execute(
            "INSERT INTO aliases (address, domain, targets) VALUES ($1, $2, $3)",
            &[&alias, &domain, &encode_list(&targets)],
        )
        .await
        .map_err(unique(format!("alias {alias}")))?;
        for t in &targets {
            tx.execute(
                "INSERT INTO alias_targets (alias, target) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&alias, t],
            )
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)?;
        Ok(Alias {
            address: alias,
            domain,
            targets,
        })
    }

    async fn sender_aliases(&self, address: &str) -> Result<Vec<String>> {
        let address = address::normalize(address)?;
        let rows = self
            .client()
            .await?
            .query(
                "SELECT alias FROM alias_targets WHERE target = $1 AND alias NOT LIKE '@%' ORDER BY alias",
                &[&address],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn aliases(&self, domain: Option<&str>) -> Result<Vec<Alias>> {
        let domain = domain.map(address::normalize_domain).transpose()?;
        let rows = self
            .client()
            .await?
            .query(
                "SELECT address, domain, targets FROM aliases WHERE $1::TEXT IS NULL OR domain = $1 ORDER BY address",
                &[&domain],
            )
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| Alias {
                address: r.get(0),
                domain: r.get(1),
                targets: decode_list(r.get(2)),
            })
            .collect())
    }

    async fn delete_alias(&self, alias: &str) -> Result<()> {
        let alias = address::normalize_alias(alias)?;
        let n = self
            .client()
            .await?
            .execute("DELETE FROM aliases WHERE address = $1", &[&alias])
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("alias {alias}"))
    }

    async fn resolve_address(&self, addr: &str, catch_all: bool) -> Result<Recipient> {
        let Ok(addr) = address::normalize(addr) else {
            return Ok(Recipient::NotHosted);
        };
        let c = self.client().await?;
        let domain = address::domain_of(&addr).to_string();
        if !domain_exists(&c, &domain).await? {
            return Ok(Recipient::NotHosted);
        }
        if let Some(a) = account_by_address(&c, &addr).await? {
            return Ok(if a.enabled {
                Recipient::Local(vec![a])
            } else {
                Recipient::Unknown
            });
        }
        let catch_all_address = format!("@{domain}");
        let targets: Option<String> = c
            .query_opt(
                "SELECT targets FROM aliases WHERE address = $1 OR (address = $2 AND $3) ORDER BY address = $1 DESC LIMIT 1",
                &[&addr, &catch_all_address, &catch_all],
            )
            .await
            .map_err(err)?
            .map(|r| r.get(0));
        let Some(targets) = targets else {
            return Ok(Recipient::Unknown);
        };
        let mut accounts = Vec::new();
        for t in decode_list(&targets) {
            if let Some(a) = account_by_address(&c, &t).await?
                && a.enabled
            {
                accounts.push(a);
            }
        }
        Ok(if accounts.is_empty() {
            Recipient::Unknown
        } else {
            Recipient::Local(accounts)
        })
    }

    async fn mailboxes(&self, account: AccountId) -> Result<Vec<Mailbox>> {
        let rows = self
            .client()
            .await?
            .query(
                &format!(
                    "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = $1 ORDER BY m.name"
                ),
                &[&account],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(mailbox_row).collect())
    }

    async fn mailbox(&self, account: AccountId, name: &str) -> Result<Option<Mailbox>> {
        let name = rules::mailbox_name(name)?;
        Ok(self
            .client()
            .await?
            .query_opt(
                &format!(
                    "SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.account = $1 AND m.name = $2"
                ),
                &[&account, &name],
            )
            .await
            .map_err(err)?
            .map(|r| mailbox_row(&r)))
    }

    async fn create_mailbox(
        &self,
        account: AccountId,
        name: &str,
        special_use: Option<SpecialUse>,
    ) -> Result<Mailbox> {
        let name = rules::mailbox_name(name)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let id = insert_mailbox(&tx, account, &name, special_use).await?;
        let m = mailbox_row(
            &tx.query_one(
                &format!("SELECT {MAILBOX_COLUMNS} FROM mailboxes m WHERE m.id = $1"),
                &[&id],
            )
            .await
            .map_err(err)?,
        );
        notify(
            &tx,
            &[MailboxChange {
                account,
                mailbox: id,
                kind: ChangeKind::Mailboxes,
            }],
        )
        .await?;
        tx.commit().await.map_err(err)?;
        Ok(m)
    }

    async fn rename_mailbox(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let (from, to) = rules::rename_names(from, to)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let id = mailbox_for_update(&tx, account, &from).await?;
        tx.execute(
            "UPDATE mailboxes SET name = $3 WHERE account = $1 AND name = $2",
            &[&account, &from, &to],
        )
        .await
        .map_err(unique(format!("mailbox {to}")))?;
        tx.execute(
            "UPDATE mailboxes SET name = $3 || substr(name, length($2) + 1) WHERE account = $1 AND substr(name, 1, length($2) + 1) = $2 || '/'",
            &[&account, &from, &to],
        )
        .await
        .map_err(unique(format!("a child of mailbox {to}")))?;
        // Subscriptions follow the names; one already there for a new name stays.
        tx.execute(
            "DELETE FROM subscriptions s WHERE s.account = $1 \
             AND EXISTS (SELECT 1 FROM subscriptions o WHERE o.account = $1 \
               AND (o.name = $2 OR substr(o.name, 1, length($2) + 1) = $2 || '/') \
               AND $3 || substr(o.name, length($2) + 1) = s.name)",
            &[&account, &from, &to],
        )
        .await
        .map_err(err)?;
        tx.execute(
            "UPDATE subscriptions SET name = $3 || substr(name, length($2) + 1) WHERE account = $1 AND (name = $2 OR substr(name, 1, length($2) + 1) = $2 || '/')",
            &[&account, &from, &to],
        )
        .await
        .map_err(err)?;
        notify(
            &tx,
            &[MailboxChange {
                account,
                mailbox: id,
                kind: ChangeKind::Mailboxes,
            }],
        )
        .await?;
        tx.commit().await.map_err(err)
    }

    async fn delete_mailbox(&self, account: AccountId, name: &str) -> Result<()> {
        let name = rules::deletable_mailbox(name)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let id = mailbox_for_update(&tx, account, &name).await?;
        tx.execute(
            "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
            &[&account],
        )
        .await
        .map_err(err)?;
        tx.execute("DELETE FROM messages WHERE mailbox = $1", &[&id])
            .await
            .map_err(err)?;
        tx.execute("DELETE FROM mailboxes WHERE id = $1", &[&id])
            .await
            .map_err(err)?;
        notify(
            &tx,
            &[MailboxChange {
                account,
                mailbox: id,
                kind: ChangeKind::Mailboxes,
            }],
        )
        .await?;
        tx.commit().await.map_err(err)
    }

    async fn set_subscribed(&self, account: AccountId, name: &str, subscribed: bool) -> Result<()> {
        let name = rules::mailbox_name(name)?;
        let client = self.client().await?;
        if subscribed {
            client
                .execute(
                    "INSERT INTO subscriptions (account, name) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                    &[&account, &name],
                )
                .await
                .map_err(err)?;
            return Ok(());
        }
        let n = client
            .execute(
                "DELETE FROM subscriptions WHERE account = $1 AND name = $2",
                &[&account, &name],
            )
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("subscription {name}"))
    }

    async fn subscriptions(&self, account: AccountId) -> Result<Vec<String>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT name FROM subscriptions WHERE account = $1 ORDER BY name",
                &[&account],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    async fn claim_recent(&self, mailbox: MailboxId) -> Result<u32> {
        // The row lock of the subquery serializes claims (and appends, which lock it too).
        let row = self
            .client()
            .await?
            .query_opt(
                "UPDATE mailboxes m SET recent_uid = m.uid_next \
                 FROM (SELECT id, recent_uid FROM mailboxes WHERE id = $1 FOR UPDATE) old \
                 WHERE m.id = old.id RETURNING old.recent_uid",
                &[&mailbox],
            )
            .await
            .map_err(err)?
            .ok_or_else(|| StoreError::NotFound(format!("mailbox {mailbox}")))?;
        Ok(row.get::<_, i64>(0) as u32)
    }

    async fn append(
        &self,
        mailbox: MailboxId,
        body: &[u8],
        flags: &[&str],
        internal_date: UnixTime,
    ) -> Result<Appended> {
        let flags = normalize_flags(flags.iter().copied())?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let blob = insert_blob(&tx, body).await?;
        let (a, account) =
            append_in(&tx, mailbox, blob, body.len() as u64, &flags, internal_date).await?;
        notify(
            &tx,
            &[MailboxChange {
                account,
                mailbox,
                kind: ChangeKind::Appended { uid: a.uid },
            }],
        )
        .await?;
        tx.commit().await.map_err(err)?;
        Ok(a)
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
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let shared = insert_blob(&tx, body).await?;
        let mut out = Vec::new();
        let mut changes = Vec::new();
        for p in placements {
            let flags = normalize_flags(p.flags.iter().map(String::as_str))?;
            let named: Option<MailboxId> = match &p.target {
                Target::Named(name) => tx
                    .query_opt(
                        "SELECT id FROM mailboxes WHERE account = $1 AND name = $2",
                        &[&p.account, &rules::mailbox_name(name)?],
                    )
                    .await
                    .map_err(err)?
                    .map(|r| r.get(0)),
                Target::Folder(_) => None,
            };
            let folder = match &p.target {
                Target::Folder(f) => *f,
                Target::Named(_) => Folder::Inbox,
            };
            let mailbox: MailboxId = match named {
                Some(id) => id,
                None => tx
                    .query_opt(
                        "SELECT id FROM mailboxes WHERE account = $1 AND (name = 'INBOX' OR special_use = $2) ORDER BY (name = 'INBOX') LIMIT 1",
                        &[&p.account, &folder.special_use()],
                    )
                    .await
                    .map_err(err)?
                    .map(|r| r.get(0))
                    .ok_or_else(|| StoreError::NotFound(format!("INBOX of account {}", p.account)))?,
            };
            let (blob, size) = match &p.body {
                Some(own) => (insert_blob(&tx, own).await?, own.len()),
                None => (shared, body.len()),
            };
            let (a, acc) = append_in(&tx, mailbox, blob, size as u64, &flags, now()).await?;
            changes.push(MailboxChange {
                account: acc,
                mailbox,
                kind: ChangeKind::Appended { uid: a.uid },
            });
            out.push(a);
        }
        let mut queued = Vec::new();
        for (e, own) in queue {
            queued.push(enqueue_in(&tx, e, own.as_deref().unwrap_or(body)).await?);
        }
        notify(&tx, &changes).await?;
        tx.commit().await.map_err(err)?;
        Ok((out, queued))
    }

    async fn messages(&self, mailbox: MailboxId) -> Result<Vec<MessageMeta>> {
        let rows = self
            .client()
            .await?
            .query("SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox = $1 ORDER BY uid", &[&mailbox])
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| message_meta(mailbox, r)).collect())
    }

    async fn messages_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<MessageMeta>> {
        let modseq = i64::try_from(modseq).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query("SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox = $1 AND modseq > $2 ORDER BY uid", &[&mailbox, &modseq])
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| message_meta(mailbox, r)).collect())
    }

    async fn expunged_since(&self, mailbox: MailboxId, modseq: u64) -> Result<Vec<u32>> {
        let modseq = i64::try_from(modseq).unwrap_or(i64::MAX);
        let rows = self
            .client()
            .await?
            .query(
                "SELECT uid FROM expunged WHERE mailbox = $1 AND modseq > $2 ORDER BY uid",
                &[&mailbox, &modseq],
            )
            .await
            .map_err(err)?;
        Ok(rows.iter().map(|r| r.get::<_, i64>(0) as u32).collect())
    }

    async fn message_body(&self, mailbox: MailboxId, uid: u32) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT b.data FROM messages m JOIN blobs b ON b.id = m.blob WHERE m.mailbox = $1 AND m.uid = $2",
                &[&mailbox, &i64::from(uid)],
            )
            .await
            .map_err(err)?
            .map(|r| r.get(0)))
    }

    async fn set_flags(
        &self,
        mailbox: MailboxId,
        uids: &[u32],
        change: FlagChange,
        flags: &[&str],
    ) -> Result<Vec<MessageMeta>> {
        let flags = normalize_flags(flags.iter().copied())?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let (account, mut modseq) = lock_mailbox(&tx, mailbox).await?;
        let mut changed = Vec::new();
        for uid in uids {
            let Some(r) = tx
                .query_opt(
                    "SELECT uid, modseq, flags, internal_date, size FROM messages WHERE mailbox = $1 AND uid = $2",
                    &[&mailbox, &i64::from(*uid)],
                )
                .await
                .map_err(err)?
            else {
                continue;
            };
            let mut meta = message_meta(mailbox, &r);
            if let Some(next) = rules::apply_flags(&meta.flags, change, &flags) {
                modseq += 1;
                tx.execute(
                    "UPDATE messages SET flags = $3, modseq = $4 WHERE mailbox = $1 AND uid = $2",
                    &[&mailbox, &i64::from(*uid), &encode_flags(&next), &modseq],
                )
                .await
                .map_err(err)?;
                meta.flags = next;
                meta.modseq = modseq as u64;
                changed.push(meta);
            }
        }
        tx.execute(
            "UPDATE mailboxes SET highest_modseq = $2 WHERE id = $1",
            &[&mailbox, &modseq],
        )
        .await
        .map_err(err)?;
        if !changed.is_empty() {
            let uids = changed.iter().map(|m| m.uid).collect();
            notify(
                &tx,
                &[MailboxChange {
                    account,
                    mailbox,
                    kind: ChangeKind::Flags { uids },
                }],
            )
            .await?;
        }
        tx.commit().await.map_err(err)?;
        Ok(changed)
    }

    async fn expunge(&self, mailbox: MailboxId, uids: &[u32]) -> Result<Vec<u32>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let (account, modseq) = lock_mailbox(&tx, mailbox).await?;
        tx.execute(
            "SELECT 1 FROM accounts WHERE id = $1 FOR UPDATE",
            &[&account],
        )
        .await
        .map_err(err)?;
        let mut removed = Vec::new();
        for uid in uids {
            if tx
                .execute(
                    "DELETE FROM messages WHERE mailbox = $1 AND uid = $2",
                    &[&mailbox, &i64::from(*uid)],
                )
                .await
                .map_err(err)?
                > 0
            {
                removed.push(*uid);
            }
        }
        if !removed.is_empty() {
            tx.execute(
                "UPDATE mailboxes SET highest_modseq = $2 WHERE id = $1",
                &[&mailbox, &(modseq + 1)],
            )
            .await
            .map_err(err)?;
            let gone: Vec<i64> = removed.iter().map(|&u| i64::from(u)).collect();
            tx.execute(
                "INSERT INTO expunged (mailbox, uid, modseq) SELECT $1, u, $3 FROM unnest($2::BIGINT[]) AS u \
                 ON CONFLICT (mailbox, uid) DO UPDATE SET modseq = EXCLUDED.modseq",
                &[&mailbox, &gone, &(modseq + 1)],
            )
            .await
            .map_err(err)?;
            notify(
                &tx,
                &[MailboxChange {
                    account,
                    mailbox,
                    kind: ChangeKind::Expunged {
                        uids: removed.clone(),
                    },
                }],
            )
            .await?;
        }
        tx.commit().await.map_err(err)?;
        Ok(removed)
    }

    async fn copy(&self, from: MailboxId, uids: &[u32], to: MailboxId) -> Result<Vec<(u32, u32)>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let mut pairs = Vec::new();
        let mut changes = Vec::new();
        for uid in uids {
            let Some(r) = tx
                .query_opt(
                    "SELECT flags, internal_date, size, blob FROM messages WHERE mailbox = $1 AND uid = $2",
                    &[&from, &i64::from(*uid)],
                )
                .await
                .map_err(err)?
            else {
                continue;
            };
            let (flags, date, size, blob): (String, i64, i64, i64) =
                (r.get(0), r.get(1), r.get(2), r.get(3));
            let (a, account) =
                append_in(&tx, to, blob, to_u64(size), &decode_flags(&flags), date).await?;
            changes.push(MailboxChange {
                account,
                mailbox: to,
                kind: ChangeKind::Appended { uid: a.uid },
            });
            pairs.push((*uid, a.uid));
        }
        notify(&tx, &changes).await?;
        tx.commit().await.map_err(err)?;
        Ok(pairs)
    }

    fn subscribe(&self) -> broadcast::Receiver<MailboxChange> {
        self.changes.subscribe()
    }

    async fn enqueue(&self, entry: &NewQueueEntry, body: &[u8]) -> Result<QueueId> {
        check_entry(entry)?;
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let id = enqueue_in(&tx, entry, body).await?;
        tx.commit().await.map_err(err)?;
        Ok(id)
    }

    async fn lease(
        &self,
        holder: &str,
        now: UnixTime,
        lease_secs: u32,
        limit: u32,
    ) -> Result<Vec<QueueEntry>> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let expires = now + i64::from(lease_secs);
        let ids: Vec<i64> = tx
            .query(
                "UPDATE queue SET lease_holder = $1, lease_expires = $2 WHERE id IN (\
                   SELECT id FROM queue WHERE next_attempt <= $3 AND (lease_expires IS NULL OR lease_expires <= $3) \
                   ORDER BY next_attempt, id LIMIT $4 FOR UPDATE SKIP LOCKED) RETURNING id",
                &[&holder, &expires, &now, &i64::from(limit)],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect();
        let entries = load_queue_entries(&tx, Some(&ids)).await?;
        tx.commit().await.map_err(err)?;
        Ok(entries)
    }

    async fn queue_body(&self, id: QueueId) -> Result<Option<Vec<u8>>> {
        Ok(self
            .client()
            .await?
            .query_opt("SELECT body FROM queue WHERE id = $1", &[&id])
            .await
            .map_err(err)?
            .map(|r| r.get(0)))
    }

    async fn finish_attempt(
        &self,
        id: QueueId,
        holder: &str,
        results: &[(String, RecipientStatus, Option<String>)],
        next_attempt: UnixTime,
    ) -> Result<()> {
        let mut c = self.client().await?;
        let tx = c.transaction().await.map_err(err)?;
        let current: Option<String> = tx
            .query_opt(
                "SELECT lease_holder FROM queue WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(err)?
            .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?
            .get(0);
        if current.as_deref() != Some(holder) {
            return Err(StoreError::LeaseLost(id));
        }
        let at = now();
        for (addr, status, error) in results {
            tx.execute(
                "UPDATE queue_recipients SET status = $3, last_error = $4 WHERE queue = $1 AND address = $2",
                &[&id, addr, &status.as_str(), error],
            )
            .await
            .map_err(err)?;
            tx.execute(
                "INSERT INTO queue_attempts (queue, at, recipient, status, detail) VALUES ($1, $2, $3, $4, $5)",
                &[&id, &at, addr, &status.as_str(), error],
            )
            .await
            .map_err(err)?;
        }
        let pending: i64 = tx
            .query_one(
                "SELECT count(*) FROM queue_recipients WHERE queue = $1 AND status = 'pending'",
                &[&id],
            )
            .await
            .map_err(err)?
            .get(0);
        if pending == 0 {
            tx.execute("DELETE FROM queue WHERE id = $1", &[&id])
                .await
                .map_err(err)?;
        } else {
            tx.execute(
                "UPDATE queue SET attempts = attempts + 1, next_attempt = $2, lease_holder = NULL, lease_expires = NULL WHERE id = $1",
                &[&id, &next_attempt],
            )
            .await
            .map_err(err)?;
        }
        tx.commit().await.map_err(err)
    }

    async fn queue(&self) -> Result<Vec<QueueEntry>> {
        load_queue_entries(&self.client().await?, None).await
    }

    async fn queue_attempts(&self, id: QueueId) -> Result<Vec<QueueAttempt>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT at, recipient, status, detail FROM queue_attempts WHERE queue = $1 ORDER BY at, ctid",
                &[&id],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| {
                let status: String = r.get(2);
                QueueAttempt {
                    at: r.get(0),
                    recipient: r.get(1),
                    status: RecipientStatus::parse(&status).unwrap_or(RecipientStatus::Pending),
                    detail: r.get(3),
                }
            })
            .collect())
    }

    async fn retry_queue_entry(&self, id: QueueId, now: UnixTime) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                "UPDATE queue SET next_attempt = $2 WHERE id = $1 \
                 AND (lease_expires IS NULL OR lease_expires <= $2)",
                &[&id, &now],
            )
            .await
            .map_err(err)?;
        queue_change(&c, id, n).await
    }

    async fn delete_queue_entry(&self, id: QueueId, now: UnixTime) -> Result<()> {
        let c = self.client().await?;
        let n = c
            .execute(
                "DELETE FROM queue WHERE id = $1 AND (lease_expires IS NULL OR lease_expires <= $2)",
                &[&id, &now],
            )
            .await
            .map_err(err)?;
        queue_change(&c, id, n).await
    }

    async fn app_password_account(&self, addr: &str, secret: &str) -> Result<Option<Account>> {
        let Ok(addr) = address::normalize(addr) else {
            return Ok(None);
        };
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT a.id, a.address, a.domain, a.quota, a.enabled, a.created FROM app_passwords p \
                 JOIN accounts a ON a.id = p.account WHERE a.address = $1 AND p.secret = $2 AND a.enabled",
                &[&addr, &secret],
            )
            .await
            .map_err(err)?
            .map(|r| account_row(&r)))
    }

    async fn add_app_password(
        &self,
        account: AccountId,
        name: &str,
        secret: &str,
        created: UnixTime,
    ) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO app_passwords (account, name, secret, created) VALUES ($1, $2, $3, $4)",
                &[&account, &name, &secret, &created],
            )
            .await
            .map_err(unique(format!("app password {name:?}")))?;
        Ok(())
    }

    async fn app_passwords(&self, account: AccountId) -> Result<Vec<(String, UnixTime)>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT name, created FROM app_passwords WHERE account = $1 ORDER BY name",
                &[&account],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }

    async fn delete_app_password(&self, account: AccountId, name: &str) -> Result<()> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM app_passwords WHERE account = $1 AND name = $2",
                &[&account, &name],
            )
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("app password {name:?}"))
    }

    async fn admin_scopes(&self, account: AccountId) -> Result<Vec<AdminScope>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT domain FROM admin_roles WHERE account = $1 ORDER BY domain",
                &[&account],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| AdminScope::from_stored(r.get(0)))
            .collect())
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
        let c = self.client().await?;
        let Some(a) = account_by_address(&c, &address).await? else {
            return Err(StoreError::NotFound(format!("account {address}")));
        };
        if !domain.is_empty() && !domain_exists(&c, &domain).await? {
            return Err(StoreError::NotFound(format!("domain {domain}")));
        }
        if granted {
            c.execute(
                "INSERT INTO admin_roles (account, domain) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&a.id, &domain],
            )
            .await
        } else {
            c.execute(
                "DELETE FROM admin_roles WHERE account = $1 AND domain = $2",
                &[&a.id, &domain],
            )
            .await
        }
        .map_err(err)?;
        Ok(())
    }

    async fn put_web_session(&self, w: &WebSession) -> Result<()> {
        let c = self.client().await?;
        c.execute(
            "INSERT INTO web_sessions (id, account, csrf, created, expires) VALUES ($1, $2, $3, $4, $5)",
            &[&w.id, &w.account, &w.csrf, &w.created, &w.expires],
        )
        .await
        .map_err(unique("session".into()))?;
        // Bounded: the account's oldest sessions beyond the newest few end.
        c.execute(
            "DELETE FROM web_sessions WHERE account = $1 AND id NOT IN \
             (SELECT id FROM web_sessions WHERE account = $1 ORDER BY created DESC, id LIMIT $2)",
            &[&w.account, &crate::MAX_WEB_SESSIONS],
        )
        .await
        .map_err(err)?;
        Ok(())
    }

    async fn web_session(&self, id: &str, now: UnixTime) -> Result<Option<(WebSession, Account)>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT a.id, a.address, a.domain, a.quota, a.enabled, a.created, \
                 s.id, s.csrf, s.created, s.expires FROM web_sessions s \
                 JOIN accounts a ON a.id = s.account \
                 WHERE s.id = $1 AND s.expires > $2 AND a.enabled",
                &[&id, &now],
            )
            .await
            .map_err(err)?
            .map(|r| {
                let a = account_row(&r);
                (
                    WebSession {
                        id: r.get(6),
                        account: a.id,
                        csrf: r.get(7),
                        created: r.get(8),
                        expires: r.get(9),
                    },
                    a,
                )
            }))
    }

    async fn delete_web_session(&self, id: &str) -> Result<()> {
        self.client()
            .await?
            .execute("DELETE FROM web_sessions WHERE id = $1", &[&id])
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn prune_web_sessions(&self, now: UnixTime) -> Result<u64> {
        self.client()
            .await?
            .execute("DELETE FROM web_sessions WHERE expires <= $1", &[&now])
            .await
            .map_err(err)
    }

    async fn put_api_token(&self, t: &ApiToken) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO api_tokens (id, account, name, secret, created, expires) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&t.id, &t.account, &t.name, &t.secret, &t.created, &t.expires],
            )
            .await
            .map_err(unique(format!("token {:?}", t.name)))?;
        Ok(())
    }

    async fn api_token(&self, id: &str) -> Result<Option<(ApiToken, Account)>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT a.id, a.address, a.domain, a.quota, a.enabled, a.created, \
                 t.id, t.name, t.secret, t.created, t.expires FROM api_tokens t \
                 JOIN accounts a ON a.id = t.account WHERE t.id = $1 AND a.enabled",
                &[&id],
            )
            .await
            .map_err(err)?
            .map(|r| {
                let a = account_row(&r);
                (
                    ApiToken {
                        id: r.get(6),
                        account: a.id,
                        name: r.get(7),
                        secret: r.get(8),
                        created: r.get(9),
                        expires: r.get(10),
                    },
                    a,
                )
            }))
    }

    async fn api_tokens(&self, account: AccountId) -> Result<Vec<ApiToken>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT id, account, name, secret, created, expires FROM api_tokens \
                 WHERE account = $1 ORDER BY name",
                &[&account],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| ApiToken {
                id: r.get(0),
                account: r.get(1),
                name: r.get(2),
                secret: r.get(3),
                created: r.get(4),
                expires: r.get(5),
            })
            .collect())
    }

    async fn delete_api_token(&self, account: AccountId, name: &str) -> Result<()> {
        let n = self
            .client()
            .await?
            .execute(
                "DELETE FROM api_tokens WHERE account = $1 AND name = $2",
                &[&account, &name],
            )
            .await
            .map_err(err)?;
        rules::not_found_if_zero(n, || format!("token {name:?}"))
    }

    async fn record_tls_event(&self, e: &TlsOutcome, at: UnixTime) -> Result<()> {
        let e = rules::TlsEventRow::of(e);
        self.client()
            .await?
            .execute(
                "INSERT INTO tls_events (policy_domain, policy_type, policy_strings, mx_host, failure, receiving_ip, sending_ip, receiving_helo, detail, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[&e.policy_domain, &e.policy_type, &e.policy_strings, &e.mx_host, &e.failure, &e.receiving_ip, &e.sending_ip, &e.receiving_helo, &e.detail, &at],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn tls_events(&self, from: UnixTime, until: UnixTime) -> Result<Vec<TlsOutcome>> {
        let rows = self
            .client()
            .await?
            .query(
                "SELECT policy_domain, policy_type, policy_strings, mx_host, failure, receiving_ip, sending_ip, receiving_helo, detail \
                 FROM tls_events WHERE at >= $1 AND at < $2 ORDER BY at, id",
                &[&from, &until],
            )
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| {
                rules::TlsEventRow {
                    policy_domain: r.get(0),
                    policy_type: r.get(1),
                    policy_strings: r.get(2),
                    mx_host: r.get(3),
                    failure: r.get(4),
                    receiving_ip: r.get(5),
                    sending_ip: r.get(6),
                    receiving_helo: r.get(7),
                    detail: r.get(8),
                }
                .outcome()
            })
            .collect())
    }

    async fn store_report(&self, report_domain: &str, submitter: &str, json: &[u8]) -> Result<i64> {
        Ok(self
            .client()
            .await?
            .query_one(
                "INSERT INTO tlsrpt_reports (report_domain, submitter, received, json) VALUES ($1, $2, $3, $4) RETURNING id",
                &[&report_domain, &submitter, &now(), &json],
            )
            .await
            .map_err(err)?
            .get(0))
    }

    async fn reports(&self) -> Result<Vec<ReceivedReport>> {
        let rows = self
            .client()
            .await?
            .query("SELECT id, report_domain, submitter, received, json FROM tlsrpt_reports ORDER BY id", &[])
            .await
            .map_err(err)?;
        Ok(rows
            .iter()
            .map(|r| ReceivedReport {
                id: r.get(0),
                report_domain: r.get(1),
                submitter: r.get(2),
                received: r.get(3),
                json: r.get(4),
            })
            .collect())
    }

    async fn put_sts_policy(&self, p: &CachedStsPolicy) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO sts_policies (domain, record_id, policy, fetched, expires) VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (domain) DO UPDATE SET record_id = $2, policy = $3, fetched = $4, expires = $5",
                &[&p.domain, &p.record_id, &p.policy, &p.fetched, &p.expires],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn claim_report(
        &self,
        kind: ReportKind,
        domain: &str,
        day: UnixTime,
        report_id: &str,
        now: UnixTime,
    ) -> Result<bool> {
        let sql = format!(
            "INSERT INTO {} (domain, day, report_id, at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (domain, day) DO NOTHING",
            rules::claim_table(kind)
        );
        let n = self
            .client()
            .await?
            .execute(
                &sql,
                &[&domain.to_ascii_lowercase(), &day, &report_id, &now],
            )
            .await
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn sent_reports(
        &self,
        kind: ReportKind,
        since: UnixTime,
    ) -> Result<Vec<(String, UnixTime, String, UnixTime)>> {
        let sql = format!(
            "SELECT domain, day, report_id, at FROM {} WHERE day >= $1 ORDER BY day DESC, domain",
            rules::claim_table(kind)
        );
        Ok(self
            .client()
            .await?
            .query(&sql, &[&since])
            .await
            .map_err(err)?
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
            .collect())
    }

    async fn release_report(&self, kind: ReportKind, domain: &str, day: UnixTime) -> Result<()> {
        let sql = format!(
            "DELETE FROM {} WHERE domain = $1 AND day = $2",
            rules::claim_table(kind)
        );
        self.client()
            .await?
            .execute(&sql, &[&domain.to_ascii_lowercase(), &day])
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn record_dmarc_event(&self, e: &DmarcEvent, at: UnixTime) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO dmarc_events (policy_domain, at, event) VALUES ($1, $2, $3)",
                &[
                    &e.policy_domain.to_ascii_lowercase(),
                    &at,
                    &rules::event_json(e)?,
                ],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn dmarc_events(&self, from: UnixTime, until: UnixTime) -> Result<Vec<DmarcEvent>> {
        self.client()
            .await?
            .query(
                "SELECT event FROM dmarc_events WHERE at >= $1 AND at < $2 ORDER BY at, id",
                &[&from, &until],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| rules::event_of(&r.get::<_, String>(0)))
            .collect()
    }

    async fn prune_report_events(&self, before: UnixTime) -> Result<u64> {
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(err)?;
        let mut n = t
            .execute("DELETE FROM dmarc_events WHERE at < $1", &[&before])
            .await
            .map_err(err)?;
        n += t
            .execute("DELETE FROM tls_events WHERE at < $1", &[&before])
            .await
            .map_err(err)?;
        t.commit().await.map_err(err)?;
        Ok(n)
    }

    async fn store_dmarc_report(
        &self,
        policy_domain: &str,
        reporter: &str,
        xml: &[u8],
    ) -> Result<i64> {
        let row = self
            .client()
            .await?
            .query_one(
                "INSERT INTO dmarc_reports (policy_domain, reporter, received, xml) VALUES ($1, $2, $3, $4) RETURNING id",
                &[
                    &policy_domain.to_ascii_lowercase(),
                    &reporter.to_ascii_lowercase(),
                    &now(),
                    &xml,
                ],
            )
            .await
            .map_err(err)?;
        Ok(row.get(0))
    }

    async fn dmarc_reports(&self) -> Result<Vec<ReceivedDmarcReport>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT id, policy_domain, reporter, received, xml FROM dmarc_reports ORDER BY id",
                &[],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| ReceivedDmarcReport {
                id: r.get(0),
                policy_domain: r.get(1),
                reporter: r.get(2),
                received: r.get(3),
                xml: r.get(4),
            })
            .collect())
    }

    async fn sts_policy(&self, domain: &str) -> Result<Option<CachedStsPolicy>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT domain, record_id, policy, fetched, expires FROM sts_policies WHERE domain = $1",
                &[&domain.to_ascii_lowercase()],
            )
            .await
            .map_err(err)?
            .map(|r| CachedStsPolicy { domain: r.get(0), record_id: r.get(1), policy: r.get(2), fetched: r.get(3), expires: r.get(4) }))
    }

    async fn sieve_scripts(&self, account: AccountId) -> Result<Vec<SieveScript>> {
        Ok(self
            .client()
            .await?
            .query(
                "SELECT name, active, content FROM sieve_scripts WHERE account = $1 ORDER BY name",
                &[&account],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| SieveScript {
                name: r.get(0),
                active: r.get(1),
                content: r.get(2),
            })
            .collect())
    }

    async fn sieve_active(&self, accounts: &[AccountId]) -> Result<Vec<AccountId>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .client()
            .await?
            .query(
                "SELECT DISTINCT account FROM sieve_scripts WHERE active AND account = ANY($1)",
                &[&accounts],
            )
            .await
            .map_err(err)?
            .iter()
            .map(|r| r.get(0))
            .collect())
    }

    async fn put_sieve_script(&self, account: AccountId, name: &str, content: &str) -> Result<()> {
        let name = rules::sieve_name(name)?;
        self.client()
            .await?
            .execute(
                "INSERT INTO sieve_scripts (account, name, content, active) VALUES ($1, $2, $3, FALSE) \
                 ON CONFLICT (account, name) DO UPDATE SET content = $3",
                &[&account, &name, &content],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn delete_sieve_script(&self, account: AccountId, name: &str) -> Result<()> {
        let c = self.client().await?;
        let active: Option<bool> = c
            .query_opt(
                "SELECT active FROM sieve_scripts WHERE account = $1 AND name = $2",
                &[&account, &name],
            )
            .await
            .map_err(err)?
            .map(|r| r.get(0));
        match active {
            None => Err(StoreError::NotFound(format!("script {name:?}"))),
            Some(true) => Err(StoreError::Invalid(format!(
                "script {name:?} is active: activate another (or none) first"
            ))),
            Some(false) => {
                // The active flag is checked again in the statement (another node may have
                // activated it meanwhile).
                let n = c
                    .execute(
                        "DELETE FROM sieve_scripts WHERE account = $1 AND name = $2 AND NOT active",
                        &[&account, &name],
                    )
                    .await
                    .map_err(err)?;
                if n == 0 {
                    return Err(StoreError::Invalid(format!(
                        "script {name:?} changed meanwhile"
                    )));
                }
                Ok(())
            }
        }
    }

    async fn rename_sieve_script(&self, account: AccountId, from: &str, to: &str) -> Result<()> {
        let to = rules::sieve_name(to)?;
        let r = self
            .client()
            .await?
            .execute(
                "UPDATE sieve_scripts SET name = $3 WHERE account = $1 AND name = $2",
                &[&account, &from, &to],
            )
            .await;
        match r {
            Ok(0) => Err(StoreError::NotFound(format!("script {from:?}"))),
            Ok(_) => Ok(()),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                Err(StoreError::Exists(format!("script {to:?}")))
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn activate_sieve_script(&self, account: AccountId, name: Option<&str>) -> Result<()> {
        let mut c = self.client().await?;
        let t = c.transaction().await.map_err(err)?;
        t.execute(
            "UPDATE sieve_scripts SET active = FALSE WHERE account = $1",
            &[&account],
        )
        .await
        .map_err(err)?;
        if let Some(name) = name {
            let n = t
                .execute(
                    "UPDATE sieve_scripts SET active = TRUE WHERE account = $1 AND name = $2",
                    &[&account, &name],
                )
                .await
                .map_err(err)?;
            if n == 0 {
                return Err(StoreError::NotFound(format!("script {name:?}")));
            }
        }
        t.commit().await.map_err(err)
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
        let n = self
            .client()
            .await?
            .execute(
                "INSERT INTO vacation_replies (account, sender, handle, sent) SELECT $1::BIGINT, $2::TEXT, $3::TEXT, $4::BIGINT \
                     WHERE (SELECT count(*) FROM vacation_replies WHERE account = $1 AND sent > $4 - 86400) < $6 \
                 ON CONFLICT (account, sender, handle) DO UPDATE SET sent = $4 \
                 WHERE vacation_replies.sent <= $4 - $5",
                &[
                    &account,
                    &sender.to_ascii_lowercase(),
                    &handle,
                    &now,
                    &period,
                    &i64::from(per_day),
                ],
            )
            .await
            .map_err(err)?;
        Ok(n == 1)
    }

    async fn greylist_get(&self, t: &GreyTriplet) -> Result<Option<GreyRecord>> {
        Ok(self
            .client()
            .await?
            .query_opt(
                "SELECT first_seen, last_seen, passed FROM greylist \
                 WHERE network = $1 AND sender = $2 AND recipient = $3",
                &[&t.network, &t.sender, &t.recipient],
            )
            .await
            .map_err(err)?
            .map(|r| GreyRecord {
                first_seen: r.get(0),
                last_seen: r.get(1),
                passed: r.get(2),
            }))
    }

    async fn greylist_put(&self, t: &GreyTriplet, g: &GreyRecord) -> Result<()> {
        self.client()
            .await?
            .execute(
                "INSERT INTO greylist (network, sender, recipient, first_seen, last_seen, passed) \
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (network, sender, recipient) \
                 DO UPDATE SET first_seen = $4, last_seen = $5, passed = $6",
                &[
                    &t.network,
                    &t.sender,
                    &t.recipient,
                    &g.first_seen,
                    &g.last_seen,
                    &g.passed,
                ],
            )
            .await
            .map_err(err)?;
        Ok(())
    }

    async fn greylist_prune(&self, before: UnixTime) -> Result<u64> {
        Ok(self
            .client()
            .await?
            .execute("DELETE FROM greylist WHERE last_seen < $1", &[&before])
            .await
            .map_err(err)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_payloads_round_trip_and_split() {
        let c = MailboxChange {
            account: 7,
            mailbox: 9,
            kind: ChangeKind::Expunged {
                uids: (1..=1200).collect(),
            },
        };
        let payloads = encode_change(&c);
        assert_eq!(payloads.len(), 3);
        assert!(payloads.iter().all(|p| p.len() < 8000));
        let back: Vec<u32> = payloads
            .iter()
            .flat_map(|p| match decode_change(p).unwrap().kind {
                ChangeKind::Expunged { uids } => uids,
                _ => panic!(),
            })
            .collect();
        assert_eq!(back, (1..=1200).collect::<Vec<_>>());
        let m = MailboxChange {
            account: 1,
            mailbox: 2,
            kind: ChangeKind::Mailboxes,
        };
        assert_eq!(decode_change(&encode_change(&m)[0]), Some(m));
        assert_eq!(decode_change("garbage"), None);
        assert_eq!(decode_change("1 2 a "), None);
    }
}
