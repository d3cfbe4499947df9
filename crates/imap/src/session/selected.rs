//! The selected state (RFC 9051 §3.3, §6.4): one mailbox open, its view kept in step with
//! what other sessions and deliveries change (announced as EXISTS, EXPUNGE or VANISHED and
//! FETCH, RFC 7162 CONDSTORE/QRESYNC), and its commands: CHECK, EXPUNGE (RFC 4315 UID
//! EXPUNGE), SEARCH (RFC 4731 ESEARCH), STORE, COPY and MOVE (RFC 6851). FETCH is in `fetch`.

use std::collections::BTreeSet;
use std::sync::Arc;

use kurier_store::{ChangeKind, FlagChange, Mailbox, MailboxChange, MessageMeta, StoreError};
use tokio::io::{AsyncRead, AsyncWrite};

use super::authenticated::User;
use super::{
    Connection, Done, Res, SYSTEM_FLAGS, bad, claim_recent, compact_set, has_flag, header, no, ok,
};
use crate::cache::CachedHeader;
use crate::command::{Command, Qresync, SearchReturn, SequenceSet, StoreMode};
use crate::response::flags as write_flags;
use crate::search::{Candidate, MessageFacts, SearchKey, SearchText};
use crate::server::Io;
use crate::view::{Update, View};

pub(super) struct Selected {
    pub(super) mailbox: Mailbox,
    pub(super) read_only: bool,
    pub(super) view: View,
    /// Appends or flag changes were announced for it: catch up before the next response.
    pub(super) stale: bool,
    /// The change feed overflowed: reload the whole mailbox.
    pub(super) lost: bool,
    /// UIDs that are `\Recent` in this session (RFC 3501 §2.3.2; IMAP4rev1 only).
    pub(super) recent: BTreeSet<u32>,
    /// Keywords announced in FLAGS; a new one is announced before it is used.
    pub(super) keywords: BTreeSet<String>,
    /// QRESYNC is on: removals are told as VANISHED (RFC 7162 §3.2.10), not EXPUNGE.
    pub(super) qresync: bool,
}

