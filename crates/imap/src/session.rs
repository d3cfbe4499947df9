//! One IMAP connection's state and its commands (RFC 9051 §6), over the store. Parsing,
//! MIME, search and the mailbox view are pure modules; this is the thin layer that asks the
//! store and writes responses.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kurier_access::{LoginOutcome, base64_decode, plain, throttled_login};
use kurier_store::{
    Account, ChangeKind, FlagChange, Mailbox, MailboxChange, MessageMeta, SpecialUse, StoreError,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::broadcast;

use crate::cache::CachedHeader;
use crate::command::{
    self, Command, FetchAttr, ListOptions, Qresync, Reads, SearchReturn, Section, SectionText,
    SequenceSet, StatusItem, StoreMode,
};
use crate::mime::{self, SectionError};
use crate::response::{flags as write_flags, literal, mailbox as write_mailbox, string};
use crate::search::{Candidate, MessageFacts, SearchKey, SearchText};
use crate::server::{ImapServer, Io, ReadEnd};
use crate::view::{Update, View};
use crate::{date, mutf7};

const SYSTEM_FLAGS: &str = "\\Answered \\Flagged \\Deleted \\Seen \\Draft";
const DELIMITER: char = kurier_store::MAILBOX_DELIMITER;

/// What the connection does after a command.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Flow {
    Continue,
    Close,
    StartTls,
}

/// A tagged completion: `OK`, `NO` or `BAD` and its text (with a response code if any).
pub(crate) struct Done {
    status: &'static str,
    text: String,
    flow: Flow,
}

fn ok(text: impl Into<String>) -> Done {
    Done {
        status: "OK",
        text: text.into(),
        flow: Flow::Continue,
    }
}

fn no(text: impl Into<String>) -> Done {
    Done {
        status: "NO",
        text: text.into(),
        flow: Flow::Continue,
    }
}

fn bad(text: impl Into<String>) -> Done {
    Done {
        status: "BAD",
        text: text.into(),
        flow: Flow::Continue,
    }
}

impl From<StoreError> for Done {
    fn from(e: StoreError) -> Done {
        let code = match &e {
            StoreError::NotFound(_) => "NONEXISTENT",
            StoreError::Exists(_) => "ALREADYEXISTS",
            StoreError::QuotaExceeded { .. } => "OVERQUOTA",
            StoreError::Unavailable(_) => "UNAVAILABLE",
            StoreError::Invalid(_) => "CANNOT",
            StoreError::LeaseLost(_) | StoreError::Backend(_) => "SERVERBUG",
        };
        if matches!(e, StoreError::Backend(_) | StoreError::Unavailable(_)) {
            tracing::error!(error = %e, "IMAP: store failed");
        }
        no(format!("[{code}] {e}"))
    }
}

type Res = Result<Done, Done>;

struct Selected {
    mailbox: Mailbox,
    read_only: bool,
    view: View,
    /// Appends or flag changes were announced for it: catch up before the next response.
    stale: bool,
    /// The change feed overflowed: reload the whole mailbox.
    lost: bool,
    /// UIDs that are `\Recent` in this session (RFC 3501 §2.3.2; IMAP4rev1 only).
    recent: BTreeSet<u32>,
    /// Keywords announced in FLAGS; a new one is announced before it is used.
    keywords: BTreeSet<String>,
    /// QRESYNC is on: removals are told as VANISHED (RFC 7162 §3.2.10), not EXPUNGE.
    qresync: bool,
}

