//! One IMAP connection: its state (RFC 9051 §3) and the commands valid in each, over the
//! store. Parsing, MIME, search and the mailbox view are pure modules; this is the layer that
//! asks the store and writes responses, one module per state:
//!
//! - `not_authenticated`: STARTTLS, LOGIN, AUTHENTICATE (§6.2);
//! - `authenticated`: what a logged-in user may do without a mailbox, and the change feed
//!   (§6.3, RFC 5161 ENABLE, RFC 2177 IDLE, RFC 9208 QUOTA);
//! - `selected`: the selected mailbox and its commands (§6.4), `fetch` for FETCH (§6.4.5);
//! - `names`: mailbox names and LIST patterns (§5.1, §6.3.9).
//!
//! The state is a type: a command reaches the code of a state only when the session is in it,
//! with that state's data in hand, so no handler looks for an account or mailbox that may be
//! missing. Moving between states happens here, in `dispatch`, and nowhere else.

mod authenticated;
mod fetch;
mod names;
mod not_authenticated;
mod selected;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use kurier_store::{MessageMeta, StoreError};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cache::CachedHeader;
use crate::command::{self, Command, CommandState};
use crate::server::{ImapServer, Io};

use authenticated::User;
use selected::Selected;

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

/// Before login a literal carries at most a user name or password (Dovecot allows similar).
pub(crate) const PRE_LOGIN_LITERAL: u64 = 8 * 1024;
/// Before login a command line is short too (LOGIN, AUTHENTICATE with SASL-IR, ID).
pub(crate) const PRE_LOGIN_LINE: usize = 8 * 1024;

/// What a connection knows in every state.
struct Connection {
    server: Arc<ImapServer>,
    peer: SocketAddr,
    /// Port 143: STARTTLS offered, no login before it.
    starttls: bool,
    tls: bool,
    /// BAD answers in a row; 20 end the session.
    errors: u32,
    /// The tag of the command being answered.
    tag: String,
}

impl Connection {
    fn store(&self) -> &dyn kurier_store::Store {
        &*self.server.store
    }