impl Selected {
    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` for the keywords known now.
    pub(super) fn flags_lines(&self) -> String {
        let keywords: String = self.keywords.iter().map(|k| format!(" {k}")).collect();
        let permanent = if self.read_only {
            String::new()
        } else {
            format!("{SYSTEM_FLAGS}{keywords} \\*")
        };
        format!(
            "* FLAGS ({SYSTEM_FLAGS}{keywords})\r\n* OK [PERMANENTFLAGS ({permanent})] Flags permitted\r\n"
        )
    }

    /// Announces keywords in `flags` that the client has not seen in FLAGS yet (a client may
    /// reject a keyword it was not told of).
    pub(super) fn note_keywords(&mut self, flags: &[String], out: &mut Vec<u8>) {
        let mut new = false;
        for f in flags.iter().filter(|f| !f.starts_with('\\')) {
            new |= self.keywords.insert(f.clone());
        }
        if new {
            out.extend_from_slice(self.flags_lines().as_bytes());
        }
    }

    /// `* seq FETCH (UID n FLAGS (…) MODSEQ (n))` after announcing new keywords.
    fn flags_response(
        &mut self,
        out: &mut Vec<u8>,
        seq: u32,
        uid: bool,
        condstore: bool,
        rev2: bool,
    ) {
        let Some(m) = self.view.get(seq).cloned() else {
            return;
        };
        self.note_keywords(&m.flags, out);
        out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
        if uid {
            out.extend_from_slice(format!("UID {} ", m.uid).as_bytes());
        }
        out.extend_from_slice(b"FLAGS ");
        self.write_flags(out, &m, rev2);
        if condstore {
            out.extend_from_slice(format!(" MODSEQ ({})", m.modseq).as_bytes());
        }
        out.extend_from_slice(b")\r\n");
    }

    /// Removes what this session expunged and tells the client.
    fn announce_removed(&mut self, uids: Vec<u32>, out: &mut Vec<u8>) {
        let gone: Vec<(u32, u32)> = self
            .view
            .remove(uids)
            .into_iter()
            .filter_map(|u| match u {
                Update::Expunge { seq, uid } => Some((seq, uid)),
                _ => None,
            })
            .collect();
        self.write_expunges(&gone, out);
    }

    /// One EXPUNGE per (sequence number, UID), in the order given; with QRESYNC one VANISHED
    /// naming the UIDs.
    fn write_expunges(&self, gone: &[(u32, u32)], out: &mut Vec<u8>) {
        if gone.is_empty() {
            return;
        }
        if self.qresync {
            let mut uids: Vec<u32> = gone.iter().map(|g| g.1).collect();
            uids.sort_unstable();
            out.extend_from_slice(format!("* VANISHED {}\r\n", compact_set(&uids)).as_bytes());
        } else {
            for (seq, _) in gone {
                out.extend_from_slice(format!("* {seq} EXPUNGE\r\n").as_bytes());
            }
        }
    }

    /// A message's flags, with `\Recent` where it applies (never in IMAP4rev2).
    pub(super) fn write_flags(&self, out: &mut Vec<u8>, m: &MessageMeta, rev2: bool) {
        if !rev2 && self.recent.contains(&m.uid) {
            let mut with = vec!["\\Recent".to_string()];
            with.extend(m.flags.iter().cloned());
            write_flags(out, &with);
        } else {
            write_flags(out, &m.flags);
        }
    }

    /// A command of the selected state (CLOSE and UNSELECT change the state: `dispatch`).
    pub(super) async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &mut User,
        cmd: Command,
        io: &mut Io<S>,
    ) -> Res {
        match cmd {
            Command::Check => Ok(ok("CHECK completed")),
            Command::Expunge { uids } => self.expunge(conn, user, uids.as_ref(), io).await,
            Command::Search { uid, ret, key } => self.search(conn, user, uid, ret, &key, io).await,
            Command::Fetch {
                uid,
                set,
                items,
                changed_since,
                vanished,
            } => {
                if vanished && let Some(since) = changed_since {
                    self.vanished_since(conn, user, &set, since, io).await?;
                }
                self.fetch(conn, user, uid, &set, &items, changed_since, io)
                    .await
            }
            Command::Store {
                uid,
                set,
                unchanged_since,
                mode,
                silent,
                flags,
            } => {
                self.store_flags(
                    conn,
                    user,
                    uid,
                    &set,
                    unchanged_since,
                    mode,
                    silent,
                    &flags,
                    io,
                )
                .await
            }
            Command::Copy { uid, set, mailbox } => {
                self.copy(conn, user, uid, &set, &mailbox, false, io).await
            }
            Command::Move { uid, set, mailbox } => {
                self.copy(conn, user, uid, &set, &mailbox, true, io).await
            }
            _ => Err(bad("[CLIENTBUG] Command not valid here")),
        }
    }

    /// CLOSE (RFC 9051 §6.4.1): what is \Deleted goes, silently; EXAMINE deletes nothing.
    pub(super) async fn close(self: Box<Self>, conn: &Connection) -> Res {
        if !self.read_only {
            let deleted: Vec<u32> = self
                .view
                .messages()
                .iter()
                .filter(|m| has_flag(m, "\\Deleted"))
                .map(|m| m.uid)
                .collect();
            if !deleted.is_empty() {
                conn.store().expunge(self.mailbox.id, &deleted).await?;
            }
        }
        Ok(ok("CLOSE completed"))
    }

    /// A change of the store: marks the view if it is this mailbox's.
    pub(super) fn note_change(&mut self, account: i64, c: &MailboxChange) {
        if c.kind == ChangeKind::Missed {
            return self.lost_track();
        }
        if c.account != account || c.mailbox != self.mailbox.id {
            return;
        }
        match &c.kind {
            ChangeKind::Appended { .. } | ChangeKind::Flags { .. } => self.stale = true,
            ChangeKind::Expunged { uids } => self.view.note_expunged(uids),
            ChangeKind::Mailboxes | ChangeKind::Missed => {}
        }
    }

    /// The change feed overflowed: the next announcement reloads the mailbox.
    pub(super) fn lost_track(&mut self) {
        self.lost = true;
    }

    /// SELECT (QRESYNC …) (RFC 7162 §3.2.5): when the client's UIDVALIDITY is still good, what
    /// was expunged since its MODSEQ (VANISHED (EARLIER)) and what changed (FETCH).
    pub(super) async fn resync<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &User,
        q: &Qresync,
        io: &mut Io<S>,
    ) -> Result<(), Done> {
        let (store, rev2) = (conn.store(), user.rev2);
        if q.uid_validity != self.mailbox.uid_validity {
            return Ok(());
        }
        let mut gone = store.expunged_since(self.mailbox.id, q.modseq).await?;
        if let Some(known) = &q.known_uids {
            gone.retain(|&u| known.contains(u, u32::MAX));
        }
        if !gone.is_empty() {
            io.out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", compact_set(&gone)).as_bytes(),
            );
        }
        let changed: Vec<u32> = (1..=self.view.len())
            .filter(|&seq| self.view.get(seq).is_some_and(|m| m.modseq > q.modseq))
            .collect();
        for seq in changed {
            self.flags_response(&mut io.out, seq, true, true, rev2);
        }
        Ok(())
    }

    /// UID FETCH … (CHANGEDSINCE n VANISHED) (RFC 7162 §3.2.6): the UIDs of the set expunged
    /// since n, before the FETCH answers.
    async fn vanished_since<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &User,
        set: &SequenceSet,
        since: u64,
        io: &mut Io<S>,
    ) -> Result<(), Done> {
        if !user.qresync {
            return Err(bad("[CLIENTBUG] ENABLE QRESYNC first (RFC 7162, 3.2.6)"));
        }
        let store = conn.server.store.clone();
        let mut gone = store.expunged_since(self.mailbox.id, since).await?;
        // `*` reaches past the last message still here.
        gone.retain(|&u| set.contains(u, u32::MAX));
        if !gone.is_empty() {
            io.out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", compact_set(&gone)).as_bytes(),
            );
        }
        Ok(())
    }

    /// Tells the client what changed in the selected mailbox: EXPUNGEs first (when allowed),
    /// then EXISTS and flag changes.
    pub(super) async fn announce<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &mut User,
        io: &mut Io<S>,
        expunge_ok: bool,
    ) -> Result<(), StoreError> {
        user.drain_changes(Some(self));
        let store = conn.server.store.clone();
        let (condstore, rev2) = (user.condstore, user.rev2);
        let mut updates = Vec::new();
        let largest_before = self.view.largest_uid();
        if self.lost {
            let mb = store
                .mailbox(self.mailbox.account, &self.mailbox.name)
                .await?;
            let fresh = store.messages(self.mailbox.id).await?;
            let highest = mb.map_or(0, |m| m.highest_modseq);
            updates = self.view.reload(fresh, highest, expunge_ok);
            (self.lost, self.stale) = (false, false);
        } else {
            if expunge_ok {
                updates = self.view.announce_expunges();
            }
            if self.stale {
                self.stale = false;
                let changed = store
                    .messages_since(self.mailbox.id, self.view.caught_up)
                    .await?;
                updates.extend(self.view.catch_up(changed));
            }
        }
        if !self.read_only && self.view.largest_uid() > largest_before {
            // New messages are recent here if no other session claimed them first.
            let first = claim_recent(&*store, self.mailbox.id, largest_before + 1).await?;
            let fresh: Vec<u32> = self
                .view
                .messages()
                .iter()
                .map(|m| m.uid)
                .filter(|&u| u > largest_before && u >= first)
                .collect();
            self.recent.extend(fresh);
        }
        let mut gone = Vec::new();
        for u in updates {
            if let Update::Expunge { seq, uid } = u {
                gone.push((seq, uid));
                continue;
            }
            self.write_expunges(&std::mem::take(&mut gone), &mut io.out);
            match u {
                Update::Exists(n) => {
                    io.out
                        .extend_from_slice(format!("* {n} EXISTS\r\n").as_bytes());
                    if !rev2 {
                        let recent = self.recent.len();
                        io.out
                            .extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
                    }
                }
                Update::Expunge { .. } => {}
                Update::Flags { seq, .. } => {
                    self.flags_response(&mut io.out, seq, true, condstore, rev2)
                }
            }
        }
        self.write_expunges(&gone, &mut io.out);
        Ok(())
    }

    async fn expunge<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &mut User,
        uids: Option<&SequenceSet>,
        io: &mut Io<S>,
    ) -> Res {
        // See the newest flags first: a \Deleted set elsewhere counts.
        self.announce(conn, user, io, true).await?;
        let store = conn.server.store.clone();
        if self.read_only {
            return Err(no("[READ-ONLY] The mailbox is read-only"));
        }
        let largest = self.view.largest_uid();
        let doomed: Vec<u32> = self
            .view
            .messages()
            .iter()
            .filter(|m| has_flag(m, "\\Deleted"))
            .filter(|m| uids.is_none_or(|set| set.contains(m.uid, largest)))
            .map(|m| m.uid)
            .collect();
        if !doomed.is_empty() {
            let removed = store.expunge(self.mailbox.id, &doomed).await?;
            self.announce_removed(removed, &mut io.out);
        }
        Ok(ok("EXPUNGE completed"))
    }

    async fn search<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &mut User,
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        key: &SearchKey,
        io: &mut Io<S>,
    ) -> Res {
        let store = conn.server.store.clone();
        let rev2 = user.rev2;
        let (largest_seq, largest_uid) = (self.view.len(), self.view.largest_uid());
        // (sequence number, UID, MODSEQ) of each match.
        let mut hits: Vec<(u32, u32, u64)> = Vec::new();
        for (i, meta) in self.view.messages().iter().enumerate() {
            let text = if key.needs_body() {
                match store.message_body(self.mailbox.id, meta.uid).await? {
                    Some(body) => {
                        conn.server.headers.put(self.mailbox.id, meta.uid, &body);
                        Some(Text::Whole(SearchText::new(&body)))
                    }
                    None => continue,
                }
            } else if key.needs_text() {
                match header(&conn.server, self.mailbox.id, meta.uid).await? {
                    Some(h) => Some(Text::Header(h)),
                    None => continue,
                }
            } else {
                None
            };
            let seq = i as u32 + 1;
            let facts = MessageFacts {
                uid: meta.uid,
                modseq: meta.modseq,
                flags: &meta.flags,
                internal_date: meta.internal_date,
                size: meta.size,
                recent: self.recent.contains(&meta.uid),
            };
            let candidate = Candidate {
                seq,
                largest_seq,
                largest_uid,
                meta: facts,
                text: text.as_ref().map(Text::get),
            };
            if key.matches(&candidate) {
                hits.push((seq, meta.uid, meta.modseq));
            }
        }
        let numbers: Vec<u32> = hits
            .iter()
            .map(|&(s, u, _)| if uid { u } else { s })
            .collect();
        let modseq = key.uses_modseq() && !hits.is_empty();
        let mut top_modseq = hits.iter().map(|h| h.2).max().unwrap_or(0);
        let ret = match ret {
            // RFC 4731 §3.1: RETURN () means ALL.
            Some(r) if r.is_empty() => Some(vec![SearchReturn::All]),
            Some(r) => Some(r),
            None if rev2 => Some(vec![SearchReturn::All]),
            None => None,
        };
        match ret {
            None => {
                let mut line = String::from("* SEARCH");
                for n in &numbers {
                    line.push_str(&format!(" {n}"));
                }
                if modseq {
                    line.push_str(&format!(" (MODSEQ {top_modseq})"));
                }
                line.push_str("\r\n");
                io.out.extend_from_slice(line.as_bytes());
            }
            Some(ret) => {
                // RFC 7162 §3.1.5: with only MIN and/or MAX, MODSEQ is of the messages returned.
                if !ret
                    .iter()
                    .any(|r| matches!(r, SearchReturn::All | SearchReturn::Count))
                {
                    top_modseq = hits
                        .iter()
                        .filter(|h| {
                            (ret.contains(&SearchReturn::Min) && Some(h) == hits.first().as_ref())
                                || (ret.contains(&SearchReturn::Max)
                                    && Some(h) == hits.last().as_ref())
                        })
                        .map(|h| h.2)
                        .max()
                        .unwrap_or(0);
                }
                // RFC 4731 §3.1: the correlator names the command.
                let mut line = format!("* ESEARCH (TAG \"{}\")", conn.tag);
                if uid {
                    line.push_str(" UID");
                }
                for r in ret {
                    match r {
                        SearchReturn::Min if !numbers.is_empty() => {
                            line.push_str(&format!(" MIN {}", numbers.iter().min().unwrap_or(&0)))
                        }
                        SearchReturn::Max if !numbers.is_empty() => {
                            line.push_str(&format!(" MAX {}", numbers.iter().max().unwrap_or(&0)))
                        }
                        SearchReturn::All if !numbers.is_empty() => {
                            line.push_str(&format!(" ALL {}", compact_set(&numbers)))
                        }
                        SearchReturn::Count => line.push_str(&format!(" COUNT {}", numbers.len())),
                        _ => {}
                    }
                }
                if modseq {
                    line.push_str(&format!(" MODSEQ {top_modseq}"));
                }
                line.push_str("\r\n");
                io.out.extend_from_slice(line.as_bytes());
            }
        }
        Ok(ok("SEARCH completed"))
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_flags<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &mut User,
        uid: bool,
        set: &SequenceSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: &[String],
        io: &mut Io<S>,
    ) -> Res {
        if unchanged_since.is_some() {
            user.enable_condstore(Some(self), io);
            // Compare against the newest MODSEQs (no EXPUNGE here: RFC 9051 §7.5.1).
            self.announce(conn, user, io, uid).await?;
        }
        let store = conn.server.store.clone();
        let (condstore, rev2) = (user.condstore, user.rev2);
        if self.read_only {
            return Err(no("[READ-ONLY] The mailbox is read-only"));
        }
        let seqs = self
            .view
            .resolve(set, uid)
            .map_err(|e| bad(format!("[CLIENTBUG] No message {}", e.0)))?;
        let mut targets = Vec::new();
        let mut modified = Vec::new();
        for &seq in &seqs {
            let Some(m) = self.view.get(seq) else {
                continue;
            };
            if self.view.is_expunged(m.uid) {
                continue;
            }
            if unchanged_since.is_some_and(|u| m.modseq > u) {
                modified.push(if uid { m.uid } else { seq });
                continue;
            }
            targets.push(m.uid);
        }
        let flags: Vec<&str> = flags
            .iter()
            .map(String::as_str)
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .collect();
        let change = match mode {
            StoreMode::Add => FlagChange::Add,
            StoreMode::Remove => FlagChange::Remove,
            StoreMode::Replace => FlagChange::Replace,
        };
        let changed = if targets.is_empty() {
            Vec::new()
        } else {
            store
                .set_flags(self.mailbox.id, &targets, change, &flags)
                .await?
        };
        let changed_uids: Vec<u32> = changed.iter().map(|m| m.uid).collect();
        for m in changed {
            self.view.update(m);
        }
        for target in targets {
            let was_changed = changed_uids.contains(&target);
            // RFC 7162 §3.1.3: with CONDSTORE a changed message is reported even when silent.
            if (silent && !(condstore && was_changed)) || self.view.seq_of(target).is_none() {
                continue;
            }
            let Some(seq) = self.view.seq_of(target) else {
                continue;
            };
            self.flags_response(&mut io.out, seq, uid, condstore, rev2);
        }
        if modified.is_empty() {
            Ok(ok("STORE completed"))
        } else {
            Ok(ok(format!(
                "[MODIFIED {}] Conditional STORE failed for some messages",
                compact_set(&modified)
            )))
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn copy<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        user: &mut User,
        uid: bool,
        set: &SequenceSet,
        raw: &[u8],
        is_move: bool,
        io: &mut Io<S>,
    ) -> Res {
        let name = user.mailbox_arg(raw)?;
        let Some(target) = conn.store().mailbox(user.account.id, &name).await? else {
            return Err(no(format!("[TRYCREATE] No mailbox {name}")));
        };
        let store = conn.server.store.clone();
        if is_move && self.read_only {
            return Err(no("[READ-ONLY] The mailbox is read-only"));
        }
        let seqs = self
            .view
            .resolve(set, uid)
            .map_err(|e| bad(format!("[CLIENTBUG] No message {}", e.0)))?;
        let uids: Vec<u32> = seqs
            .iter()
            .filter_map(|&s| self.view.get(s))
            .filter(|m| !self.view.is_expunged(m.uid))
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(ok(if is_move {
                "MOVE completed"
            } else {
                "COPY completed"
            }));
        }
        let pairs = store.copy(self.mailbox.id, &uids, target.id).await?;
        let (from, to): (Vec<u32>, Vec<u32>) = pairs.iter().copied().unzip();
        if let Some(training) = &conn.server.training {
            training.copied(&self.mailbox, &target, &to);
        }
        let code = format!(
            "COPYUID {} {} {}",
            target.uid_validity,
            compact_set(&from),
            compact_set(&to)
        );
        if !is_move {
            return Ok(ok(format!("[{code}] COPY completed")));
        }
        // RFC 6851 §4.3: COPYUID in an untagged OK, then the EXPUNGEs.
        io.out
            .extend_from_slice(format!("* OK [{code}] Moved\r\n").as_bytes());
        let removed = store.expunge(self.mailbox.id, &from).await?;
        self.announce_removed(removed, &mut io.out);
        Ok(ok("MOVE completed"))
    }
}

/// What SEARCH reads of a message: the whole of it, or the cached header.
enum Text {
    Whole(SearchText),
    Header(Arc<CachedHeader>),
}

impl Text {
    fn get(&self) -> &SearchText {
        match self {
            Text::Whole(t) => t,
            Text::Header(h) => h.search_text(),
        }
    }
}