impl Selected {
    /// `* FLAGS` and `* OK [PERMANENTFLAGS]` for the keywords known now.
    fn flags_lines(&self) -> String {
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
    fn note_keywords(&mut self, flags: &[String], out: &mut Vec<u8>) {
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
    fn write_flags(&self, out: &mut Vec<u8>, m: &MessageMeta, rev2: bool) {
        if !rev2 && self.recent.contains(&m.uid) {
            let mut with = vec!["\\Recent".to_string()];
            with.extend(m.flags.iter().cloned());
            write_flags(out, &with);
        } else {
            write_flags(out, &m.flags);
        }
    }
}

/// Before login a literal carries at most a user name or password (Dovecot allows similar).
pub(crate) const PRE_LOGIN_LITERAL: u64 = 8 * 1024;
/// Before login a command line is short too (LOGIN, AUTHENTICATE with SASL-IR, ID).
pub(crate) const PRE_LOGIN_LINE: usize = 8 * 1024;

pub(crate) struct Session {
    server: Arc<ImapServer>,
    peer: SocketAddr,
    /// Port 143: STARTTLS offered, no login before it.
    starttls: bool,
    tls: bool,
    account: Option<Account>,
    selected: Option<Selected>,
    /// IMAP4rev2 enabled (RFC 9051 §6.3.1): UTF-8 names, ESEARCH answers, no \Recent.
    rev2: bool,
    condstore: bool,
    /// QRESYNC enabled (RFC 7162 §3.2.3); implies CONDSTORE.
    qresync: bool,
    changes: Option<broadcast::Receiver<MailboxChange>>,
    errors: u32,
    /// The tag of the command being answered.
    tag: String,
}

impl Session {
    pub(crate) fn new(server: Arc<ImapServer>, peer: SocketAddr, starttls: bool) -> Self {
        Session {
            server,
            peer,
            starttls,
            tls: false,
            account: None,
            selected: None,
            rev2: false,
            condstore: false,
            qresync: false,
            changes: None,
            errors: 0,
            tag: String::new(),
        }
    }

    pub(crate) fn tls_started(&mut self) {
        self.tls = true;
    }

    pub(crate) fn timeout(&self) -> Duration {
        if self.account.is_some() {
            self.server.idle_timeout
        } else {
            self.server.login_timeout
        }
    }

    /// The largest literal the client may send now: before login only credentials travel, so
    /// literals stay small (`PRE_LOGIN_LITERAL`); after it APPEND has the message size limit.
    pub(crate) fn max_literal(&self) -> u64 {
        self.reader_limits().1
    }

    /// The reader's limits for the current state: (line, literal, whole command).
    pub(crate) fn reader_limits(&self) -> (usize, u64, usize) {
        if self.account.is_some() {
            let max = self.server.max_message_size;
            (64 * 1024, max, max as usize + 64 * 1024)
        } else {
            (PRE_LOGIN_LINE, PRE_LOGIN_LITERAL, 2 * PRE_LOGIN_LINE)
        }
    }

    pub(crate) fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] Kurier IMAP ready\r\n",
            self.capabilities()
        )
        .into_bytes()
    }

    fn capabilities(&self) -> String {
        let mut caps = String::from("IMAP4rev1 IMAP4rev2 ID ENABLE LITERAL+");
        if !self.tls {
            // RFC 9051 §6.2.3 / TR-03108 MUA-2: no credentials before TLS.
            caps.push_str(" STARTTLS LOGINDISABLED");
        } else if self.account.is_none() {
            caps.push_str(" AUTH=PLAIN AUTH=LOGIN SASL-IR");
        } else {
            caps.push_str(&format!(
                " IDLE UIDPLUS MOVE NAMESPACE UNSELECT CHILDREN SPECIAL-USE CREATE-SPECIAL-USE \
LIST-EXTENDED LIST-STATUS ESEARCH CONDSTORE QRESYNC BINARY STATUS=SIZE QUOTA QUOTA=RES-STORAGE APPENDLIMIT={}",
                self.server.max_message_size
            ));
        }
        caps
    }

    /// Runs one framed command and writes its responses.
    pub(crate) async fn execute<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        bytes: &[u8],
        io: &mut Io<S>,
    ) -> Flow {
        let (tag, cmd) = match command::parse_in(bytes, self.account.is_some()) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.errors += 1;
                let tag = e.tag.unwrap_or_else(|| "*".into());
                let code = if e.message.starts_with('[') {
                    ""
                } else {
                    "[CLIENTBUG] "
                };
                io.out
                    .extend_from_slice(format!("{tag} BAD {code}{}\r\n", e.message).as_bytes());
                if self.errors >= 20 {
                    io.out.extend_from_slice(b"* BYE Too many errors\r\n");
                    return Flow::Close;
                }
                return Flow::Continue;
            }
        };
        // RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH by number.
        let expunge_ok = !matches!(
            cmd,
            Command::Fetch { uid: false, .. }
                | Command::Store { uid: false, .. }
                | Command::Search { uid: false, .. }
        );
        let quiet = matches!(cmd, Command::Logout | Command::StartTls | Command::Idle);
        self.tag.clone_from(&tag);
        let done = match self.dispatch(cmd, io).await {
            Ok(d) | Err(d) => d,
        };
        // Consecutive errors end the session; one that works resets the count.
        if done.status == "BAD" {
            self.errors += 1;
        } else {
            self.errors = 0;
        }
        if !quiet
            && done.flow == Flow::Continue
            && self.selected.is_some()
            && let Err(e) = self.announce(io, expunge_ok).await
        {
            tracing::warn!(peer = %self.peer, error = %e, "IMAP: cannot catch up with mailbox changes");
        }
        io.out
            .extend_from_slice(format!("{tag} {} {}\r\n", done.status, done.text).as_bytes());
        done.flow
    }

    async fn dispatch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Command,
        io: &mut Io<S>,
    ) -> Res {
        // Commands valid in any state.
        match cmd {
            Command::Capability => {
                io.out.extend_from_slice(
                    format!("* CAPABILITY {}\r\n", self.capabilities()).as_bytes(),
                );
                Ok(ok("CAPABILITY completed"))
            }
            Command::Noop => Ok(ok("NOOP completed")),
            Command::Logout => {
                io.out.extend_from_slice(b"* BYE Logging out\r\n");
                Ok(Done {
                    flow: Flow::Close,
                    ..ok("LOGOUT completed")
                })
            }
            Command::Id(params) => {
                if !params.is_empty() {
                    let client: Vec<String> = params
                        .iter()
                        .map(|(k, v)| format!("{k}={}", v.as_deref().unwrap_or("NIL")))
                        .collect();
                    tracing::debug!(peer = %self.peer, client = %client.join(" "), "IMAP ID");
                }
                io.out.extend_from_slice(
                    format!(
                        "* ID (\"name\" \"Kurier\" \"version\" \"{}\")\r\n",
                        env!("CARGO_PKG_VERSION")
                    )
                    .as_bytes(),
                );
                Ok(ok("ID completed"))
            }
            Command::StartTls => {
                if self.tls || !self.starttls {
                    return Err(bad("TLS is already active"));
                }
                Ok(Done {
                    flow: Flow::StartTls,
                    ..ok("Begin TLS negotiation now")
                })
            }
            Command::Login { user, password } => self.login_command(&user, &password).await,
            Command::Authenticate { mechanism, initial } => {
                self.authenticate(&mechanism, initial, io).await
            }
            cmd => {
                if self.account.is_none() {
                    return Err(bad("[CLIENTBUG] Log in first"));
                }
                self.authenticated(cmd, io).await
            }
        }
    }

    async fn authenticated<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Command,
        io: &mut Io<S>,
    ) -> Res {
        match cmd {
            Command::Enable(caps) => {
                let mut enabled = Vec::new();
                for c in caps {
                    match c.as_str() {
                        "IMAP4REV2" => {
                            self.rev2 = true;
                            enabled.push("IMAP4rev2");
                        }
                        "CONDSTORE" => {
                            self.enable_condstore(io);
                            enabled.push("CONDSTORE");
                        }
                        "QRESYNC" => {
                            self.enable_condstore(io);
                            self.qresync = true;
                            if let Some(sel) = &mut self.selected {
                                sel.qresync = true;
                            }
                            enabled.push("QRESYNC");
                        }
                        _ => {}
                    }
                }
                io.out.extend_from_slice(
                    format!("* ENABLED {}\r\n", enabled.join(" "))
                        .trim_end()
                        .as_bytes(),
                );
                io.out.extend_from_slice(b"\r\n");
                Ok(ok("ENABLE completed"))
            }
            Command::Select {
                mailbox,
                read_only,
                condstore,
                qresync,
            } => {
                self.select(&mailbox, read_only, condstore, qresync.as_ref(), io)
                    .await
            }
            Command::Create {
                mailbox,
                special_use,
            } => self.create(&mailbox, &special_use).await,
            Command::Delete(name) => {
                let name = self.mailbox_arg(&name)?;
                if name == "INBOX" {
                    return Err(no("[CANNOT] INBOX cannot be deleted"));
                }
                let all = self.store().mailboxes(self.account_id()).await?;
                if all.iter().any(|m| is_child(&m.name, &name)) {
                    return Err(no(format!(
                        "[INUSE] {name} has child mailboxes; delete them first"
                    )));
                }
                if self
                    .selected
                    .as_ref()
                    .is_some_and(|s| s.mailbox.name == name)
                {
                    self.selected = None;
                }
                self.store()
                    .delete_mailbox(self.account_id(), &name)
                    .await?;
                Ok(ok("DELETE completed"))
            }
            Command::Rename { from, to } => {
                let (from, to) = (self.mailbox_arg(&from)?, self.mailbox_arg(&to)?);
                if from == "INBOX" {
                    return Err(no(
                        "[CANNOT] Renaming INBOX is not supported; move its messages instead",
                    ));
                }
                self.create_parents(&to).await?;
                self.store()
                    .rename_mailbox(self.account_id(), &from, &to)
                    .await?;
                Ok(ok("RENAME completed"))
            }
            Command::Subscribe(name) => self.subscribe(&name, true).await,
            Command::Unsubscribe(name) => self.subscribe(&name, false).await,
            Command::List {
                reference,
                patterns,
                options,
                extended,
            } => {
                self.list(&reference, &patterns, &options, extended, io)
                    .await
            }
            Command::Lsub { reference, pattern } => self.lsub(&reference, &pattern, io).await,
            Command::Namespace => {
                io.out.extend_from_slice(
                    format!("* NAMESPACE ((\"\" \"{DELIMITER}\")) NIL NIL\r\n").as_bytes(),
                );
                Ok(ok("NAMESPACE completed"))
            }
            Command::Status { mailbox, items } => {
                let name = self.mailbox_arg(&mailbox)?;
                let mb = self.find_mailbox(&name).await?;
                self.status(&mb, &items, io).await?;
                Ok(ok("STATUS completed"))
            }
            Command::Append {
                mailbox,
                flags,
                date,
                message,
            } => self.append(&mailbox, &flags, date, &message).await,
            Command::Idle => self.idle(io).await,
            Command::GetQuotaRoot(mailbox) => {
                let name = self.mailbox_arg(&mailbox)?;
                self.find_mailbox(&name).await?;
                io.out.extend_from_slice(b"* QUOTAROOT ");
                write_mailbox(&mut io.out, &self.name_out(&name));
                if self.account().quota.is_some() {
                    io.out.extend_from_slice(b" \"\"");
                }
                io.out.extend_from_slice(b"\r\n");
                self.quota(io).await?;
                Ok(ok("GETQUOTAROOT completed"))
            }
            Command::GetQuota(root) => {
                if !root.is_empty() || self.account().quota.is_none() {
                    return Err(no("[NONEXISTENT] No such quota root"));
                }
                self.quota(io).await?;
                Ok(ok("GETQUOTA completed"))
            }
            Command::SetQuota => Err(no("[NOPERM] Quotas are set by the administrator")),
            other => self.selected_command(other, io).await,
        }
    }

    async fn selected_command<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Command,
        io: &mut Io<S>,
    ) -> Res {
        if self.selected.is_none() {
            return Err(bad("[CLIENTBUG] Select a mailbox first"));
        }
        match cmd {
            Command::Check => Ok(ok("CHECK completed")),
            Command::Close => {
                if let Some(sel) = self.selected.take()
                    && !sel.read_only
                {
                    let deleted: Vec<u32> = sel
                        .view
                        .messages()
                        .iter()
                        .filter(|m| has_flag(m, "\\Deleted"))
                        .map(|m| m.uid)
                        .collect();
                    if !deleted.is_empty() {
                        self.store().expunge(sel.mailbox.id, &deleted).await?;
                    }
                }
                Ok(ok("CLOSE completed"))
            }
            Command::Unselect => {
                self.selected = None;
                Ok(ok("UNSELECT completed"))
            }
            Command::Expunge { uids } => self.expunge(uids.as_ref(), io).await,
            Command::Search { uid, ret, key } => self.search(uid, ret, &key, io).await,
            Command::Fetch {
                uid,
                set,
                items,
                changed_since,
                vanished,
            } => {
                if vanished && let Some(since) = changed_since {
                    self.vanished_since(&set, since, io).await?;
                }
                self.fetch(uid, &set, &items, changed_since, io).await
            }
            Command::Store {
                uid,
                set,
                unchanged_since,
                mode,
                silent,
                flags,
            } => {
                self.store_flags(uid, &set, unchanged_since, mode, silent, &flags, io)
                    .await
            }
            Command::Copy { uid, set, mailbox } => self.copy(uid, &set, &mailbox, false, io).await,
            Command::Move { uid, set, mailbox } => self.copy(uid, &set, &mailbox, true, io).await,
            _ => Err(bad("[CLIENTBUG] Command not valid here")),
        }
    }
}

