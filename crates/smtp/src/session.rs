//! The inbound SMTP server session as an I/O-free state machine (RFC 5321 §3, §4.1.4 order
//! of commands), for the MX on port 25. The driver (`server.rs`) feeds it bytes and carries out
//! what it asks for (look up a recipient, store a message, start TLS) — the session never
//! touches a socket, a clock or the store, so every path is unit-tested here.

use std::net::IpAddr;
use std::sync::Arc;

use crate::command::{self, Command, CommandError, MailParams, RcptParams};
use crate::data::{BareLineEnding, BdatDecoder, BodyProblem, DataDecoder, DataProgress};
use crate::reply::Reply;
use crate::spool::{Body, InFlight, SpoolProblem};

/// Longest command line we read (RFC 5321 §4.5.3.1.4 says 512; extensions make it longer).
pub const MAX_COMMAND_LINE: usize = 2048;

/// Settings of an SMTP listener.
#[derive(Debug, Clone)]
pub struct SessionConfig {
    /// Our name in the greeting, EHLO and Received headers.
    pub hostname: String,
    /// Where `RCPT TO:<postmaster>` (no domain) goes.
    pub postmaster: String,
    pub max_message_size: usize,
    pub max_recipients: usize,
    /// Errors (bad commands, refused recipients) before the session is closed.
    pub max_errors: u32,
    /// Longest DATA line accepted (bytes, without CRLF).
    pub max_line_length: usize,
    pub bare_line_ending: BareLineEnding,
    /// Whether STARTTLS can be offered (a certificate is configured).
    pub starttls: bool,
    /// A submission port (RFC 6409): AUTH over TLS only, required before MAIL; relaying to
    /// other domains allowed for the authenticated; sender and From must be the user's.
    pub submission: bool,
    /// Whether our Received header names the client's IP address (submission may hide it).
    pub received_client_ip: bool,
    /// The budget of body bytes in flight, shared by all listeners (`spool`).
    pub in_flight: Arc<InFlight>,
    /// The time for Received and Date fields and message ids (`Clock::System` in service).
    pub clock: crate::received::Clock,
}

/// The peer of a session.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    pub ip: IpAddr,
}

/// What the TLS handshake gave, for the Received header (RFC 8314 §4.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsInfo {
    pub version: String,
    pub cipher: String,
    pub group: Option<String>,
}

/// What the session knows about its client when it hands on a recipient or a message: the
/// facts the acceptance pipeline's connection stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionFacts {
    pub ip: IpAddr,
    /// The EHLO/HELO argument as sent (a domain or an address literal, RFC 5321 §4.1.1.1).
    pub helo: Option<String>,
    /// Whether it was EHLO.
    pub esmtp: bool,
    /// `Some` once STARTTLS (or implicit TLS) is up.
    pub tls: Option<TlsInfo>,
    /// The account that authenticated (submission).
    pub account: Option<String>,
}

/// The store's answer about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Deliver to these accounts.
    Accept(Vec<i64>),
    /// Hosted domain, nobody there: 550 5.1.1.
    Unknown,
    /// Not our domain and no relaying: 554 5.7.1.
    NotHosted,
    /// Mailbox full: 452 4.2.2.
    OverQuota,
    /// The store cannot answer now: 451 4.3.0.
    TempFail,
    /// Refused by policy (a DNS blocklist, say): 554 5.7.1 with this reason.
    Refused(String),
    /// The client sent too many recipients lately: 450 4.7.1.
    RateLimited,
}

/// The driver's answer to `Authenticate`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// Valid: the account, and every address it may send as (its own, its aliases).
    Ok {
        account: String,
        senders: Vec<String>,
    },
    /// Wrong user or wrong password: the same answer for both.
    Invalid,
    /// Too many failures: 454, try later.
    Throttled,
}

/// How storing the message went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// Durably stored.
    Stored,
    /// A mailbox is full (a race with the RCPT check): 552 5.2.2.
    OverQuota(String),
    /// Try again later: 451 4.3.0.
    TempFail,
    /// The account sent too much in the last hour: 450 4.7.1.
    RateLimited,
    /// The message breaks a rule of the account (the reason says which): 550 5.7.1.
    Refused(String),
    /// A content filter (a spam or virus scanner) refuses the message: 554 5.7.1 with its reason.
    Rejected(String),
    /// A security check could not be done now (the reason says which): 451 4.7.0.
    Deferred(String),
}