    fn capabilities(&self, logged_in: bool) -> String {
        let mut caps = String::from("IMAP4rev1 IMAP4rev2 ID ENABLE LITERAL+");
        if !self.tls {
            // RFC 9051 §6.2.3 / TR-03108 MUA-2: no credentials before TLS.
            caps.push_str(" STARTTLS LOGINDISABLED");
        } else if !logged_in {
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
}

/// The connection's state (RFC 9051 §3), holding what exists only in it. Logout (§3.4) is
/// not a state here: the connection just ends (`Flow::Close`).
enum State {
    /// §3.1: before LOGIN or AUTHENTICATE.
    NotAuthenticated,
    /// §3.2: logged in, no mailbox selected.
    Authenticated(User),
    /// §3.3: logged in with a mailbox selected.
    Selected(User, Box<Selected>),
}

impl State {
    /// Selected → authenticated (CLOSE, UNSELECT, DELETE of it, and every SELECT, even one
    /// that fails: RFC 9051 §6.3.2). Returns the mailbox that was selected.
    fn deselect(&mut self) -> Option<Box<Selected>> {
        match std::mem::replace(self, State::NotAuthenticated) {
            State::Selected(user, selected) => {
                *self = State::Authenticated(user);
                Some(selected)
            }
            other => {
                *self = other;
                None
            }
        }
    }

    /// Authenticated → selected, once SELECT or EXAMINE succeeded.
    fn select(&mut self, selected: Selected) {
        *self = match std::mem::replace(self, State::NotAuthenticated) {
            State::Authenticated(user) | State::Selected(user, _) => {
                State::Selected(user, Box::new(selected))
            }
            State::NotAuthenticated => State::NotAuthenticated,
        };
    }

    fn logged_in(&self) -> bool {
        !matches!(self, State::NotAuthenticated)
    }
}

pub(crate) struct Session {
    conn: Connection,
    state: State,
}

impl Session {
    pub(crate) fn new(server: Arc<ImapServer>, peer: SocketAddr, starttls: bool) -> Self {
        Session {
            conn: Connection {
                server,
                peer,
                starttls,
                tls: false,
                errors: 0,
                tag: String::new(),
            },
            state: State::NotAuthenticated,
        }
    }

    pub(crate) fn tls_started(&mut self) {
        self.conn.tls = true;
    }

    pub(crate) fn timeout(&self) -> Duration {
        if self.state.logged_in() {
            self.conn.server.idle_timeout
        } else {
            self.conn.server.login_timeout
        }
    }

    /// The largest literal the client may send now: before login only credentials travel, so
    /// literals stay small (`PRE_LOGIN_LITERAL`); after it APPEND has the message size limit.
    pub(crate) fn max_literal(&self) -> u64 {
        self.reader_limits().1
    }

    /// The reader's limits for the current state: (line, literal, whole command).
    pub(crate) fn reader_limits(&self) -> (usize, u64, usize) {
        if self.state.logged_in() {
            let max = self.conn.server.max_message_size;
            (64 * 1024, max, max as usize + 64 * 1024)
        } else {
            (PRE_LOGIN_LINE, PRE_LOGIN_LITERAL, 2 * PRE_LOGIN_LINE)
        }
    }

    pub(crate) fn greeting(&self) -> Vec<u8> {
        format!(
            "* OK [CAPABILITY {}] Kurier IMAP ready\r\n",
            self.conn.capabilities(false)
        )
        .into_bytes()
    }

    /// Runs one framed command and writes its responses.
    pub(crate) async fn execute<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        bytes: &[u8],
        io: &mut Io<S>,
    ) -> Flow {
        let (tag, cmd) = match command::parse_in(bytes, self.state.logged_in()) {
            Ok(parsed) => parsed,
            Err(e) => {
                self.conn.errors += 1;
                let tag = e.tag.unwrap_or_else(|| "*".into());
                let code = if e.message.starts_with('[') {
                    ""
                } else {
                    "[CLIENTBUG] "
                };
                io.out
                    .extend_from_slice(format!("{tag} BAD {code}{}\r\n", e.message).as_bytes());
                if self.conn.errors >= 20 {
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
        self.conn.tag.clone_from(&tag);
        let done = match self.dispatch(cmd, io).await {
            Ok(d) | Err(d) => d,
        };
        // Consecutive errors end the session; one that works resets the count.
        if done.status == "BAD" {
            self.conn.errors += 1;
        } else {
            self.conn.errors = 0;
        }
        if !quiet
            && done.flow == Flow::Continue
            && let State::Selected(user, selected) = &mut self.state
            && let Err(e) = selected.announce(&self.conn, user, io, expunge_ok).await
        {
            tracing::warn!(peer = %self.conn.peer, error = %e, "IMAP: cannot catch up with mailbox changes");
        }
        io.out
            .extend_from_slice(format!("{tag} {} {}\r\n", done.status, done.text).as_bytes());
        done.flow
    }

    /// Sends a command to the code of the state it belongs to, and makes the state changes
    /// of RFC 9051 §3 (the only place they happen).
    async fn dispatch<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        cmd: Command,
        io: &mut Io<S>,
    ) -> Res {
        let conn = &self.conn;
        if cmd.state() == CommandState::Any {
            return any_state(conn, self.state.logged_in(), cmd, io);
        }
        // RFC 9051 §6.3.2: SELECT first closes the selected mailbox, even when it fails.
        if matches!(cmd, Command::Select { .. }) && self.state.deselect().is_some() {
            io.out
                .extend_from_slice(b"* OK [CLOSED] Previous mailbox closed\r\n");
        }
        match &mut self.state {
            State::NotAuthenticated => match cmd {
                Command::StartTls => conn.start_tls(),
                cmd => {
                    let (user, done) = conn.log_in(cmd, io).await?;
                    self.state = State::Authenticated(user);
                    Ok(done)
                }
            },
            State::Authenticated(user) => match cmd {
                Command::Select {
                    mailbox,
                    read_only,
                    condstore,
                    qresync,
                } => {
                    let (selected, done) = user
                        .select(conn, &mailbox, read_only, condstore, qresync.as_ref(), io)
                        .await?;
                    self.state.select(selected);
                    Ok(done)
                }
                cmd => user.command(conn, None, cmd, io).await,
            },
            State::Selected(user, selected) => match cmd {
                // RFC 9051 §6.4.1: CLOSE expunges quietly (not in EXAMINE), then leaves.
                Command::Close => match self.state.deselect() {
                    Some(selected) => selected.close(conn).await,
                    None => Ok(ok("CLOSE completed")),
                },
                // RFC 9051 §6.4.2: UNSELECT leaves without expunging.
                Command::Unselect => {
                    self.state.deselect();
                    Ok(ok("UNSELECT completed"))
                }
                Command::Delete(raw) => {
                    let name = user.mailbox_arg(&raw)?;
                    let is_selected = selected.mailbox.name == name;
                    let done = user.delete(conn, &name).await?;
                    if is_selected {
                        self.state.deselect();
                    }
                    Ok(done)
                }
                cmd if cmd.state() == CommandState::Selected => {
                    selected.command(conn, user, cmd, io).await
                }
                cmd => user.command(conn, Some(selected), cmd, io).await,
            },
        }
    }
}

/// CAPABILITY, NOOP, LOGOUT (RFC 9051 §6.1) and ID (RFC 2971): the same in every state.
fn any_state<S>(conn: &Connection, logged_in: bool, cmd: Command, io: &mut Io<S>) -> Res {
    match cmd {
        Command::Capability => {
            io.out.extend_from_slice(
                format!("* CAPABILITY {}\r\n", conn.capabilities(logged_in)).as_bytes(),
            );
            Ok(ok("CAPABILITY completed"))
        }
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
                tracing::debug!(peer = %conn.peer, client = %client.join(" "), "IMAP ID");
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
        Command::Noop => Ok(ok("NOOP completed")),
        _ => Err(bad("[CLIENTBUG] Command not valid here")),
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