/// Accounts, names and logins.
impl Session {
    fn store(&self) -> &dyn kurier_store::Store {
        &*self.server.store
    }

    fn account(&self) -> &Account {
        self.account
            .as_ref()
            .expect("authenticated commands run only with an account")
    }

    fn account_id(&self) -> i64 {
        self.account().id
    }

    /// A mailbox name from the wire: modified UTF-7 unless IMAP4rev2 is on (then UTF-8), INBOX
    /// in any case, no trailing delimiter (RFC 9051 §5.1).
    fn mailbox_arg(&self, raw: &[u8]) -> Result<String, Done> {
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
    fn name_out(&self, name: &str) -> String {
        if self.rev2 {
            name.to_string()
        } else {
            mutf7::encode(name)
        }
    }

    async fn find_mailbox(&self, name: &str) -> Result<Mailbox, Done> {
        self.store()
            .mailbox(self.account_id(), name)
            .await?
            .ok_or_else(|| no(format!("[NONEXISTENT] No mailbox {name}")))
    }

    async fn login_command(&mut self, user: &[u8], password: &[u8]) -> Res {
        if !self.tls {
            return Err(no("[PRIVACYREQUIRED] LOGIN is disabled before STARTTLS"));
        }
        let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password))
        else {
            return Err(no("[AUTHENTICATIONFAILED] Invalid credentials"));
        };
        self.login(user, password).await
    }

    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        mechanism: &str,
        initial: Option<String>,
        io: &mut Io<S>,
    ) -> Res {
        if !self.tls {
            return Err(no(
                "[PRIVACYREQUIRED] AUTHENTICATE is disabled before STARTTLS",
            ));
        }
        if self.account.is_some() {
            return Err(bad("[CLIENTBUG] Already authenticated"));
        }
        let limit = self.server.login_timeout;
        let ask = async |io: &mut Io<S>, challenge: &str| -> Result<Vec<u8>, Done> {
            io.out
                .extend_from_slice(format!("+ {challenge}\r\n").as_bytes());
            let line = io.line(limit).await.map_err(|e| match e {
                ReadEnd::TooLong => bad("[CLIENTBUG] Response too long"),
                _ => Done {
                    flow: Flow::Close,
                    ..bad("Connection closed during AUTHENTICATE")
                },
            })?;
            if line == b"*" {
                return Err(bad("AUTHENTICATE cancelled"));
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            base64_decode(&text).ok_or_else(|| bad("[CLIENTBUG] Response is not base64"))
        };
        let (user, password) = match mechanism {
            "PLAIN" => {
                let response = match initial {
                    Some(i) => base64_decode(&i)
                        .ok_or_else(|| bad("[CLIENTBUG] Response is not base64"))?,
                    None => ask(io, "").await?,
                };
                plain(&response).ok_or_else(|| no("[AUTHENTICATIONFAILED] Invalid credentials"))?
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => base64_decode(&i)
                        .ok_or_else(|| bad("[CLIENTBUG] Response is not base64"))?,
                    None => ask(io, "VXNlcm5hbWU6").await?,
                };
                let password = ask(io, "UGFzc3dvcmQ6").await?;
                match (String::from_utf8(user), String::from_utf8(password)) {
                    (Ok(u), Ok(p)) => (u, p),
                    _ => return Err(no("[AUTHENTICATIONFAILED] Invalid credentials")),
                }
            }
            _ => {
                return Err(no(format!(
                    "[CANNOT] Mechanism {mechanism} is not supported; use PLAIN"
                )));
            }
        };
        self.login(&user, &password).await
    }

    /// Checks credentials through the shared throttle; logs the user, never the password.
    async fn login(&mut self, user: &str, password: &str) -> Res {
        let store = self.server.store.clone();
        let check = async {
            match store.authenticate(user, password).await {
                Ok(account) => Ok(account),
                Err(e) => {
                    tracing::error!(error = %e, "IMAP: cannot check credentials");
                    Err(())
                }
            }
        };
        match throttled_login(&self.server.throttle, self.peer.ip(), user, check).await {
            LoginOutcome::Ok(account) => {
                tracing::info!(peer = %self.peer, account = %account.address, "IMAP login");
                self.changes = Some(self.server.store.subscribe());
                self.account = Some(account);
                Ok(ok(format!(
                    "[CAPABILITY {}] Logged in",
                    self.capabilities()
                )))
            }
            LoginOutcome::Invalid => {
                tracing::warn!(peer = %self.peer, user, "IMAP authentication failed");
                Err(no("[AUTHENTICATIONFAILED] Invalid credentials"))
            }
            LoginOutcome::Blocked => {
                tracing::warn!(peer = %self.peer, user, "IMAP authentication blocked after repeated failures");
                Err(no("[UNAVAILABLE] Too many failed logins; try again later"))
            }
            LoginOutcome::Unavailable => Err(no(
                "[UNAVAILABLE] Cannot check credentials now; try again later",
            )),
        }
    }
}