/// A message ready to store: the envelope, the accounts, and the body with our Received header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub from: String,
    pub recipients: Vec<(String, RcptParams)>,
    pub accounts: Vec<i64>,
    /// Recipients in other domains (submission only): they go into the outbound queue.
    pub remote: Vec<(String, RcptParams)>,
    /// Who sent it: client address, HELO, TLS, the authenticated account.
    pub connection: ConnectionFacts,
    pub params: MailParams,
    pub body: Vec<u8>,
}

/// What the driver must do next.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// Send this reply (then call `input` again).
    Reply(Reply),
    /// Send the reply, then close the connection.
    Close(Reply),
    /// Look up this recipient, then call `recipient_verdict`.
    CheckRecipient(String),
    /// Check these credentials (with throttling), then call `auth_result`. Never log them.
    Authenticate { user: String, password: String },
    /// Store this message durably, then call `delivered`.
    Deliver(Box<Message>),
    /// Send this 220 reply, **drop every byte already buffered**, run the TLS handshake, then
    /// call `tls_started` (RFC 3207 §4.2; CVE-2011-0411).
    StartTls(Reply),
    /// No event. If `input` used some bytes and more are buffered, call it again; otherwise
    /// read more input first.
    NeedInput,
}

#[derive(Debug)]
enum State {
    /// Before EHLO/HELO (also right after STARTTLS).
    Fresh,
    /// Greeted; no transaction.
    Ready,
    /// MAIL accepted; recipients being collected.
    Transaction,
    /// Waiting for the driver's recipient verdict.
    Checking(String, RcptParams),
    /// Inside DATA.
    Data(Box<DataDecoder>),
    /// Inside a BDAT chunk with `remaining` bytes to go.
    Bdat {
        remaining: u64,
        last: bool,
    },
    /// Waiting for the driver to store the message.
    Delivering,
    /// A too-long command line is being skipped up to its end.
    SkipLine,
    /// AUTH PLAIN without an initial response: waiting for it.
    AuthPlain,
    /// AUTH LOGIN: waiting for the user name, then for the password.
    AuthLoginUser,
    AuthLoginPass(String),
    /// Waiting for the driver to check credentials.
    Authenticating,
    Closed,
}

pub struct Session {
    cfg: Arc<SessionConfig>,
    peer: PeerInfo,
    state: State,
    helo: Option<(String, bool)>,
    tls: Option<TlsInfo>,
    from: Option<(String, MailParams)>,
    recipients: Vec<(String, RcptParams)>,
    accounts: Vec<i64>,
    /// The BDAT body of the transaction, from its first chunk on.
    bdat: Option<BdatDecoder>,
    bdat_failed: Option<Reply>,
    /// Memory held for the message being stored, until the driver says how that went.
    storing: Option<kurier_access::Reservation>,
    errors: u32,
    counter: u64,
    /// The authenticated account and the addresses it may send as.
    account: Option<(String, Vec<String>)>,
    remote: Vec<(String, RcptParams)>,
}

fn r(code: u16, enhanced: &'static str, text: &str) -> Reply {
    Reply::new(code, enhanced, text)
}

impl Session {
    pub fn new(cfg: Arc<SessionConfig>, peer: PeerInfo) -> Session {
        Session {
            cfg,
            peer,
            state: State::Fresh,
            helo: None,
            tls: None,
            from: None,
            recipients: Vec::new(),
            accounts: Vec::new(),
            bdat: None,
            bdat_failed: None,
            storing: None,
            errors: 0,
            counter: 0,
            account: None,
            remote: Vec::new(),
        }
    }

    /// The 220 greeting.
    pub fn greeting(&self) -> Reply {
        Reply::plain(220, format!("{} ESMTP Kurier", self.cfg.hostname))
    }

