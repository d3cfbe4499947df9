//! The authenticated state (RFC 9051 §3.2, §6.3): a logged-in user's mailboxes — SELECT
//! and EXAMINE (which yield the selected state), CREATE, DELETE, RENAME, SUBSCRIBE, LIST
//! (RFC 5258, RFC 5819, RFC 6154), LSUB, NAMESPACE, STATUS, APPEND (RFC 4315 APPENDUID,
//! RFC 3516 literal8), ENABLE (RFC 5161), IDLE (RFC 2177) and QUOTA (RFC 9208). These stay
//! valid with a mailbox selected; the `User` also owns the feed of mailbox changes.

use std::collections::BTreeSet;

use kurier_store::{Account, Mailbox, MailboxChange, SpecialUse, StoreError};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use super::names::{is_child, pattern_matches, superiors};
use super::selected::Selected;
use super::{Connection, DELIMITER, Done, Flow, Res, bad, claim_recent, has_flag, no, ok};
use crate::command::{Command, ListOptions, Qresync, StatusItem};
use crate::mime;
use crate::mutf7;
use crate::response::mailbox as write_mailbox;
use crate::server::{Io, ReadEnd};
use crate::view::View;

/// What the authenticated and selected states know: who logged in and what they enabled.
pub(super) struct User {
    pub(super) account: Account,
    /// IMAP4rev2 enabled (RFC 9051 §6.3.1): UTF-8 names, ESEARCH answers, no \Recent.
    pub(super) rev2: bool,
    pub(super) condstore: bool,
    /// QRESYNC enabled (RFC 7162 §3.2.3); implies CONDSTORE.
    pub(super) qresync: bool,
    /// Every mailbox change of the store, from login on.
    changes: broadcast::Receiver<MailboxChange>,
}

impl User {
    pub(super) fn new(account: Account, changes: broadcast::Receiver<MailboxChange>) -> Self {
        User {
            account,
            rev2: false,
            condstore: false,
            qresync: false,
            changes,
        }
    }

    /// A mailbox name from the wire: modified UTF-7 unless IMAP4rev2 is on (then UTF-8), INBOX
    /// in any case, no trailing delimiter (RFC 9051 §5.1).
    pub(super) fn mailbox_arg(&self, raw: &[u8]) -> Result<String, Done> {
        let text =
            std::str::from_utf8(raw).map_err(|_| bad("[CLIENTBUG] Mailbox name is not UTF-8"))?;
        let mut name = if self.rev2 || !text.contains('&') {
            text.to_string()
        } else {
            mutf7::decode(text)
                .ok_or_else(|| no("[CANNOT] Mailbox name is not valid modified UTF-7"))?
        };
        while name.len() > 1 && name.ends_with(DELIMITER) {
            name.pop();
        }
        let first = name.split(DELIMITER).next().unwrap_or_default();
        if first.eq_ignore_ascii_case("INBOX") {
            name = format!("INBOX{}", &name[first.len()..]);
        }
        Ok(name)
    }

    /// A stored name as the client expects it.
    pub(super) fn name_out(&self, name: &str) -> String {
        if self.rev2 {
            name.to_string()
        } else {
            mutf7::encode(name)
        }
    }

    pub(super) async fn find_mailbox(
        &self,
        conn: &Connection,
        name: &str,
    ) -> Result<Mailbox, Done> {
        conn.store()
            .mailbox(self.account.id, name)
            .await?
            .ok_or_else(|| no(format!("[NONEXISTENT] No mailbox {name}")))
    }

