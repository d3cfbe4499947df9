//! The selected mailbox as one session sees it (RFC 9051 §2.3.1.2, §7.4.1, §7.5): messages in
//! sequence-number order, and how changes made elsewhere reach the client — new messages as
//! EXISTS, flag changes as FETCH, removals as EXPUNGE, the last only when the command allows it
//! (never during FETCH, STORE or SEARCH, RFC 9051 §7.5.1). Pure.

use std::collections::BTreeSet;

use kurier_store::MessageMeta;

use crate::command::{SeqNum, SequenceSet};

/// An untagged response that tells the client about a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Update {
    Exists(u32),
    /// Sequence number at the time, and the UID (for QRESYNC's VANISHED).
    Expunge {
        seq: u32,
        uid: u32,
    },
    /// Flags (and MODSEQ) of one message changed.
    Flags {
        seq: u32,
        uid: u32,
    },
}

#[derive(Debug, Clone)]
pub struct View {
    /// Sorted by UID; index + 1 is the sequence number.
    messages: Vec<MessageMeta>,
    /// The highest MODSEQ this view has caught up with (`messages_since` starts there).
    pub caught_up: u64,
    /// Removed in the store, not yet announced.
    expunged: BTreeSet<u32>,
}

/// A sequence number past the end (RFC 9051 §9: the client is wrong, the answer is BAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadSequence(pub u32);

impl View {
    pub fn new(mut messages: Vec<MessageMeta>, highest_modseq: u64) -> Self {
        messages.sort_by_key(|m| m.uid);
        View {
            messages,
            caught_up: highest_modseq,
            expunged: BTreeSet::new(),
        }
    }