    /// The reply when the peer is too slow (RFC 5321 §4.5.3.2).
    pub fn timeout_reply(&self) -> Reply {
        r(
            421,
            "4.4.2",
            &format!("{} Error: timeout exceeded", self.cfg.hostname),
        )
    }

    /// The reply when the server shuts down.
    pub fn shutdown_reply(&self) -> Reply {
        r(
            421,
            "4.3.2",
            &format!(
                "{} Service shutting down, try again later",
                self.cfg.hostname
            ),
        )
    }

    pub fn tls(&self) -> Option<&TlsInfo> {
        self.tls.as_ref()
    }

    /// What the session knows about its client now.
    pub fn connection(&self) -> ConnectionFacts {
        ConnectionFacts {
            ip: self.peer.ip,
            helo: self.helo.as_ref().map(|(h, _)| h.clone()),
            esmtp: self.helo.as_ref().is_some_and(|(_, e)| *e),
            tls: self.tls.clone(),
            account: self.account.as_ref().map(|(a, _)| a.clone()),
        }
    }

    /// Whether the session has ended (QUIT, or a 421): the driver closes the connection.
    pub fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Whether the session is inside DATA or BDAT (longer timeout, no interruption).
    pub fn in_message(&self) -> bool {
        matches!(self.state, State::Data(_) | State::Bdat { .. })
    }

    fn reset(&mut self) {
        self.from = None;
        self.recipients.clear();
        self.accounts.clear();
        self.remote.clear();
        self.bdat = None;
        self.bdat_failed = None;
        if !matches!(self.state, State::Fresh | State::Closed) {
            self.state = State::Ready;
        }
    }

    /// Counts an error; past the limit the session ends (RFC 5321 §4.3.2 leaves the number to us).
    fn error(&mut self, reply: Reply) -> Event {
        self.errors += 1;
        if self.errors >= self.cfg.max_errors {
            self.state = State::Closed;
            return Event::Close(r(
                421,
                "4.7.0",
                &format!("{} Error: too many errors", self.cfg.hostname),
            ));
        }
        Event::Reply(reply)
    }

    /// Processes input from the start of `buf`; returns how many bytes were used and what to do.
    pub fn input(&mut self, buf: &[u8]) -> (usize, Event) {
        match &mut self.state {
            // Closed: whatever follows is dropped, never buffered (the driver closes).
            State::Closed => (buf.len(), Event::NeedInput),
            State::Checking(..) | State::Delivering | State::Authenticating => {
                (0, Event::NeedInput)
            }
            State::Data(decoder) => match decoder.feed(buf) {
                DataProgress::More => (buf.len(), Event::NeedInput),
                DataProgress::Done { consumed } => (consumed, self.data_done()),
            },
            State::Bdat { remaining, last } => {
                let take = (*remaining).min(buf.len() as u64) as usize;
                *remaining -= take as u64;
                let (done, last) = (*remaining == 0, *last);
                if self.bdat_failed.is_none() {
                    let cfg = &self.cfg;
                    let decoder = self.bdat.get_or_insert_with(|| {
                        BdatDecoder::new(
                            cfg.bare_line_ending,
                            cfg.max_message_size,
                            cfg.max_line_length,
                            Body::new(cfg.in_flight.clone()),
                        )
                    });
                    if decoder.size() + take > self.cfg.max_message_size {
                        self.bdat_failed =
                            Some(r(552, "5.3.4", "Message size exceeds fixed limit"));
                        self.bdat = None;
                    } else {
                        decoder.feed(&buf[..take]);
                    }
                }
                if !done {
                    return (take, Event::NeedInput);
                }
                (take, self.bdat_chunk_done(last))
            }
            State::SkipLine => match buf.iter().position(|&b| b == b'\n') {
                Some(i) => {
                    self.state = if self.helo.is_some() {
                        State::Ready
                    } else {
                        State::Fresh
                    };
                    (i + 1, self.error(r(500, "5.5.2", "Error: line too long")))
                }
                None => (buf.len(), Event::NeedInput),
            },
            State::Fresh
            | State::Ready
            | State::Transaction
            | State::AuthPlain
            | State::AuthLoginUser
            | State::AuthLoginPass(_) => self.line(buf),
        }
    }