    /// A command of the authenticated state; `selected` is the mailbox if one is selected.
    pub(super) async fn command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        selected: Option<&mut Selected>,
        cmd: Command,
        io: &mut Io<S>,
    ) -> Res {
        match cmd {
            Command::Enable(caps) => Ok(self.enable(&caps, selected, io)),
            Command::Create {
                mailbox,
                special_use,
            } => self.create(conn, &mailbox, &special_use).await,
            Command::Delete(raw) => {
                let name = self.mailbox_arg(&raw)?;
                self.delete(conn, &name).await
            }
            Command::Rename { from, to } => {
                let (from, to) = (self.mailbox_arg(&from)?, self.mailbox_arg(&to)?);
                if from == "INBOX" {
                    return Err(no(
                        "[CANNOT] Renaming INBOX is not supported; move its messages instead",
                    ));
                }
                self.create_parents(conn, &to).await?;
                conn.store()
                    .rename_mailbox(self.account.id, &from, &to)
                    .await?;
                Ok(ok("RENAME completed"))
            }
            Command::Subscribe(name) => self.subscribe(conn, &name, true).await,
            Command::Unsubscribe(name) => self.subscribe(conn, &name, false).await,
            Command::List {
                reference,
                patterns,
                options,
                extended,
            } => {
                self.list(conn, &reference, &patterns, &options, extended, io)
                    .await
            }
            Command::Lsub { reference, pattern } => self.lsub(conn, &reference, &pattern, io).await,
            Command::Namespace => {
                io.out.extend_from_slice(
                    format!("* NAMESPACE ((\"\" \"{DELIMITER}\")) NIL NIL\r\n").as_bytes(),
                );
                Ok(ok("NAMESPACE completed"))
            }
            Command::Status { mailbox, items } => {
                let name = self.mailbox_arg(&mailbox)?;
                let mb = self.find_mailbox(conn, &name).await?;
                self.status(conn, &mb, &items, io).await?;
                Ok(ok("STATUS completed"))
            }
            Command::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(conn, &mailbox, &flags, date, &message).await,
            Command::Idle => self.idle(conn, selected, io).await,
            Command::GetQuotaRoot(mailbox) => {
                let name = self.mailbox_arg(&mailbox)?;
                self.find_mailbox(conn, &name).await?;
                io.out.extend_from_slice(b"* QUOTAROOT ");
                write_mailbox(&mut io.out, &self.name_out(&name));
                if self.account.quota.is_some() {
                    io.out.extend_from_slice(b" \"\"");
                }
                io.out.extend_from_slice(b"\r\n");
                self.quota(conn, io).await?;
                Ok(ok("GETQUOTAROOT completed"))
            }
            Command::GetQuota(root) => {
                if !root.is_empty() || self.account.quota.is_none() {
                    return Err(no("[NONEXISTENT] No such quota root"));
                }
                self.quota(conn, io).await?;
                Ok(ok("GETQUOTA completed"))
            }
            Command::SetQuota => Err(no("[NOPERM] Quotas are set by the administrator")),
            Command::StartTls => Err(bad("TLS is already active")),
            Command::Login { .. } | Command::Authenticate { .. } => {
                Err(bad("[CLIENTBUG] Already authenticated"))
            }
            _ => Err(bad("[CLIENTBUG] Select a mailbox first")),
        }
    }

    /// ENABLE (RFC 5161): IMAP4rev2, CONDSTORE, QRESYNC; others are ignored.
    fn enable<S>(
        &mut self,
        caps: &[String],
        mut selected: Option<&mut Selected>,
        io: &mut Io<S>,
    ) -> Done {
        let mut enabled = Vec::new();
        for c in caps {
            match c.as_str() {
                "IMAP4REV2" => {
                    self.rev2 = true;
                    enabled.push("IMAP4rev2");
                }
                "CONDSTORE" => {
                    self.enable_condstore(selected.as_deref(), io);
                    enabled.push("CONDSTORE");
                }
                "QRESYNC" => {
                    self.enable_condstore(selected.as_deref(), io);
                    self.qresync = true;
                    if let Some(sel) = selected.as_deref_mut() {
                        sel.qresync = true;
                    }
                    enabled.push("QRESYNC");
                }
                _ => {}
            }
        }
        io.out.extend_from_slice(
            format!("* ENABLED {}", enabled.join(" "))
                .trim_end()
                .as_bytes(),
        );
        io.out.extend_from_slice(b"\r\n");
        ok("ENABLE completed")
    }

    /// The names this user subscribed to (LIST (SUBSCRIBED), LSUB).
    async fn subscribed(&self, conn: &Connection) -> Result<BTreeSet<String>, StoreError> {
        Ok(conn
            .store()
            .subscriptions(self.account.id)
            .await?
            .into_iter()
            .collect())
    }

    /// DELETE (RFC 9051 §6.3.5): not INBOX, not a mailbox with children.
    pub(super) async fn delete(&self, conn: &Connection, name: &str) -> Res {
        if name == "INBOX" {
            return Err(no("[CANNOT] INBOX cannot be deleted"));
        }
        let all = conn.store().mailboxes(self.account.id).await?;
        if all.iter().any(|m| is_child(&m.name, name)) {
            return Err(no(format!(
                "[INUSE] {name} has child mailboxes; delete them first"
            )));
        }
        conn.store().delete_mailbox(self.account.id, name).await?;
        Ok(ok("DELETE completed"))
    }

    /// SELECT and EXAMINE (RFC 9051 §6.3.2, §6.3.3; RFC 7162 §3.2.5 QRESYNC): loads the
    /// mailbox and tells its state. The caller makes it the selected one.
    pub(super) async fn select<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        raw: &[u8],
        read_only: bool,
        condstore: bool,
        qresync: Option<&Qresync>,
        io: &mut Io<S>,
    ) -> Result<(Selected, Done), Done> {
        if qresync.is_some() && !self.qresync {
            return Err(bad("[CLIENTBUG] ENABLE QRESYNC first (RFC 7162, 3.2.5)"));
        }
        let name = self.mailbox_arg(raw)?;
        let mb = self.find_mailbox(conn, &name).await?;
        if condstore {
            self.condstore = true;
        }
        // Changes announced before this point are in what we load now.
        self.drain_changes(None);
        let messages = conn.store().messages(mb.id).await?;
        let highest = messages
            .iter()
            .map(|m| m.modseq)
            .max()
            .unwrap_or(0)
            .max(mb.highest_modseq);
        let view = View::new(messages, highest);
        // SELECT claims the recent messages; EXAMINE only looks (RFC 3501 §6.3.2).
        let first_recent = if read_only {
            mb.recent_uid
        } else {
            claim_recent(conn.store(), mb.id, mb.recent_uid).await?
        };
        let recent: BTreeSet<u32> = view
            .messages()
            .iter()
            .map(|m| m.uid)
            .filter(|&u| u >= first_recent)
            .collect();
        let keywords: BTreeSet<String> = view
            .messages()
            .iter()
            .flat_map(|m| m.flags.iter())
            .filter(|f| !f.starts_with('\\'))
            .cloned()
            .collect();
        let mut out = format!("* {} EXISTS\r\n", view.len());
        if !self.rev2 {
            out.push_str(&format!("* {} RECENT\r\n", recent.len()));
        }
        let mut selected = Selected {
            mailbox: mb.clone(),
            read_only,
            view,
            stale: false,
            lost: false,
            recent,
            keywords,
            qresync: self.qresync,
        };
        out.push_str(&selected.flags_lines());
        let view = &selected.view;
        if !self.rev2
            && let Some(pos) = view.messages().iter().position(|m| !has_flag(m, "\\Seen"))
        {
            out.push_str(&format!("* OK [UNSEEN {}] First unseen\r\n", pos + 1));
        }
        out.push_str(&format!(
            "* OK [UIDVALIDITY {}] UIDs valid\r\n",
            mb.uid_validity
        ));
        out.push_str(&format!(
            "* OK [UIDNEXT {}] Predicted next UID\r\n",
            mb.uid_next
        ));
        out.push_str(&format!("* OK [HIGHESTMODSEQ {highest}] Highest\r\n"));
        io.out.extend_from_slice(out.as_bytes());
        if self.rev2 {
            // RFC 9051 §6.3.2: the mailbox's LIST response.
            io.out
                .extend_from_slice(format!("* LIST () \"{DELIMITER}\" ").as_bytes());
            write_mailbox(&mut io.out, &self.name_out(&mb.name));
            io.out.extend_from_slice(b"\r\n");
        }
        if let Some(q) = qresync {
            selected.resync(conn, self, q, io).await?;
        }
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        Ok((selected, ok(format!("[{mode}] {verb} completed"))))
    }

    async fn create(&mut self, conn: &Connection, raw: &[u8], special_use: &[String]) -> Res {
        let name = self.mailbox_arg(raw)?;
        if name.eq_ignore_ascii_case("INBOX") {
            return Err(no("[ALREADYEXISTS] INBOX exists"));
        }
        let usage = match special_use {
            [] => None,
            [one] => Some(SpecialUse::from_attribute(one).ok_or_else(|| {
                no(format!(
                    "[USEATTR] {one} is not a special use Kurier supports"
                ))
            })?),
            _ => return Err(no("[USEATTR] Give one special use per mailbox")),
        };
        self.create_parents(conn, &name).await?;
        conn.store()
            .create_mailbox(self.account.id, &name, usage)
            .await?;
        Ok(ok("CREATE completed"))
    }

    /// Creates the missing superiors of `name` (RFC 9051 §6.3.4).
    async fn create_parents(&self, conn: &Connection, name: &str) -> Result<(), Done> {
        let mut prefix = String::new();
        let levels: Vec<&str> = name.split(DELIMITER).collect();
        for level in &levels[..levels.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push(DELIMITER);
            }
            prefix.push_str(level);
            if conn
                .store()
                .mailbox(self.account.id, &prefix)
                .await?
                .is_none()
            {
                match conn
                    .store()
                    .create_mailbox(self.account.id, &prefix, None)
                    .await
                {
                    Ok(_) | Err(StoreError::Exists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&mut self, conn: &Connection, raw: &[u8], on: bool) -> Res {
        let name = self.mailbox_arg(raw)?;
        conn.store()
            .set_subscribed(self.account.id, &name, on)
            .await?;
        Ok(ok(if on {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        }))
    }

    async fn list<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        reference: &[u8],
        patterns: &[Vec<u8>],
        options: &ListOptions,
        extended: bool,
        io: &mut Io<S>,
    ) -> Res {
        let reference = String::from_utf8_lossy(reference).into_owned();
        if !extended && patterns.len() == 1 && patterns[0].is_empty() {
            // RFC 9051 §6.3.9: the delimiter and root.
            io.out.extend_from_slice(
                format!("* LIST (\\Noselect) \"{DELIMITER}\" \"\"\r\n").as_bytes(),
            );
            return Ok(ok("LIST completed"));
        }
        let patterns: Vec<String> = patterns
            .iter()
            .map(|p| {
                let p = String::from_utf8_lossy(p);
                let full = format!("{reference}{p}");
                if self.rev2 {
                    full
                } else {
                    mutf7::decode(&full).unwrap_or(full)
                }
            })
            .collect();
        let all = conn.store().mailboxes(self.account.id).await?;
        let subscribed = self.subscribed(conn).await?;
        let matches = |name: &str| patterns.iter().any(|p| pattern_matches(p, name));
        // The names to consider: mailboxes, or with (SUBSCRIBED) the subscribed names (which
        // may have no mailbox) and, for RECURSIVEMATCH, their superiors.
        let mut names: BTreeSet<String> = BTreeSet::new();
        if options.select_subscribed {
            for name in &subscribed {
                names.insert(name.clone());
                if options.recursive_match {
                    names.extend(superiors(name));
                }
            }
        } else {
            names.extend(all.iter().map(|m| m.name.clone()));
        }
        for name in names.iter().filter(|n| matches(n)) {
            let mailbox = all.iter().find(|m| &m.name == name);
            let mut childinfo = false;
            if options.select_subscribed && !subscribed.contains(name) {
                // RFC 5258 §3.5: a superior is listed, with CHILDINFO, when a subscribed
                // descendant that is not listed itself matches the selection.
                childinfo = subscribed.iter().any(|d| is_child(d, name) && !matches(d));
                if !childinfo {
                    continue;
                }
            }
            if options.select_special_use && mailbox.is_none_or(|m| m.special_use.is_none()) {
                continue;
            }
            let mut attrs = Vec::new();
            match mailbox {
                None => attrs.push("\\NonExistent"),
                Some(_) if all.iter().any(|c| is_child(&c.name, name)) => {
                    attrs.push("\\HasChildren")
                }
                Some(_) => attrs.push("\\HasNoChildren"),
            }
            if subscribed.contains(name) && (options.select_subscribed || options.return_subscribed)
            {
                attrs.push("\\Subscribed");
            }
            if let Some(u) = mailbox.and_then(|m| m.special_use) {
                attrs.push(u.attribute());
            }
            io.out.extend_from_slice(
                format!("* LIST ({}) \"{DELIMITER}\" ", attrs.join(" ")).as_bytes(),
            );
            write_mailbox(&mut io.out, &self.name_out(name));
            if childinfo {
                io.out
                    .extend_from_slice(b" (\"CHILDINFO\" (\"SUBSCRIBED\"))");
            }
            io.out.extend_from_slice(b"\r\n");
            if let (Some(items), Some(mb)) = (&options.return_status, mailbox) {
                self.status(conn, mb, items, io).await?;
            }
        }
        Ok(ok("LIST completed"))
    }

    async fn lsub<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        reference: &[u8],
        pattern: &[u8],
        io: &mut Io<S>,
    ) -> Res {
        let full = format!(
            "{}{}",
            String::from_utf8_lossy(reference),
            String::from_utf8_lossy(pattern)
        );
        let pattern = if self.rev2 {
            full
        } else {
            mutf7::decode(&full).unwrap_or(full)
        };
        // RFC 3501 §6.3.9: a superior that is not subscribed itself, but has subscribed
        // inferiors the pattern does not reach, is listed as \Noselect.
        let subscribed = self.subscribed(conn).await?;
        let mut lines: BTreeSet<(String, bool)> = BTreeSet::new();
        for name in &subscribed {
            if pattern_matches(&pattern, name) {
                lines.insert((name.clone(), false));
            } else {
                for sup in superiors(name) {
                    if !subscribed.contains(&sup) && pattern_matches(&pattern, &sup) {
                        lines.insert((sup, true));
                    }
                }
            }
        }
        for (name, noselect) in lines {
            let attrs = if noselect { "\\Noselect" } else { "" };
            io.out
                .extend_from_slice(format!("* LSUB ({attrs}) \"{DELIMITER}\" ").as_bytes());
            write_mailbox(&mut io.out, &self.name_out(&name));
            io.out.extend_from_slice(b"\r\n");
        }
        Ok(ok("LSUB completed"))
    }

    pub(super) async fn status<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &Connection,
        mb: &Mailbox,
        items: &[StatusItem],
        io: &mut Io<S>,
    ) -> Result<(), Done> {
        let needs_messages = items.iter().any(|i| {
            matches!(
                i,
                StatusItem::Recent | StatusItem::Unseen | StatusItem::Deleted | StatusItem::Size
            )
        });
        let messages = if needs_messages {
            conn.store().messages(mb.id).await?
        } else {
            Vec::new()
        };
        let mut fields = Vec::new();
        for item in items {
            let (name, value) = match item {
                StatusItem::Messages => ("MESSAGES", u64::from(mb.messages)),
                StatusItem::Recent => (
                    "RECENT",
                    messages.iter().filter(|m| m.uid >= mb.recent_uid).count() as u64,
                ),
                StatusItem::UidNext => ("UIDNEXT", u64::from(mb.uid_next)),
                StatusItem::UidValidity => ("UIDVALIDITY", u64::from(mb.uid_validity)),
                StatusItem::Unseen => (
                    "UNSEEN",
                    messages.iter().filter(|m| !has_flag(m, "\\Seen")).count() as u64,
                ),
                StatusItem::Deleted => (
                    "DELETED",
                    messages.iter().filter(|m| has_flag(m, "\\Deleted")).count() as u64,
                ),
                StatusItem::Size => ("SIZE", messages.iter().map(|m| m.size).sum()),
                StatusItem::HighestModSeq => ("HIGHESTMODSEQ", mb.highest_modseq),
            };
            fields.push(format!("{name} {value}"));
        }
        io.out.extend_from_slice(b"* STATUS ");
        write_mailbox(&mut io.out, &self.name_out(&mb.name));
        io.out
            .extend_from_slice(format!(" ({})\r\n", fields.join(" ")).as_bytes());
        Ok(())
    }

    async fn quota<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        conn: &Connection,
        io: &mut Io<S>,
    ) -> Result<(), Done> {
        if let Some(limit) = self.account.quota {
            let used = conn.store().usage(self.account.id).await?;
            // RFC 9208 §5.1: STORAGE in units of 1024 octets.
            io.out.extend_from_slice(
                format!(
                    "* QUOTA \"\" (STORAGE {} {})\r\n",
                    used.div_ceil(1024),
                    limit / 1024
                )
                .as_bytes(),
            );
        }
        Ok(())
    }

    async fn append(
        &mut self,
        conn: &Connection,
        raw: &[u8],
        flags: &[String],
        date: Option<i64>,
        message: &[u8],
    ) -> Res {
        let name = self.mailbox_arg(raw)?;
        let Some(mb) = conn.store().mailbox(self.account.id, &name).await? else {
            return Err(no(format!("[TRYCREATE] No mailbox {name}")));
        };
        if message.len() as u64 > conn.server.max_message_size {
            return Err(no(format!(
                "[TOOBIG] The limit is {} octets",
                conn.server.max_message_size
            )));
        }
        if message.is_empty() {
            return Err(no("[CANNOT] An empty message cannot be stored"));
        }
        let flags: Vec<&str> = flags
            .iter()
            .map(String::as_str)
            .filter(|f| !f.eq_ignore_ascii_case("\\Recent"))
            .collect();
        let at = date.unwrap_or_else(kurier_store::now);
        // RFC 3516 §4.3: NUL octets (possible only in a literal8) cannot travel in BODY[]
        // answers; such parts are stored base64-encoded, and BINARY[] decodes them again.
        let converted = message.contains(&0).then(|| binary_to_base64(message));
        let message = converted.as_deref().unwrap_or(message);
        // Durable when it returns (the store's contract): only then OK.
        let appended = conn.store().append(mb.id, message, &flags, at).await?;
        Ok(ok(format!(
            "[APPENDUID {} {}] APPEND completed",
            appended.uid_validity, appended.uid
        )))
    }
    /// The first command that uses CONDSTORE turns it on (RFC 7162 §3.1): the client then
    /// hears the mailbox's HIGHESTMODSEQ, and every FETCH carries MODSEQ.
    pub(super) fn enable_condstore<S>(&mut self, selected: Option<&Selected>, io: &mut Io<S>) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(sel) = selected {
            io.out.extend_from_slice(
                format!(
                    "* OK [HIGHESTMODSEQ {}] CONDSTORE on\r\n",
                    sel.view.caught_up
                )
                .as_bytes(),
            );
        }
    }

    /// Takes in the changes announced so far; those of the selected mailbox mark it.
    pub(super) fn drain_changes(&mut self, mut selected: Option<&mut Selected>) {
        loop {
            let change = self.changes.try_recv();
            match (change, selected.as_deref_mut()) {
                (Ok(c), Some(sel)) => sel.note_change(self.account.id, &c),
                (Err(TryRecvError::Lagged(_)), Some(sel)) => sel.lost_track(),
                (Ok(_) | Err(TryRecvError::Lagged(_)), None) => {}
                (Err(_), _) => break,
            }
        }
    }

    /// IDLE (RFC 2177): changes are pushed as they happen until the client says DONE.
    async fn idle<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        conn: &Connection,
        mut selected: Option<&mut Selected>,
        io: &mut Io<S>,
    ) -> Res {
        io.out.extend_from_slice(b"+ idling\r\n");
        if let Some(sel) = selected.as_deref_mut()
            && let Err(e) = sel.announce(conn, self, io, true).await
        {
            tracing::warn!(peer = %conn.peer, error = %e, "IMAP IDLE: cannot catch up");
        }
        let mut keepalive = tokio::time::interval(conn.server.keepalive);
        keepalive.tick().await;
        loop {
            if let Some(line) = io.reader.take_line() {
                break match line {
                    Ok(l) if l.eq_ignore_ascii_case(b"DONE") => Ok(ok("IDLE terminated")),
                    _ => Err(bad("[CLIENTBUG] Expected DONE")),
                };
            }
            tokio::select! {
                change = self.changes.recv() => {
                    if matches!(change, Err(RecvError::Closed)) {
                        break Err(no("[UNAVAILABLE] Change feed closed"));
                    }
                    // Without a mailbox selected there is nothing to tell.
                    let Some(sel) = selected.as_deref_mut() else { continue };
                    match change {
                        Ok(c) => sel.note_change(self.account.id, &c),
                        Err(_) => sel.lost_track(),
                    }
                    // Gather what arrived together, then tell the client at once.
                    if let Err(e) = sel.announce(conn, self, io, true).await {
                        tracing::warn!(peer = %conn.peer, error = %e, "IMAP IDLE: cannot catch up");
                    }
                    if io.flush().await.is_err() {
                        break Err(Done { flow: Flow::Close, ..bad("Connection lost") });
                    }
                }
                filled = io.fill(None) => match filled {
                    Ok(()) => {}
                    Err(ReadEnd::Stopping) => {
                        io.out.extend_from_slice(b"* BYE [UNAVAILABLE] Server shutting down\r\n");
                        break Err(Done { flow: Flow::Close, ..no("IDLE ended by shutdown") });
                    }
                    Err(_) => break Err(Done { flow: Flow::Close, ..bad("Connection lost") }),
                },
                _ = keepalive.tick() => {
                    io.out.extend_from_slice(b"* OK Still here\r\n");
                    if io.flush().await.is_err() {
                        break Err(Done { flow: Flow::Close, ..bad("Connection lost") });
                    }
                }
            }
        }
    }
}

