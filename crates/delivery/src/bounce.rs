//! An operator's "bounce" (Postfix's `postsuper -r` and then a failure, Exim's `-Mg`): a
//! queued message is taken out of the queue now and returned to its sender with a delivery
//! status notification (RFC 3464) for every recipient still pending, as if delivery had failed
//! for good. And how any notice reaches the sender: into the mailbox when the sender is ours,
//! else through the queue from the null reverse path (RFC 5321 §6.1).

use kurier_store::{
    NewQueueEntry, QueueId, Recipient, RecipientStatus, Store, StoreError, UnixTime,
};

use crate::dsn::{self, Action, RecipientNotice};

/// What a bounce did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bounced {
    /// The recipients the notice names.
    pub recipients: Vec<String>,
    /// A notice was queued for another server (wake the queue runner).
    pub queued: bool,
}

/// Returns entry `id` to its sender: removed from the queue (refused while a worker delivers
/// it), then a failure notice for its pending recipients saying `why`. A message from the null
/// sender (itself a notice) is removed without one.
pub async fn bounce(
    store: &dyn Store,
    hostname: &str,
    id: QueueId,
    why: &str,
    now: UnixTime,
) -> Result<Bounced, StoreError> {
    let entry = store
        .queue()
        .await?
        .into_iter()
        .find(|e| e.id == id)
        .ok_or_else(|| StoreError::NotFound(format!("queue entry {id}")))?;
    let body = store.queue_body(id).await?.unwrap_or_default();
    // The removal decides: if a worker holds the entry now, nothing happens.
    store.delete_queue_entry(id, now).await?;
    let pending: Vec<RecipientNotice> = entry
        .recipients
        .iter()
        .filter(|r| r.status == RecipientStatus::Pending && dsn::wants(&r.dsn, Action::Failed))
        .map(|r| RecipientNotice {
            address: r.address.clone(),
            original: r.dsn.orcpt.clone(),
            status: "5.0.0".into(),
            reason: format!(
                "The postmaster returned the message: {why}{}",
                r.last_error
                    .as_deref()
                    .map(|e| format!(" (the last attempt said: {e})"))
                    .unwrap_or_default()
            ),
            remote_mta: None,
            diagnostic: None,
        })
        .collect();
    tracing::info!(queue_id = id, sender = %entry.sender, recipients = pending.len(), reason = why, "returned to the sender by the postmaster");
    let recipients = pending.iter().map(|r| r.address.clone()).collect();
    if entry.sender.is_empty() || pending.is_empty() {
        return Ok(Bounced {
            recipients,
            queued: false,
        });
    }
    let message = dsn::build(&dsn::Notice {
        action: Action::Failed,
        reporting_mta: hostname,
        to: &entry.sender,
        arrival: entry.created,
        now,
        retry_until: None,
        recipients: &pending,
        original: &body,
        request: &entry.dsn,
    });
    let queued = send_notice(store, &entry.sender, &message).await?;
    Ok(Bounced { recipients, queued })
}

/// Hands a notice to `to`: into its mailbox if the address is ours, else into the queue with
/// an empty reverse path; true when queued (the runner should be woken).
pub async fn send_notice(store: &dyn Store, to: &str, message: &[u8]) -> Result<bool, StoreError> {
    match store.resolve(to).await? {
        Recipient::Local(accounts) => {
            let ids: Vec<i64> = accounts.iter().map(|a| a.id).collect();
            store.deliver(&ids, message).await?;
            Ok(false)
        }
        Recipient::NotHosted => {
            let entry = NewQueueEntry {
                sender: String::new(),
                recipients: vec![(to.to_string(), Default::default())],
                require_tls: false,
                dsn: Default::default(),
            };
            store.enqueue(&entry, message).await?;
            Ok(true)
        }
        Recipient::Unknown => {
            tracing::warn!(sender = %to, "a delivery notice has nobody to go to (the sender's address does not exist here)");
            Ok(false)
        }
    }
}