    /// A command line, or a line of a SASL exchange; lines may end in CRLF or a bare LF.
    fn line(&mut self, buf: &[u8]) -> (usize, Event) {
        let Some(i) = buf.iter().position(|&b| b == b'\n') else {
            if buf.len() > MAX_COMMAND_LINE {
                self.state = State::SkipLine;
                return (buf.len(), Event::NeedInput);
            }
            return (0, Event::NeedInput);
        };
        let line = &buf[..i];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let sasl = matches!(
            self.state,
            State::AuthPlain | State::AuthLoginUser | State::AuthLoginPass(_)
        );
        let event = if line.len() > MAX_COMMAND_LINE {
            if sasl {
                self.state = State::Ready;
            }
            self.error(r(500, "5.5.2", "Error: line too long"))
        } else if sasl {
            self.sasl_line(&String::from_utf8_lossy(line))
        } else {
            self.command(line)
        };
        (i + 1, event)
    }

    fn command(&mut self, line: &[u8]) -> Event {
        let cmd = match command::parse(line) {
            Ok(c) => c,
            Err(CommandError::Unknown) => {
                return self.error(r(500, "5.5.2", "Error: command not recognized"));
            }
            Err(CommandError::Syntax(s)) => {
                return self.error(r(501, "5.5.4", &format!("Syntax error: {s}")));
            }
            Err(CommandError::Parameter(s)) => return self.error(r(555, "5.5.4", &s)),
        };
        match cmd {
            Command::Ehlo(name) => self.hello(name, true),
            Command::Helo(name) => self.hello(name, false),
            Command::Mail { from, params } => self.mail(from, params),
            Command::Rcpt { to, params } => self.rcpt(to, params),
            Command::Data => self.data(),
            Command::Bdat { size, last } => self.bdat(size, last),
            Command::Rset => {
                self.reset();
                Event::Reply(r(250, "2.0.0", "Ok"))
            }
            Command::Noop => Event::Reply(r(250, "2.0.0", "Ok")),
            Command::Quit => {
                self.state = State::Closed;
                Event::Close(r(221, "2.0.0", "Bye"))
            }
            Command::Help => Event::Reply(r(214, "2.0.0", "See RFC 5321; Kurier implements ESMTP")),
            Command::Vrfy(_) => Event::Reply(r(
                252,
                "2.5.2",
                "Cannot VRFY user, but will accept message and attempt delivery",
            )),
            Command::Expn(_) => self.error(r(502, "5.5.1", "EXPN is not available")),
            Command::StartTls => self.starttls(),
            Command::Auth { mechanism, initial } if self.cfg.submission => {
                self.auth(&mechanism, initial)
            }
            Command::Auth { .. } => self.error(r(
                502,
                "5.5.1",
                "AUTH is not available on this port; use submission (465/587)",
            )),
        }
    }

    fn hello(&mut self, name: String, extended: bool) -> Event {
        self.reset();
        self.state = State::Ready;
        self.helo = Some((name.clone(), extended));
        if !extended {
            return Event::Reply(Reply::plain(
                250,
                format!("{} Hello {name}", self.cfg.hostname),
            ));
        }
        let mut lines = vec![
            format!("{} Hello {name}", self.cfg.hostname),
            "PIPELINING".into(),
            format!("SIZE {}", self.cfg.max_message_size),
            "8BITMIME".into(),
            "SMTPUTF8".into(),
            "ENHANCEDSTATUSCODES".into(),
            "CHUNKING".into(),
            "DSN".into(),
        ];
        if self.tls.is_some() {
            // RFC 8689 §4.1: offered only over TLS.
            lines.push("REQUIRETLS".into());
            if self.cfg.submission {
                // TR-03108 MUA-2: authentication only inside TLS.
                lines.push("AUTH PLAIN LOGIN".into());
            }
        } else if self.cfg.starttls {
            lines.push("STARTTLS".into());
        }
        Event::Reply(Reply::multiline(250, lines))
    }