/// The message with every leaf part whose body holds a NUL octet re-encoded as base64 (its
/// Content-Transfer-Encoding replaced); everything else byte for byte.
fn binary_to_base64(raw: &[u8]) -> Vec<u8> {
    fn leaves<'p>(p: &'p mime::Part, out: &mut Vec<&'p mime::Part>) {
        if let Some(m) = &p.message {
            leaves(m, out);
        } else if p.children.is_empty() {
            out.push(p);
        } else {
            p.children.iter().for_each(|c| leaves(c, out));
        }
    }
    let root = mime::parse(raw);
    let mut parts = Vec::new();
    leaves(&root, &mut parts);
    let mut out = Vec::with_capacity(raw.len() * 4 / 3 + 256);
    let mut at = 0;
    for part in parts
        .into_iter()
        .filter(|p| raw[p.body.clone()].contains(&0))
    {
        out.extend_from_slice(&raw[at..part.header.start]);
        let header = &raw[part.header.clone()];
        for line in header.split_inclusive(|&b| b == b'\n') {
            let is_cte = line
                .get(..26)
                .is_some_and(|l| l.eq_ignore_ascii_case(b"content-transfer-encoding:"));
            let blank = line == b"\r\n" || line == b"\n";
            if blank {
                out.extend_from_slice(b"Content-Transfer-Encoding: base64\r\n");
            }
            if !is_cte {
                out.extend_from_slice(line);
            }
        }
        if !header.ends_with(b"\n") {
            out.extend_from_slice(b"\r\nContent-Transfer-Encoding: base64\r\n\r\n");
        }
        let encoded = kurier_access::base64_encode(&raw[part.body.clone()]);
        for (i, chunk) in encoded.as_bytes().chunks(76).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(chunk);
        }
        at = part.body.end;
    }
    out.extend_from_slice(&raw[at..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_parts_become_base64_and_decode_back() {
        let raw = b"Subject: x\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n\r\ntext\r\n--b\r\nContent-Transfer-Encoding: binary\r\n\r\n\x00\xff-\r\n--b--\r\n";
        let out = binary_to_base64(raw);
        assert!(!out.contains(&0));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(text.contains("--b\r\n\r\ntext\r\n--b\r\n"), "{text}");
        assert!(
            text.contains("Content-Transfer-Encoding: base64\r\n\r\nAP8t\r\n--b--"),
            "{text}"
        );
        assert!(!text.contains("binary"));
        let root = mime::parse(&out);
        assert_eq!(
            mime::binary(&out, &root, &[2]).unwrap().as_ref(),
            b"\x00\xff-"
        );
        assert_eq!(
            binary_to_base64(b"Subject: y\r\n\r\nplain"),
            b"Subject: y\r\n\r\nplain"
        );
    }
}