/// Mailboxes.
impl Session {
    async fn select<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        raw: &[u8],
        read_only: bool,
        condstore: bool,
        qresync: Option<&Qresync>,
        io: &mut Io<S>,
    ) -> Res {
        if qresync.is_some() && !self.qresync {
            return Err(bad("[CLIENTBUG] ENABLE QRESYNC first (RFC 7162, 3.2.5)"));
        }
        if self.selected.take().is_some() {
            io.out
                .extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        let name = self.mailbox_arg(raw)?;
        let mb = self.find_mailbox(&name).await?;
        if condstore {
            self.condstore = true;
        }
        // Changes announced before this point are in what we load now.
        self.drain_changes();
        let messages = self.store().messages(mb.id).await?;
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
            claim_recent(self.store(), mb.id, mb.recent_uid).await?
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
        let selected = Selected {
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
        self.selected = Some(selected);
        if let Some(q) = qresync {
            self.resync(q, io).await?;
        }
        let mode = if read_only { "READ-ONLY" } else { "READ-WRITE" };
        let verb = if read_only { "EXAMINE" } else { "SELECT" };
        Ok(ok(format!("[{mode}] {verb} completed")))
    }

    async fn create(&mut self, raw: &[u8], special_use: &[String]) -> Res {
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
        self.create_parents(&name).await?;
        self.store()
            .create_mailbox(self.account_id(), &name, usage)
            .await?;
        Ok(ok("CREATE completed"))
    }

    /// Creates the missing superiors of `name` (RFC 9051 §6.3.4).
    async fn create_parents(&self, name: &str) -> Result<(), Done> {
        let mut prefix = String::new();
        let levels: Vec<&str> = name.split(DELIMITER).collect();
        for level in &levels[..levels.len().saturating_sub(1)] {
            if !prefix.is_empty() {
                prefix.push(DELIMITER);
            }
            prefix.push_str(level);
            if self
                .store()
                .mailbox(self.account_id(), &prefix)
                .await?
                .is_none()
            {
                match self
                    .store()
                    .create_mailbox(self.account_id(), &prefix, None)
                    .await
                {
                    Ok(_) | Err(StoreError::Exists(_)) => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        Ok(())
    }

    async fn subscribe(&mut self, raw: &[u8], on: bool) -> Res {
        let name = self.mailbox_arg(raw)?;
        self.store()
            .set_subscribed(self.account_id(), &name, on)
            .await?;
        Ok(ok(if on {
            "SUBSCRIBE completed"
        } else {
            "UNSUBSCRIBE completed"
        }))
    }

    async fn list<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
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
        let all = self.store().mailboxes(self.account_id()).await?;
        let subscribed: BTreeSet<String> = self
            .store()
            .subscriptions(self.account_id())
            .await?
            .into_iter()
            .collect();
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
                self.status(mb, items, io).await?;
            }
        }
        Ok(ok("LIST completed"))
    }

    async fn lsub<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
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
        let subscribed: BTreeSet<String> = self
            .store()
            .subscriptions(self.account_id())
            .await?
            .into_iter()
            .collect();
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

    async fn status<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
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
            self.store().messages(mb.id).await?
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

    async fn quota<S: AsyncRead + AsyncWrite + Unpin>(&self, io: &mut Io<S>) -> Result<(), Done> {
        if let Some(limit) = self.account().quota {
            let used = self.store().usage(self.account_id()).await?;
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
        raw: &[u8],
        flags: &[String],
        date: Option<i64>,
        message: &[u8],
    ) -> Res {
        let name = self.mailbox_arg(raw)?;
        let Some(mb) = self.store().mailbox(self.account_id(), &name).await? else {
            return Err(no(format!("[TRYCREATE] No mailbox {name}")));
        };
        if message.len() as u64 > self.server.max_message_size {
            return Err(no(format!(
                "[TOOBIG] The limit is {} octets",
                self.server.max_message_size
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
        let appended = self.store().append(mb.id, message, &flags, at).await?;
        Ok(ok(format!(
            "[APPENDUID {} {}] APPEND completed",
            appended.uid_validity, appended.uid
        )))
    }
}

/// Change announcements and IDLE.
impl Session {
    /// SELECT (QRESYNC …) (RFC 7162 §3.2.5): when the client's UIDVALIDITY is still good, what
    /// was expunged since its MODSEQ (VANISHED (EARLIER)) and what changed (FETCH).
    async fn resync<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        q: &Qresync,
        io: &mut Io<S>,
    ) -> Result<(), Done> {
        let store = self.server.store.clone();
        let rev2 = self.rev2;
        let sel = self.sel();
        if q.uid_validity != sel.mailbox.uid_validity {
            return Ok(());
        }
        let mut gone = store.expunged_since(sel.mailbox.id, q.modseq).await?;
        if let Some(known) = &q.known_uids {
            gone.retain(|&u| known.contains(u, u32::MAX));
        }
        if !gone.is_empty() {
            io.out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", compact_set(&gone)).as_bytes(),
            );
        }
        let changed: Vec<u32> = (1..=sel.view.len())
            .filter(|&seq| sel.view.get(seq).is_some_and(|m| m.modseq > q.modseq))
            .collect();
        for seq in changed {
            sel.flags_response(&mut io.out, seq, true, true, rev2);
        }
        Ok(())
    }

    /// UID FETCH … (CHANGEDSINCE n VANISHED) (RFC 7162 §3.2.6): the UIDs of the set expunged
    /// since n, before the FETCH answers.
    async fn vanished_since<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        set: &SequenceSet,
        since: u64,
        io: &mut Io<S>,
    ) -> Result<(), Done> {
        if !self.qresync {
            return Err(bad("[CLIENTBUG] ENABLE QRESYNC first (RFC 7162, 3.2.6)"));
        }
        let store = self.server.store.clone();
        let sel = self
            .selected
            .as_ref()
            .ok_or_else(|| bad("No mailbox selected"))?;
        let mut gone = store.expunged_since(sel.mailbox.id, since).await?;
        // `*` reaches past the last message still here.
        gone.retain(|&u| set.contains(u, u32::MAX));
        if !gone.is_empty() {
            io.out.extend_from_slice(
                format!("* VANISHED (EARLIER) {}\r\n", compact_set(&gone)).as_bytes(),
            );
        }
        Ok(())
    }

    /// The first command that uses CONDSTORE turns it on (RFC 7162 §3.1): the client then
    /// hears the mailbox's HIGHESTMODSEQ, and every FETCH carries MODSEQ.
    fn enable_condstore<S>(&mut self, io: &mut Io<S>) {
        if self.condstore {
            return;
        }
        self.condstore = true;
        if let Some(sel) = &self.selected {
            io.out.extend_from_slice(
                format!(
                    "* OK [HIGHESTMODSEQ {}] CONDSTORE on\r\n",
                    sel.view.caught_up
                )
                .as_bytes(),
            );
        }
    }

    fn drain_changes(&mut self) {
        let Some(mut rx) = self.changes.take() else {
            return;
        };
        loop {
            match rx.try_recv() {
                Ok(c) => self.note_change(&c),
                Err(broadcast::error::TryRecvError::Lagged(_)) => self.lost_track(),
                Err(_) => break,
            }
        }
        self.changes = Some(rx);
    }

    fn lost_track(&mut self) {
        if let Some(sel) = &mut self.selected {
            sel.lost = true;
        }
    }

    fn note_change(&mut self, c: &MailboxChange) {
        if c.kind == ChangeKind::Missed {
            return self.lost_track();
        }
        let Some(account) = &self.account else { return };
        let Some(sel) = &mut self.selected else {
            return;
        };
        if c.account != account.id || c.mailbox != sel.mailbox.id {
            return;
        }
        match &c.kind {
            ChangeKind::Appended { .. } | ChangeKind::Flags { .. } => sel.stale = true,
            ChangeKind::Expunged { uids } => sel.view.note_expunged(uids),
            ChangeKind::Mailboxes | ChangeKind::Missed => {}
        }
    }

    /// Tells the client what changed in the selected mailbox: EXPUNGEs first (when allowed),
    /// then EXISTS and flag changes.
    async fn announce<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut Io<S>,
        expunge_ok: bool,
    ) -> Result<(), StoreError> {
        self.drain_changes();
        let store = self.server.store.clone();
        let (condstore, rev2) = (self.condstore, self.rev2);
        let Some(sel) = &mut self.selected else {
            return Ok(());
        };
        let mut updates = Vec::new();
        let largest_before = sel.view.largest_uid();
        if sel.lost {
            let mb = store
                .mailbox(sel.mailbox.account, &sel.mailbox.name)
                .await?;
            let fresh = store.messages(sel.mailbox.id).await?;
            let highest = mb.map_or(0, |m| m.highest_modseq);
            updates = sel.view.reload(fresh, highest, expunge_ok);
            (sel.lost, sel.stale) = (false, false);
        } else {
            if expunge_ok {
                updates = sel.view.announce_expunges();
            }
            if sel.stale {
                sel.stale = false;
                let changed = store
                    .messages_since(sel.mailbox.id, sel.view.caught_up)
                    .await?;
                updates.extend(sel.view.catch_up(changed));
            }
        }
        if !sel.read_only && sel.view.largest_uid() > largest_before {
            // New messages are recent here if no other session claimed them first.
            let first = claim_recent(&*store, sel.mailbox.id, largest_before + 1).await?;
            let fresh: Vec<u32> = sel
                .view
                .messages()
                .iter()
                .map(|m| m.uid)
                .filter(|&u| u > largest_before && u >= first)
                .collect();
            sel.recent.extend(fresh);
        }
        let mut gone = Vec::new();
        for u in updates {
            if let Update::Expunge { seq, uid } = u {
                gone.push((seq, uid));
                continue;
            }
            sel.write_expunges(&std::mem::take(&mut gone), &mut io.out);
            match u {
                Update::Exists(n) => {
                    io.out
                        .extend_from_slice(format!("* {n} EXISTS\r\n").as_bytes());
                    if !rev2 {
                        let recent = sel.recent.len();
                        io.out
                            .extend_from_slice(format!("* {recent} RECENT\r\n").as_bytes());
                    }
                }
                Update::Expunge { .. } => {}
                Update::Flags { seq, .. } => {
                    sel.flags_response(&mut io.out, seq, true, condstore, rev2)
                }
            }
        }
        sel.write_expunges(&gone, &mut io.out);
        Ok(())
    }

    /// IDLE (RFC 2177): changes are pushed as they happen until the client says DONE.
    async fn idle<S: AsyncRead + AsyncWrite + Unpin>(&mut self, io: &mut Io<S>) -> Res {
        io.out.extend_from_slice(b"+ idling\r\n");
        if let Err(e) = self.announce(io, true).await {
            tracing::warn!(peer = %self.peer, error = %e, "IMAP IDLE: cannot catch up");
        }
        let mut keepalive = tokio::time::interval(self.server.keepalive);
        keepalive.tick().await;
        let Some(mut rx) = self.changes.take() else {
            return Err(bad("No change feed"));
        };
        let result = loop {
            if let Some(line) = io.reader.take_line() {
                break match line {
                    Ok(l) if l.eq_ignore_ascii_case(b"DONE") => Ok(ok("IDLE terminated")),
                    _ => Err(bad("[CLIENTBUG] Expected DONE")),
                };
            }
            tokio::select! {
                change = rx.recv() => {
                    match change {
                        Ok(c) => self.note_change(&c),
                        Err(broadcast::error::RecvError::Lagged(_)) => self.lost_track(),
                        Err(broadcast::error::RecvError::Closed) => break Err(no("[UNAVAILABLE] Change feed closed")),
                    }
                    // Gather what arrived together, then tell the client at once.
                    self.changes = Some(rx);
                    let announced = self.announce(io, true).await;
                    rx = self.changes.take().unwrap_or_else(|| self.server.store.subscribe());
                    if let Err(e) = announced {
                        tracing::warn!(peer = %self.peer, error = %e, "IMAP IDLE: cannot catch up");
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
        };
        self.changes = Some(rx);
        result
    }
}

/// Messages of the selected mailbox.
impl Session {
    fn sel(&mut self) -> &mut Selected {
        self.selected
            .as_mut()
            .expect("selected-state commands run only with a mailbox selected")
    }

    async fn expunge<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        uids: Option<&SequenceSet>,
        io: &mut Io<S>,
    ) -> Res {
        // See the newest flags first: a \Deleted set elsewhere counts.
        self.announce(io, true).await?;
        let store = self.server.store.clone();
        let sel = self.sel();
        if sel.read_only {
            return Err(no("[READ-ONLY] The mailbox is read-only"));
        }
        let largest = sel.view.largest_uid();
        let doomed: Vec<u32> = sel
            .view
            .messages()
            .iter()
            .filter(|m| has_flag(m, "\\Deleted"))
            .filter(|m| uids.is_none_or(|set| set.contains(m.uid, largest)))
            .map(|m| m.uid)
            .collect();
        if !doomed.is_empty() {
            let removed = store.expunge(sel.mailbox.id, &doomed).await?;
            sel.announce_removed(removed, &mut io.out);
        }
        Ok(ok("EXPUNGE completed"))
    }

    async fn search<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        uid: bool,
        ret: Option<Vec<SearchReturn>>,
        key: &SearchKey,
        io: &mut Io<S>,
    ) -> Res {
        let store = self.server.store.clone();
        let rev2 = self.rev2;
        let sel = self
            .selected
            .as_mut()
            .ok_or_else(|| bad("No mailbox selected"))?;
        let (largest_seq, largest_uid) = (sel.view.len(), sel.view.largest_uid());
        // (sequence number, UID, MODSEQ) of each match.
        let mut hits: Vec<(u32, u32, u64)> = Vec::new();
        for (i, meta) in sel.view.messages().iter().enumerate() {
            let text = if key.needs_body() {
                match store.message_body(sel.mailbox.id, meta.uid).await? {
                    Some(body) => {
                        self.server.headers.put(sel.mailbox.id, meta.uid, &body);
                        Some(Text::Whole(SearchText::new(&body)))
                    }
                    None => continue,
                }
            } else if key.needs_text() {
                match header(&self.server, sel.mailbox.id, meta.uid).await? {
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
                recent: sel.recent.contains(&meta.uid),
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
                let mut line = format!("* ESEARCH (TAG \"{}\")", self.tag);
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

    async fn fetch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        items: &[FetchAttr],
        changed_since: Option<u64>,
        io: &mut Io<S>,
    ) -> Res {
        let store = self.server.store.clone();
        let server = self.server.clone();
        if changed_since.is_some() || items.contains(&FetchAttr::ModSeq) {
            self.enable_condstore(io);
        }
        let (condstore, rev2) = (self.condstore, self.rev2);
        let sel = self.sel();
        let seqs = sel
            .view
            .resolve(set, uid)
            .map_err(|e| bad(format!("[CLIENTBUG] No message {}", e.0)))?;
        // ENVELOPE and the top-level header sections need only the (cached) header.
        let reads = items
            .iter()
            .map(FetchAttr::reads)
            .max()
            .unwrap_or(Reads::Metadata);
        let (needs_header, needs_body) = (reads >= Reads::Header, reads == Reads::Body);
        let marks_seen = !sel.read_only
            && items.iter().any(|a| {
                matches!(
                    a,
                    FetchAttr::Rfc822
                        | FetchAttr::Rfc822Text
                        | FetchAttr::Section { peek: false, .. }
                        | FetchAttr::Binary { peek: false, .. }
                )
            });
        let mut seen_now = Vec::new();
        if marks_seen {
            let unseen: Vec<u32> = seqs
                .iter()
                .filter_map(|&s| sel.view.get(s))
                .filter(|m| !has_flag(m, "\\Seen") && !sel.view.is_expunged(m.uid))
                .map(|m| m.uid)
                .collect();
            if !unseen.is_empty() {
                for m in store
                    .set_flags(sel.mailbox.id, &unseen, FlagChange::Add, &["\\Seen"])
                    .await?
                {
                    seen_now.push(m.uid);
                    sel.view.update(m);
                }
            }
        }
        let mut failure = None;
        for seq in seqs {
            let Some(meta) = sel.view.get(seq).cloned() else {
                continue;
            };
            if changed_since.is_some_and(|c| meta.modseq <= c) {
                continue;
            }
            let body: Option<std::borrow::Cow<'_, [u8]>> = if needs_body {
                match store.message_body(sel.mailbox.id, meta.uid).await? {
                    Some(b) => {
                        server.headers.put(sel.mailbox.id, meta.uid, &b);
                        Some(b.into())
                    }
                    // Expunged elsewhere, not yet announced (RFC 9051 §7.5.1 lets us skip it).
                    None => continue,
                }
            } else if needs_header {
                match header(&server, sel.mailbox.id, meta.uid).await? {
                    Some(h) => Some(h.raw.to_vec().into()),
                    None => continue,
                }
            } else {
                None
            };
            let structure = body.as_deref().map(mime::parse);
            sel.note_keywords(&meta.flags, &mut io.out);
            let out = &mut io.out;
            out.extend_from_slice(format!("* {seq} FETCH (").as_bytes());
            let mut first = true;
            let mut sep = |out: &mut Vec<u8>| {
                if !std::mem::take(&mut first) {
                    out.push(b' ');
                }
            };
            if uid && !items.contains(&FetchAttr::Uid) {
                sep(out);
                out.extend_from_slice(format!("UID {}", meta.uid).as_bytes());
            }
            for item in items {
                sep(out);
                let raw = body.as_deref().unwrap_or_default();
                match item {
                    FetchAttr::Flags => {
                        out.extend_from_slice(b"FLAGS ");
                        sel.write_flags(out, &meta, rev2);
                    }
                    FetchAttr::Uid => out.extend_from_slice(format!("UID {}", meta.uid).as_bytes()),
                    FetchAttr::InternalDate => out.extend_from_slice(
                        format!(
                            "INTERNALDATE \"{}\"",
                            date::format_date_time(meta.internal_date)
                        )
                        .as_bytes(),
                    ),
                    FetchAttr::Rfc822Size => {
                        out.extend_from_slice(format!("RFC822.SIZE {}", meta.size).as_bytes())
                    }
                    FetchAttr::ModSeq => {
                        out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes())
                    }
                    FetchAttr::Envelope => {
                        out.extend_from_slice(b"ENVELOPE ");
                        if let Some(s) = &structure {
                            mime::envelope(out, raw, s);
                        }
                    }
                    FetchAttr::Body | FetchAttr::BodyStructure => {
                        let extended = *item == FetchAttr::BodyStructure;
                        out.extend_from_slice(if extended {
                            b"BODYSTRUCTURE "
                        } else {
                            b"BODY "
                        });
                        if let Some(s) = &structure {
                            mime::body_structure(out, raw, s, extended);
                        }
                    }
                    FetchAttr::Rfc822 => {
                        out.extend_from_slice(b"RFC822 ");
                        literal(out, raw);
                    }
                    FetchAttr::Rfc822Header | FetchAttr::Rfc822Text => {
                        let (label, text) = if *item == FetchAttr::Rfc822Header {
                            ("RFC822.HEADER ", SectionText::Header)
                        } else {
                            ("RFC822.TEXT ", SectionText::Text)
                        };
                        out.extend_from_slice(label.as_bytes());
                        let section = Section {
                            part: Vec::new(),
                            text: Some(text),
                        };
                        let bytes = structure
                            .as_ref()
                            .and_then(|s| mime::section(raw, s, &section).ok())
                            .unwrap_or_default();
                        literal(out, &bytes);
                    }
                    FetchAttr::Section {
                        section, partial, ..
                    } => {
                        out.extend_from_slice(b"BODY[");
                        section_label(out, section);
                        out.push(b']');
                        let data = structure.as_ref().map(|s| mime::section(raw, s, section));
                        match data {
                            Some(Ok(bytes)) => write_partial(out, &bytes, *partial, false),
                            _ => out.extend_from_slice(b" NIL"),
                        }
                    }
                    FetchAttr::Binary { part, partial, .. } => {
                        out.extend_from_slice(b"BINARY[");
                        out.extend_from_slice(part_label(part).as_bytes());
                        out.push(b']');
                        match structure.as_ref().map(|s| mime::binary(raw, s, part)) {
                            Some(Ok(bytes)) => write_partial(out, &bytes, *partial, true),
                            Some(Err(SectionError::UnknownEncoding)) => {
                                failure = Some(no(
                                    "[UNKNOWN-CTE] Cannot decode the part's Content-Transfer-Encoding",
                                ));
                                out.extend_from_slice(b" NIL");
                            }
                            _ => out.extend_from_slice(b" NIL"),
                        }
                    }
                    FetchAttr::BinarySize(part) => {
                        out.extend_from_slice(
                            format!("BINARY.SIZE[{}] ", part_label(part)).as_bytes(),
                        );
                        match structure.as_ref().map(|s| mime::binary(raw, s, part)) {
                            Some(Ok(bytes)) => {
                                out.extend_from_slice(bytes.len().to_string().as_bytes())
                            }
                            _ => out.extend_from_slice(b"NIL"),
                        }
                    }
                }
            }
            if seen_now.contains(&meta.uid) && !items.contains(&FetchAttr::Flags) {
                sep(out);
                out.extend_from_slice(b"FLAGS ");
                sel.write_flags(out, &meta, rev2);
            }
            if condstore && !items.contains(&FetchAttr::ModSeq) {
                sep(out);
                out.extend_from_slice(format!("MODSEQ ({})", meta.modseq).as_bytes());
            }
            out.extend_from_slice(b")\r\n");
            if io.out.len() > 256 * 1024 {
                io.flush().await.map_err(|_| Done {
                    flow: Flow::Close,
                    ..bad("Connection lost")
                })?;
            }
        }
        match failure {
            Some(f) => Err(f),
            None => Ok(ok("FETCH completed")),
        }
    }

    #[allow(clippy::too_many_arguments)]
    async fn store_flags<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        unchanged_since: Option<u64>,
        mode: StoreMode,
        silent: bool,
        flags: &[String],
        io: &mut Io<S>,
    ) -> Res {
        if unchanged_since.is_some() {
            self.enable_condstore(io);
            // Compare against the newest MODSEQs (no EXPUNGE here: RFC 9051 §7.5.1).
            self.announce(io, uid).await?;
        }
        let store = self.server.store.clone();
        let (condstore, rev2) = (self.condstore, self.rev2);
        let sel = self.sel();
        if sel.read_only {
            return Err(no("[READ-ONLY] The mailbox is read-only"));
        }
        let seqs = sel
            .view
            .resolve(set, uid)
            .map_err(|e| bad(format!("[CLIENTBUG] No message {}", e.0)))?;
        let mut targets = Vec::new();
        let mut modified = Vec::new();
        for &seq in &seqs {
            let Some(m) = sel.view.get(seq) else { continue };
            if sel.view.is_expunged(m.uid) {
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
                .set_flags(sel.mailbox.id, &targets, change, &flags)
                .await?
        };
        let changed_uids: Vec<u32> = changed.iter().map(|m| m.uid).collect();
        for m in changed {
            sel.view.update(m);
        }
        for target in targets {
            let was_changed = changed_uids.contains(&target);
            // RFC 7162 §3.1.3: with CONDSTORE a changed message is reported even when silent.
            if (silent && !(condstore && was_changed)) || sel.view.seq_of(target).is_none() {
                continue;
            }
            let Some(seq) = sel.view.seq_of(target) else {
                continue;
            };
            sel.flags_response(&mut io.out, seq, uid, condstore, rev2);
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

    async fn copy<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        uid: bool,
        set: &SequenceSet,
        raw: &[u8],
        is_move: bool,
        io: &mut Io<S>,
    ) -> Res {
        let name = self.mailbox_arg(raw)?;
        let Some(target) = self.store().mailbox(self.account_id(), &name).await? else {
            return Err(no(format!("[TRYCREATE] No mailbox {name}")));
        };
        let store = self.server.store.clone();
        let sel = self.sel();
        if is_move && sel.read_only {
            return Err(no("[READ-ONLY] The mailbox is read-only"));
        }
        let seqs = sel
            .view
            .resolve(set, uid)
            .map_err(|e| bad(format!("[CLIENTBUG] No message {}", e.0)))?;
        let uids: Vec<u32> = seqs
            .iter()
            .filter_map(|&s| sel.view.get(s))
            .filter(|m| !sel.view.is_expunged(m.uid))
            .map(|m| m.uid)
            .collect();
        if uids.is_empty() {
            return Ok(ok(if is_move {
                "MOVE completed"
            } else {
                "COPY completed"
            }));
        }
        let pairs = store.copy(sel.mailbox.id, &uids, target.id).await?;
        let (from, to): (Vec<u32>, Vec<u32>) = pairs.iter().copied().unzip();
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
        let removed = store.expunge(sel.mailbox.id, &from).await?;
        sel.announce_removed(removed, &mut io.out);
        Ok(ok("MOVE completed"))
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

/// A message's header, from the cache or (once) from the store.
async fn header(
    server: &ImapServer,
    mailbox: kurier_store::MailboxId,
    uid: u32,
) -> Result<Option<Arc<CachedHeader>>, StoreError> {
    if let Some(h) = server.headers.get(mailbox, uid) {
        return Ok(Some(h));
    }
    Ok(server
        .store
        .message_body(mailbox, uid)
        .await?
        .map(|body| server.headers.put(mailbox, uid, &body)))
}

/// Claims the mailbox's recent messages for this session (RFC 3501 §2.3.2). When the store
/// cannot be written now (a full disk), the session goes on without claiming — `\Recent`
/// is advisory, and reading mail must not fail for it: `unclaimed` is the first UID taken
/// as recent then.
async fn claim_recent(
    store: &dyn kurier_store::Store,
    mailbox: kurier_store::MailboxId,
    unclaimed: u32,
) -> Result<u32, StoreError> {
    match store.claim_recent(mailbox).await {
        Err(e) if e.is_temporary() => {
            tracing::warn!(error = %e, "IMAP: cannot claim \\Recent now; going on without");
            Ok(unclaimed)
        }
        other => other,
    }
}

fn has_flag(m: &MessageMeta, flag: &str) -> bool {
    m.flags.iter().any(|f| f.eq_ignore_ascii_case(flag))
}

fn part_label(part: &[u32]) -> String {
    part.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(".")
}

/// The section spec as the response names it (RFC 9051 §7.5.2).
fn section_label(out: &mut Vec<u8>, s: &Section) {
    let mut label = part_label(&s.part);
    let text = match &s.text {
        None => None,
        Some(SectionText::Header) => Some("HEADER".to_string()),
        Some(SectionText::Text) => Some("TEXT".to_string()),
        Some(SectionText::Mime) => Some("MIME".to_string()),
        Some(SectionText::HeaderFields { not, fields }) => {
            let mut v = Vec::new();
            for (i, f) in fields.iter().enumerate() {
                if i > 0 {
                    v.push(b' ');
                }
                string(&mut v, f.as_bytes());
            }
            Some(format!(
                "HEADER.FIELDS{} ({})",
                if *not { ".NOT" } else { "" },
                String::from_utf8_lossy(&v)
            ))
        }
    };
    if let Some(t) = text {
        if !label.is_empty() {
            label.push('.');
        }
        label.push_str(&t);
    }
    out.extend_from_slice(label.as_bytes());
}

/// ` {n}…` or, for a partial fetch, `<origin> {n}…`; BINARY data with NUL uses literal8.
fn write_partial(out: &mut Vec<u8>, bytes: &[u8], partial: Option<(u32, u32)>, binary: bool) {
    let data = match partial {
        Some((offset, length)) => {
            out.extend_from_slice(format!("<{offset}>").as_bytes());
            let start = (offset as usize).min(bytes.len());
            let end = start.saturating_add(length as usize).min(bytes.len());
            &bytes[start..end]
        }
        None => bytes,
    };
    out.push(b' ');
    if binary && data.contains(&0) {
        out.push(b'~');
    }
    literal(out, data);
}

/// `1:3,7,9:10` from numbers (RFC 9051 sequence-set), keeping the given order of runs.
fn compact_set(numbers: &[u32]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < numbers.len() {
        let start = numbers[i];
        let mut end = start;
        while i + 1 < numbers.len() && numbers[i + 1] == end.wrapping_add(1) {
            end = numbers[i + 1];
            i += 1;
        }
        if !out.is_empty() {
            out.push(',');
        }
        if start == end {
            out.push_str(&start.to_string());
        } else {
            out.push_str(&format!("{start}:{end}"));
        }
        i += 1;
    }
    out
}

/// `a`, `a/b` for `a/b/c`.
fn superiors(name: &str) -> Vec<String> {
    name.match_indices(DELIMITER)
        .map(|(i, _)| name[..i].to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

fn is_child(candidate: &str, parent: &str) -> bool {
    candidate.len() > parent.len() + 1
        && candidate.starts_with(parent)
        && candidate[parent.len()..].starts_with(DELIMITER)
}

/// LIST patterns (RFC 9051 §6.3.9): `*` matches anything, `%` anything but the delimiter.
/// INBOX matches case-insensitively.
fn pattern_matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    if glob(&p, &n) {
        return true;
    }
    // `inbox` (any case) names INBOX.
    name.starts_with("INBOX")
        && p.len() >= 5
        && p[..5]
            .iter()
            .collect::<String>()
            .eq_ignore_ascii_case("INBOX")
        && glob(
            &"INBOX"
                .chars()
                .chain(p[5..].iter().copied())
                .collect::<Vec<_>>(),
            &n,
        )
}

/// Wildcard matching without recursion or backtracking: one pass over the pattern, keeping
/// the set of name positions reachable so far (O(pattern × name) time, O(name) memory), so a
/// hostile pattern such as `*a*a*a…b` costs no more than a plain one.
fn glob(pattern: &[char], name: &[char]) -> bool {
    let mut reach = vec![false; name.len() + 1];
    let mut next = vec![false; name.len() + 1];
    reach[0] = true;
    let mut prev = None;
    for &pc in pattern {
        // `**` is `*`: skip repeats so that they cost nothing either.
        if pc == '*' && prev == Some('*') {
            continue;
        }
        prev = Some(pc);
        match pc {
            '*' => {
                let mut any = false;
                for (j, r) in reach.iter().enumerate() {
                    any |= *r;
                    next[j] = any;
                }
            }
            '%' => {
                let mut any = false;
                for (j, r) in reach.iter().enumerate() {
                    if j > 0 && name[j - 1] == DELIMITER {
                        any = false;
                    }
                    any |= *r;
                    next[j] = any;
                }
            }
            c => {
                next[0] = false;
                for j in 1..=name.len() {
                    next[j] = reach[j - 1] && name[j - 1] == c;
                }
            }
        }
        std::mem::swap(&mut reach, &mut next);
    }
    reach[name.len()]
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

    #[test]
    fn list_patterns() {
        assert!(pattern_matches("*", "Archive/2026"));
        assert!(pattern_matches("%", "Archive"));
        assert!(!pattern_matches("%", "Archive/2026"));
        assert!(pattern_matches("Archive/%", "Archive/2026"));
        assert!(pattern_matches("A*6", "Archive/2026"));
        assert!(pattern_matches("inbox", "INBOX"));
        assert!(pattern_matches("Inbox/*", "INBOX/x"));
        assert!(!pattern_matches("Sent", "Sent/x"));
        assert!(!pattern_matches("", "INBOX"));
        assert!(pattern_matches("%/%", "a/b"));
        assert!(!pattern_matches("%/%", "a/b/c"));
        assert!(pattern_matches("*/%", "a/b/c"));
    }

    /// Hostile LIST patterns: thousands of wildcards neither recurse nor backtrack.
    #[test]
    fn hostile_list_patterns_are_cheap() {
        let long = format!("{}b", "*a".repeat(20_000));
        let name = "a".repeat(200);
        assert!(!pattern_matches(&long, &name));
        assert!(pattern_matches(&"%".repeat(50_000), "INBOX"));
    }

    #[test]
    fn sets_and_labels() {
        assert_eq!(compact_set(&[1, 2, 3, 7, 9, 10]), "1:3,7,9:10");
        assert_eq!(compact_set(&[5]), "5");
        assert_eq!(compact_set(&[]), "");
        assert!(is_child("a/b", "a") && !is_child("ab", "a") && !is_child("a", "a"));
        assert_eq!(superiors("a/b/c"), ["a", "a/b"]);
        assert!(superiors("a").is_empty());
        let mut out = Vec::new();
        section_label(
            &mut out,
            &Section {
                part: vec![1, 2],
                text: Some(SectionText::HeaderFields {
                    not: true,
                    fields: vec!["From".into(), "X Y".into()],
                }),
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1.2.HEADER.FIELDS.NOT (\"From\" \"X Y\")"
        );
        let mut out = Vec::new();
        write_partial(&mut out, b"0123456789", Some((8, 5)), false);
        assert_eq!(out, b"<8> {2}\r\n89");
        let mut out = Vec::new();
        write_partial(&mut out, b"a\0b", None, true);
        assert_eq!(out, b" ~{3}\r\na\0b");
    }
}