    fn mail(&mut self, from: String, params: MailParams) -> Event {
        match self.state {
            State::Fresh => return self.error(r(503, "5.5.1", "Error: send HELO/EHLO first")),
            State::Transaction => return self.error(r(503, "5.5.1", "Error: nested MAIL command")),
            _ => {}
        }
        let esmtp = self.helo.as_ref().is_some_and(|(_, e)| *e);
        if !esmtp
            && (params.size.is_some() || params.body_8bit || params.smtputf8 || params.require_tls)
        {
            return self.error(r(555, "5.5.4", "MAIL parameters need EHLO"));
        }
        if self.cfg.submission {
            let Some((account, senders)) = &self.account else {
                return self.error(r(530, "5.7.0", "Authentication required"));
            };
            if !senders.iter().any(|s| s.eq_ignore_ascii_case(&from)) {
                return self.error(r(
                    553,
                    "5.7.1",
                    &format!("<{from}>: Sender address rejected: not owned by user {account}"),
                ));
            }
        }
        if params.require_tls && self.tls.is_none() {
            return self.error(r(530, "5.7.10", "REQUIRETLS needs a TLS session"));
        }
        if params
            .size
            .is_some_and(|s| s > self.cfg.max_message_size as u64)
        {
            return Event::Reply(r(552, "5.3.4", "Message size exceeds fixed limit"));
        }
        self.from = Some((from, params));
        self.state = State::Transaction;
        Event::Reply(r(250, "2.1.0", "Ok"))
    }

    fn rcpt(&mut self, to: String, params: RcptParams) -> Event {
        let Some((_, mail)) = &self.from else {
            return self.error(r(503, "5.5.1", "Error: need MAIL command"));
        };
        if !mail.smtputf8 && !to.is_ascii() {
            return self.error(r(
                553,
                "5.6.7",
                "Non-ASCII address needs SMTPUTF8 (RFC 6531)",
            ));
        }
        if self.recipients.len() + self.remote.len() >= self.cfg.max_recipients {
            return Event::Reply(r(452, "4.5.3", "Error: too many recipients"));
        }
        let to = if to == "postmaster" {
            self.cfg.postmaster.clone()
        } else {
            to
        };
        self.state = State::Checking(to.clone(), params);
        Event::CheckRecipient(to)
    }

    /// The driver's answer to `CheckRecipient`.
    pub fn recipient_verdict(&mut self, verdict: Verdict) -> Event {
        let State::Checking(to, params) = std::mem::replace(&mut self.state, State::Transaction)
        else {
            return Event::NeedInput;
        };
        match verdict {
            Verdict::Accept(accounts) => {
                for a in accounts {
                    if !self.accounts.contains(&a) {
                        self.accounts.push(a);
                    }
                }
                self.recipients.push((to, params));
                Event::Reply(r(250, "2.1.5", "Ok"))
            }
            Verdict::Unknown => self.error(r(
                550,
                "5.1.1",
                &format!("<{to}>: Recipient address rejected: User unknown"),
            )),
            Verdict::NotHosted if self.account.is_some() => {
                // Submission: the authenticated user may send anywhere (via the queue).
                self.remote.push((to, params));
                Event::Reply(r(250, "2.1.5", "Ok"))
            }
            Verdict::NotHosted => {
                self.error(r(554, "5.7.1", &format!("<{to}>: Relay access denied")))
            }
            Verdict::OverQuota => Event::Reply(r(
                452,
                "4.2.2",
                &format!("<{to}>: Mailbox full, try again later"),
            )),
            Verdict::TempFail => {
                Event::Reply(r(451, "4.3.0", "Temporary lookup failure, try again later"))
            }
            Verdict::Refused(why) => self.error(r(554, "5.7.1", &format!("<{to}>: {why}"))),
            // Postfix's words; an error, so a harvester is soon disconnected.
            Verdict::RateLimited => {
                let ip = self.peer.ip.to_canonical();
                self.error(r(
                    450,
                    "4.7.1",
                    &format!("Error: too many recipients from [{ip}], try again later"),
                ))
            }
        }
    }

