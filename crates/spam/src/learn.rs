//! Training rspamd from what users do: a message copied or moved into the Junk mailbox is
//! learned as spam, one moved out of Junk into anything but Trash as ham (the rule of
//! Dovecot's IMAPSieve "report spam/ham" scripts). The IMAP command only queues the lesson; a
//! worker reads the messages from the store and sends them to rspamd's controller, so a slow
//! or absent rspamd never slows IMAP. The queue is bounded: when it is full, the lesson is
//! dropped and logged.

use std::sync::Arc;

use kurier_store::{MailboxId, SpecialUse, Store};
use tokio::sync::mpsc;

use crate::client::{LearnKind, Rspamd};
use crate::protocol::Learned;

/// Lessons waiting at most.
pub const QUEUE: usize = 64;
/// Messages taught from one IMAP command at most (a user who moves a whole archive into Junk
/// teaches the first ones).
pub const MAX_LESSON_MESSAGES: usize = 1000;

/// What a copy from a mailbox of `from` use to one of `to` use teaches, if anything.
pub fn lesson(from: Option<SpecialUse>, to: Option<SpecialUse>) -> Option<LearnKind> {
    let junk = |u: Option<SpecialUse>| u == Some(SpecialUse::Junk);
    match (junk(from), junk(to)) {
        (false, true) => Some(LearnKind::Spam),
        // Into Trash is throwing spam away, not calling it ham.
        (true, false) if to != Some(SpecialUse::Trash) => Some(LearnKind::Ham),
        _ => None,
    }
}

/// Messages to teach: their copies in `mailbox` (the target of the copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lesson {
    pub kind: LearnKind,
    pub mailbox: MailboxId,
    pub uids: Vec<u32>,
}

/// What the learner did, for monitoring.
pub trait LearnEvents: Send + Sync {
    /// One message was taught (`ok`) or could not be (rspamd down, store error).
    fn learned(&self, kind: LearnKind, ok: bool);
}

/// The queue in front of the learning worker.
#[derive(Clone)]
pub struct Learner {
    queue: mpsc::Sender<Lesson>,
}

impl Learner {
    /// Starts the worker (it ends when the last `Learner` is dropped).
    pub fn start(rspamd: Rspamd, store: Arc<dyn Store>, events: Arc<dyn LearnEvents>) -> Learner {
        let (queue, mut lessons) = mpsc::channel::<Lesson>(QUEUE);
        tokio::spawn(async move {
            while let Some(l) = lessons.recv().await {
                teach(&rspamd, &*store, &*events, l).await;
            }
        });
        Learner { queue }
    }

    /// Queues a lesson without waiting; false (and logged) when the queue is full.
    pub fn offer(&self, mut lesson: Lesson) -> bool {
        if lesson.uids.len() > MAX_LESSON_MESSAGES {
            tracing::info!(
                messages = lesson.uids.len(),
                taught = MAX_LESSON_MESSAGES,
                "only the first messages of a large Junk move are taught to rspamd"
            );
            lesson.uids.truncate(MAX_LESSON_MESSAGES);
        }
        match self.queue.try_send(lesson) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "rspamd learning queue full; lesson dropped");
                false
            }
        }
    }
}

async fn teach(rspamd: &Rspamd, store: &dyn Store, events: &dyn LearnEvents, l: Lesson) {
    for uid in l.uids {
        let body = match store.message_body(l.mailbox, uid).await {
            Ok(Some(b)) => b,
            // Expunged in the meantime: nothing to teach.
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!(error = %e, "cannot read a message to teach rspamd");
                events.learned(l.kind, false);
                continue;
            }
        };
        match rspamd.learn(l.kind, &body).await {
            Ok(Learned::Yes) => {
                tracing::debug!(kind = ?l.kind, uid, "rspamd learned a message");
                events.learned(l.kind, true);
            }
            Ok(Learned::Skipped(why)) => {
                tracing::info!(kind = ?l.kind, uid, reason = %why, "rspamd did not learn a message");
            }
            Err(e) => {
                tracing::warn!(kind = ?l.kind, uid, error = %e, "teaching rspamd failed");
                events.learned(l.kind, false);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn into_junk_is_spam_out_of_junk_is_ham_but_not_into_trash() {
        use SpecialUse::*;
        assert_eq!(lesson(None, Some(Junk)), Some(LearnKind::Spam));
        assert_eq!(lesson(Some(Archive), Some(Junk)), Some(LearnKind::Spam));
        assert_eq!(lesson(Some(Junk), None), Some(LearnKind::Ham));
        assert_eq!(lesson(Some(Junk), Some(Archive)), Some(LearnKind::Ham));
        assert_eq!(lesson(Some(Junk), Some(Trash)), None);
        assert_eq!(lesson(Some(Junk), Some(Junk)), None);
        assert_eq!(lesson(None, Some(Trash)), None);
        assert_eq!(lesson(None, None), None);
    }
}