    pub fn len(&self) -> u32 {
        self.messages.len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn messages(&self) -> &[MessageMeta] {
        &self.messages
    }

    /// The message with sequence number `seq` (1-based).
    pub fn get(&self, seq: u32) -> Option<&MessageMeta> {
        self.messages.get((seq as usize).checked_sub(1)?)
    }

    pub fn largest_uid(&self) -> u32 {
        self.messages.last().map_or(0, |m| m.uid)
    }

    pub fn seq_of(&self, uid: u32) -> Option<u32> {
        self.messages
            .binary_search_by_key(&uid, |m| m.uid)
            .ok()
            .map(|i| i as u32 + 1)
    }

    /// Whether the message was removed elsewhere and is only kept until it can be announced.
    pub fn is_expunged(&self, uid: u32) -> bool {
        self.expunged.contains(&uid)
    }

    /// The sequence numbers a set names, ascending. UID sets name the UIDs in use within their
    /// ranges (`*` is the largest UID; RFC 9051 §6.4.9: `n:*` includes the last message even
    /// when n is larger); sequence sets must stay within the mailbox.
    pub fn resolve(&self, set: &SequenceSet, uid: bool) -> Result<Vec<u32>, BadSequence> {
        let mut out = BTreeSet::new();
        if uid {
            let largest = self.largest_uid();
            for &(a, b) in &set.0 {
                let v = |s: SeqNum| match s {
                    SeqNum::Value(v) => v,
                    SeqNum::Largest => largest,
                };
                let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
                let start = self.messages.partition_point(|m| m.uid < lo);
                for (i, m) in self.messages[start..].iter().enumerate() {
                    if m.uid > hi {
                        break;
                    }
                    out.insert((start + i) as u32 + 1);
                }
            }
        } else {
            let n = self.len();
            for &(a, b) in &set.0 {
                let v = |s: SeqNum| match s {
                    SeqNum::Value(v) => v,
                    SeqNum::Largest => n,
                };
                let (lo, hi) = (v(a).min(v(b)), v(a).max(v(b)));
                if hi > n || lo == 0 {
                    return Err(BadSequence(hi));
                }
                out.extend(lo..=hi);
            }
        }
        Ok(out.into_iter().collect())
    }

    /// Notes UIDs removed elsewhere (from a change announcement).
    pub fn note_expunged(&mut self, uids: &[u32]) {
        for &uid in uids {
            if self.seq_of(uid).is_some() {
                self.expunged.insert(uid);
            }
        }
    }

    pub fn has_pending_expunges(&self) -> bool {
        !self.expunged.is_empty()
    }

    /// Applies what `messages_since(caught_up)` returned: changed flags of known messages and
    /// new messages (UIDs above the largest known). Returns the updates to send.
    pub fn catch_up(&mut self, changed: Vec<MessageMeta>) -> Vec<Update> {
        let mut updates = Vec::new();
        let before = self.len();
        for m in changed {
            self.caught_up = self.caught_up.max(m.modseq);
            match self.messages.binary_search_by_key(&m.uid, |x| x.uid) {
                Ok(i) => {
                    let known = &mut self.messages[i];
                    if known.flags != m.flags || known.modseq < m.modseq {
                        *known = m;
                        if i < before as usize {
                            updates.push(Update::Flags {
                                seq: i as u32 + 1,
                                uid: known.uid,
                            });
                        }
                    }
                }
                Err(i) if i == self.messages.len() => self.messages.push(m),
                // A UID below the largest that we never saw: UIDs only grow, so it was
                // announced and expunged before we caught up. Nothing to tell.
                Err(_) => {}
            }
        }
        if self.len() > before {
            updates.insert(0, Update::Exists(self.len()));
        }
        updates
    }

    /// Replaces the state after a full reload (the change feed lost track): everything that
    /// differs becomes an update; removals only if `expunge_ok`, else they wait.
    pub fn reload(
        &mut self,
        fresh: Vec<MessageMeta>,
        highest: u64,
        expunge_ok: bool,
    ) -> Vec<Update> {
        let present: BTreeSet<u32> = fresh.iter().map(|m| m.uid).collect();
        let gone: Vec<u32> = self
            .messages
            .iter()
            .map(|m| m.uid)
            .filter(|u| !present.contains(u))
            .collect();
        self.note_expunged(&gone);
        let mut updates = if expunge_ok {
            self.announce_expunges()
        } else {
            Vec::new()
        };
        self.caught_up = 0;
        updates.extend(self.catch_up(fresh));
        self.caught_up = self.caught_up.max(highest);
        updates
    }

    /// Removes the noted expunged messages; one EXPUNGE per message, highest sequence number
    /// first so that each number is valid when the client reads it.
    pub fn announce_expunges(&mut self) -> Vec<Update> {
        let uids = std::mem::take(&mut self.expunged);
        self.remove(uids.iter().copied())
    }

    /// Removes messages this session expunged itself.
    pub fn remove(&mut self, uids: impl IntoIterator<Item = u32>) -> Vec<Update> {
        let mut seqs: Vec<u32> = uids.into_iter().filter_map(|u| self.seq_of(u)).collect();
        seqs.sort_unstable();
        seqs.dedup();
        let mut updates = Vec::new();
        for &seq in seqs.iter().rev() {
            let m = self.messages.remove(seq as usize - 1);
            self.expunged.remove(&m.uid);
            updates.push(Update::Expunge { seq, uid: m.uid });
        }
        updates
    }

    /// Records a change this session made (STORE): the client is told in the command's own
    /// responses, so a later catch-up finds nothing new about it.
    pub fn update(&mut self, m: MessageMeta) -> Option<u32> {
        let seq = self.seq_of(m.uid)?;
        self.messages[seq as usize - 1] = m;
        Some(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(uid: u32, modseq: u64, flags: &[&str]) -> MessageMeta {
        MessageMeta {
            mailbox: 1,
            uid,
            modseq,
            flags: flags.iter().map(|f| f.to_string()).collect(),
            internal_date: 0,
            size: 10,
        }
    }

    fn set(s: &str) -> SequenceSet {
        match crate::command::parse(format!("a FETCH {s} FLAGS\r\n").as_bytes()) {
            Ok((_, crate::command::Command::Fetch { set, .. })) => set,
            other => panic!("{other:?}"),
        }
    }

    fn view() -> View {
        View::new(vec![m(3, 3, &[]), m(1, 1, &[]), m(7, 7, &["\\Seen"])], 7)
    }

    #[test]
    fn sequence_numbers_and_uid_sets() {
        let v = view();
        assert_eq!(v.seq_of(7), Some(3));
        assert_eq!(v.get(2).unwrap().uid, 3);
        assert_eq!(v.resolve(&set("1:*"), false), Ok(vec![1, 2, 3]));
        assert_eq!(v.resolve(&set("3,1"), false), Ok(vec![1, 3]));
        assert_eq!(v.resolve(&set("4"), false), Err(BadSequence(4)));
        assert_eq!(v.resolve(&set("2:5"), true), Ok(vec![2]));
        assert_eq!(
            v.resolve(&set("100:*"), true),
            Ok(vec![3]),
            "n:* includes the last"
        );
        assert_eq!(v.resolve(&set("8:9"), true), Ok(vec![]));
        let empty = View::new(vec![], 0);
        assert_eq!(empty.resolve(&set("1:*"), true), Ok(vec![]));
        assert!(empty.resolve(&set("*"), false).is_err());
    }

    #[test]
    fn catch_up_announces_new_messages_and_flag_changes() {
        let mut v = view();
        let u = v.catch_up(vec![m(3, 8, &["\\Flagged"]), m(9, 9, &[]), m(10, 10, &[])]);
        assert_eq!(u, [Update::Exists(5), Update::Flags { seq: 2, uid: 3 }]);
        assert_eq!(v.caught_up, 10);
        assert_eq!(v.catch_up(vec![m(3, 8, &["\\Flagged"])]), []);
        assert_eq!(v.catch_up(vec![m(2, 11, &[])]), [], "unknown old UID");
    }

    #[test]
    fn own_changes_are_not_announced_twice() {
        let mut v = view();
        assert_eq!(v.update(m(1, 12, &["\\Seen"])), Some(1));
        assert_eq!(v.catch_up(vec![m(1, 12, &["\\Seen"])]), []);
        assert_eq!(v.remove([3]), [Update::Expunge { seq: 2, uid: 3 }]);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn expunges_wait_until_allowed_and_go_highest_first() {
        let mut v = view();
        v.note_expunged(&[1, 7, 99]);
        assert!(v.has_pending_expunges());
        assert!(v.is_expunged(1));
        assert_eq!(v.len(), 3, "kept until announced");
        assert_eq!(
            v.announce_expunges(),
            [
                Update::Expunge { seq: 3, uid: 7 },
                Update::Expunge { seq: 1, uid: 1 }
            ]
        );
        assert_eq!(v.len(), 1);
        assert_eq!(v.get(1).unwrap().uid, 3);
    }

    #[test]
    fn reload_after_losing_track() {
        let mut v = view();
        let u = v.reload(
            vec![m(3, 3, &["\\Seen"]), m(7, 7, &["\\Seen"]), m(8, 8, &[])],
            9,
            false,
        );
        assert_eq!(u, [Update::Exists(4), Update::Flags { seq: 2, uid: 3 }]);
        assert_eq!(v.caught_up, 9);
        assert_eq!(v.announce_expunges(), [Update::Expunge { seq: 1, uid: 1 }]);
        let mut v = view();
        let u = v.reload(vec![m(7, 7, &["\\Seen"])], 7, true);
        assert_eq!(
            u,
            [
                Update::Expunge { seq: 2, uid: 3 },
                Update::Expunge { seq: 1, uid: 1 }
            ]
        );
    }
}