    /// The reverse path of the transaction in progress (`""` for the null sender).
    pub fn sender(&self) -> Option<&str> {
        self.from.as_ref().map(|(f, _)| f.as_str())
    }

    fn data(&mut self) -> Event {
        if self.from.is_none() {
            return self.error(r(503, "5.5.1", "Error: need MAIL command"));
        }
        if self.recipients.is_empty() && self.remote.is_empty() {
            return self.error(r(554, "5.5.1", "Error: no valid recipients"));
        }
        let c = &self.cfg;
        self.state = State::Data(Box::new(DataDecoder::with_body(
            c.bare_line_ending,
            c.max_message_size,
            c.max_line_length,
            Body::new(c.in_flight.clone()),
        )));
        Event::Reply(Reply::plain(354, "End data with <CR><LF>.<CR><LF>"))
    }

    fn data_done(&mut self) -> Event {
        let State::Data(decoder) = std::mem::replace(&mut self.state, State::Transaction) else {
            return Event::NeedInput;
        };
        match decoder.finish() {
            Ok(body) => self.deliver(body),
            Err(problem) => self.refuse_body(problem),
        }
    }

    /// The reply for a body that ended but is not taken; the transaction is over.
    fn refuse_body(&mut self, problem: BodyProblem) -> Event {
        self.reset();
        Event::Reply(match problem {
            BodyProblem::BareLineEnding => r(
                550,
                "5.6.0",
                "Message refused: bare CR or LF (line endings must be CRLF; SMTP smuggling defence)",
            ),
            BodyProblem::LineTooLong => r(
                550,
                "5.6.0",
                &format!(
                    "Message refused: a line is longer than {} bytes",
                    self.cfg.max_line_length
                ),
            ),
            BodyProblem::TooBig => r(552, "5.3.4", "Message size exceeds fixed limit"),
            BodyProblem::Spool(SpoolProblem::Busy) => r(
                451,
                "4.3.1",
                "Insufficient system resources for the message now, try again later",
            ),
            BodyProblem::Spool(SpoolProblem::Io(e)) => {
                tracing::error!(error = %e, "SMTP: cannot spool a message body");
                r(
                    451,
                    "4.3.0",
                    "Error: cannot keep the message now, try again later",
                )
            }
        })
    }

    fn bdat(&mut self, size: u64, last: bool) -> Event {
        // The chunk follows whatever we answer; read it even when the command fails (RFC 3030 §4.2).
        let problem = if self.from.is_none() {
            Some(r(503, "5.5.1", "Error: need MAIL command"))
        } else if self.recipients.is_empty() && self.remote.is_empty() {
            Some(r(554, "5.5.1", "Error: no valid recipients"))
        } else {
            None
        };
        if let Some(p) = problem {
            self.errors += 1;
            self.bdat_failed.get_or_insert(p);
        }
        self.state = State::Bdat {
            remaining: size,
            last,
        };
        if size == 0 {
            return self.bdat_chunk_done(last);
        }
        Event::NeedInput
    }

    fn bdat_chunk_done(&mut self, last: bool) -> Event {
        self.state = State::Transaction;
        if let Some(reply) = self.bdat_failed.clone() {
            if last || reply.code == 503 || reply.code == 554 {
                self.reset();
            }
            return if self.errors >= self.cfg.max_errors {
                self.error(reply)
            } else {
                Event::Reply(reply)
            };
        }
        if !last {
            let received = self.bdat.as_ref().map_or(0, BdatDecoder::size);
            return Event::Reply(r(250, "2.0.0", &format!("{received} octets received")));
        }
        let finished = match self.bdat.take() {
            Some(decoder) => decoder.finish(),
            // BDAT 0 LAST as the only chunk: an empty message.
            None => Ok(Body::new(self.cfg.in_flight.clone())),
        };
        match finished {
            Ok(body) => self.deliver(body),
            Err(problem) => self.refuse_body(problem),
        }
    }

    fn deliver(&mut self, body: Body) -> Event {
        let Some((from, params)) = self.from.clone() else {
            return Event::NeedInput;
        };
        // The whole message is in memory while it is stored: budgeted with the Received
        // header and what submission may add.
        let (mut body, reservation) = match body.into_bytes(8192) {
            Ok(b) => b,
            Err(p) => return self.refuse_body(BodyProblem::Spool(p)),
        };
        self.counter += 1;
        let id = format!(
            "{:x}{:04x}",
            crate::received::unique_stamp_at(self.cfg.clock),
            self.counter & 0xffff
        );
        if let Some((account, senders)) = &self.account {
            match crate::headers::complete_submission(
                &body,
                senders,
                &id,
                &self.cfg.hostname,
                self.cfg.clock.unix(),
            ) {
                Ok(completed) => body = completed,
                Err(problem) => {
                    let reply = r(553, "5.7.1", &format!("{problem} (user {account})"));
                    self.reset();
                    return Event::Reply(reply);
                }
            }
        }
        let all: Vec<&str> = self
            .recipients
            .iter()
            .chain(&self.remote)
            .map(|(a, _)| a.as_str())
            .collect();
        let header = crate::received::Received {
            hostname: &self.cfg.hostname,
            helo: self.helo.as_ref().map(|(h, _)| h.as_str()).unwrap_or(""),
            ip: self.cfg.received_client_ip.then_some(self.peer.ip),
            protocol: &self.protocol(&params),
            id: &id,
            tls: self.tls.as_ref(),
            single_recipient: (all.len() == 1).then(|| all[0]),
            at: self.cfg.clock.unix(),
        }
        .header();
        // In place: no second copy of a large body.
        let mut full = body;
        full.splice(0..0, header.into_bytes());
        if full.len() > self.cfg.max_message_size + 4096 {
            self.reset();
            return Event::Reply(r(552, "5.3.4", "Message size exceeds fixed limit"));
        }
        self.state = State::Delivering;
        self.storing = Some(reservation);
        Event::Deliver(Box::new(Message {
            id,
            from,
            recipients: self.recipients.clone(),
            accounts: self.accounts.clone(),
            remote: self.remote.clone(),
            connection: self.connection(),
            params,
            body: full,
        }))
    }

    /// RFC 3848 / RFC 6531 §3.7.4 protocol name for the Received header.
    fn protocol(&self, params: &MailParams) -> String {
        let esmtp = self.helo.as_ref().is_some_and(|(_, e)| *e);
        let base = match (params.smtputf8, esmtp) {
            (true, _) => "UTF8SMTP",
            (false, true) => "ESMTP",
            (false, false) => "SMTP",
        };
        // RFC 3848: S for TLS, A for an authenticated client.
        let tls = if self.tls.is_some() && base != "SMTP" {
            "S"
        } else {
            ""
        };
        let auth = if self.account.is_some() && base != "SMTP" {
            "A"
        } else {
            ""
        };
        format!("{base}{tls}{auth}")
    }

    /// The driver's answer to `Deliver`. 250 only for `Stored` (durable before 250).
    pub fn delivered(&mut self, outcome: Delivery, id: &str) -> Event {
        if !matches!(self.state, State::Delivering) {
            return Event::NeedInput;
        }
        self.storing = None;
        self.state = State::Transaction;
        self.reset();
        Event::Reply(match outcome {
            Delivery::Stored => r(250, "2.0.0", &format!("Ok: queued as {id}")),
            Delivery::RateLimited => r(450, "4.7.1", "Sending rate limit reached, try again later"),
            Delivery::OverQuota(who) => r(552, "5.2.2", &format!("<{who}>: Mailbox full")),
            Delivery::Refused(why) => r(550, "5.7.1", &why),
            Delivery::Rejected(why) => r(554, "5.7.1", &why),
            Delivery::Deferred(why) => r(451, "4.7.0", &why),
            Delivery::TempFail => r(
                451,
                "4.3.0",
                "Error: queue file write error, try again later",
            ),
        })
    }

    fn starttls(&mut self) -> Event {
        if self.tls.is_some() {
            return self.error(r(503, "5.5.1", "Error: TLS already active"));
        }
        if !self.cfg.starttls {
            return self.error(r(502, "5.5.1", "Error: command not implemented"));
        }
        if matches!(self.state, State::Transaction) {
            return self.error(r(503, "5.5.1", "Error: STARTTLS inside a mail transaction"));
        }
        Event::StartTls(r(220, "2.0.0", "Ready to start TLS"))
    }

    fn auth(&mut self, mechanism: &str, initial: Option<String>) -> Event {
        if self.tls.is_none() {
            // TR-03108 MUA-2: never authentication in the clear.
            return self.error(r(530, "5.7.0", "Must issue a STARTTLS command first"));
        }
        if self.helo.is_none() {
            return self.error(r(503, "5.5.1", "Error: send EHLO first"));
        }
        if self.account.is_some() {
            return self.error(r(503, "5.5.1", "Error: already authenticated"));
        }
        if matches!(self.state, State::Transaction) {
            return self.error(r(503, "5.5.1", "Error: AUTH inside a mail transaction"));
        }
        match (mechanism, initial) {
            ("PLAIN", None) => {
                self.state = State::AuthPlain;
                Event::Reply(Reply::plain(334, ""))
            }
            ("PLAIN", Some(i)) => self.sasl_response(State::AuthPlain, &i),
            ("LOGIN", None) => {
                self.state = State::AuthLoginUser;
                Event::Reply(Reply::plain(334, "VXNlcm5hbWU6"))
            }
            ("LOGIN", Some(i)) => self.sasl_response(State::AuthLoginUser, &i),
            _ => self.error(r(504, "5.5.4", "Unrecognized authentication type")),
        }
    }

    /// A line of a SASL exchange (after a 334).
    fn sasl_line(&mut self, line: &str) -> Event {
        let state = std::mem::replace(&mut self.state, State::Ready);
        if line == "*" {
            return self.error(r(501, "5.0.0", "Authentication aborted"));
        }
        self.sasl_response(state, line)
    }

    fn sasl_response(&mut self, state: State, b64: &str) -> Event {
        // "=" is an empty initial response (RFC 4954 §4).
        let decoded = if b64 == "=" {
            Some(Vec::new())
        } else {
            kurier_access::base64_decode(b64)
        };
        let Some(bytes) = decoded else {
            self.state = State::Ready;
            return self.error(r(501, "5.5.2", "Cannot decode the response"));
        };
        match state {
            State::AuthPlain => match kurier_access::plain(&bytes) {
                Some((user, password)) => {
                    self.state = State::Authenticating;
                    Event::Authenticate { user, password }
                }
                None => {
                    self.state = State::Ready;
                    self.error(r(535, "5.7.8", "Authentication credentials invalid"))
                }
            },
            State::AuthLoginUser => {
                self.state = State::AuthLoginPass(String::from_utf8_lossy(&bytes).into_owned());
                Event::Reply(Reply::plain(334, "UGFzc3dvcmQ6"))
            }
            State::AuthLoginPass(user) => {
                self.state = State::Authenticating;
                Event::Authenticate {
                    user,
                    password: String::from_utf8_lossy(&bytes).into_owned(),
                }
            }
            _ => {
                self.state = State::Ready;
                Event::NeedInput
            }
        }
    }

    /// The driver's answer to `Authenticate`.
    pub fn auth_result(&mut self, outcome: AuthOutcome) -> Event {
        if !matches!(self.state, State::Authenticating) {
            return Event::NeedInput;
        }
        self.state = State::Ready;
        match outcome {
            AuthOutcome::Ok { account, senders } => {
                self.account = Some((account, senders));
                Event::Reply(r(235, "2.7.0", "Authentication successful"))
            }
            AuthOutcome::Invalid => {
                self.error(r(535, "5.7.8", "Authentication credentials invalid"))
            }
            AuthOutcome::Throttled => Event::Reply(r(
                454,
                "4.7.0",
                "Temporary authentication failure, try again later",
            )),
        }
    }

    /// The handshake is done: forget everything said before (RFC 3207 §4.2).
    pub fn tls_started(&mut self, info: TlsInfo) {
        self.account = None;
        self.tls = Some(info);
        self.helo = None;
        self.from = None;
        self.recipients.clear();
        self.accounts.clear();
        self.state = State::Fresh;
    }
}
