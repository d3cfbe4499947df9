//! One filter's conversation about one message, without I/O: the MTA side of the milter
//! protocol as a state machine. Kurier holds the whole message when it talks to filters (at the
//! end of DATA, after its own checks), so the conversation is one pass: negotiate, then
//! connect, HELO, MAIL, RCPT, DATA, the header fields, end of header, the body in chunks and
//! end of message — each step left out or not waited for as the filter asked in the
//! negotiation. A verdict at any step ends it; at end of message the filter's changes (header
//! fields, a new body, quarantine) are collected. The driver sends what `step` returns and
//! feeds each answer to `answer`.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::protocol::{
    CHUNK, Command, Negotiated, OFFERED_ACTIONS, OFFERED_STEPS, Response, SMFIF_ADDHDRS,
    SMFIF_CHGBODY, SMFIF_CHGHDRS, SMFIF_QUARANTINE, SMFIP_HDR_LEADSPC, SMFIP_NOBODY,
    SMFIP_NOCONNECT, SMFIP_NODATA, SMFIP_NOEOH, SMFIP_NOHDRS, SMFIP_NOHELO, SMFIP_NOMAIL,
    SMFIP_NORCPT, SMFIP_NR_BODY, SMFIP_NR_CONN, SMFIP_NR_DATA, SMFIP_NR_EOH, SMFIP_NR_HDR,
    SMFIP_NR_HELO, SMFIP_NR_MAIL, SMFIP_NR_RCPT,
};

/// The most header changes one filter may make.
pub const MAX_CHANGES: usize = 1000;

/// What the filter is told about the message.
#[derive(Debug, Clone)]
pub struct Envelope<'a> {
    pub client_ip: IpAddr,
    /// The client's host name, or `[address]`.
    pub client_name: &'a str,
    pub helo: &'a str,
    pub from: &'a str,
    pub recipients: Vec<&'a str>,
    pub queue_id: &'a str,
    /// Our host name (macro `j`).
    pub hostname: &'a str,
    /// The authenticated account (macro `{auth_authen}`).
    pub auth_user: Option<&'a str>,
    pub tls: Option<(&'a str, &'a str)>,
}

/// The filter's verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Continue (or accept): deliver, with the changes.
    Deliver,
    /// A 5xx reply: the code and text ("5.7.1 …").
    Reject { code: u16, text: String },
    /// A 4xx reply.
    TempFail { code: u16, text: String },
    /// Acknowledge and throw away.
    Discard,
}

/// One header change, in the order the filter sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HeaderChange {
    Add {
        name: String,
        value: String,
    },
    Insert {
        index: u32,
        name: String,
        value: String,
    },
    /// An empty value deletes the field.
    Change {
        index: u32,
        name: String,
        value: String,
    },
}

/// What the filter changed at end of message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Changes {
    pub headers: Vec<HeaderChange>,
    /// The replacement body, if the filter sent one.
    pub body: Option<Vec<u8>>,
    pub quarantine: Option<String>,
    /// The filter's header values start with their leading space (SMFIP_HDR_LEADSPC).
    pub leading_space: bool,
}

/// What the driver does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Send this packet; then read one answer and give it to `answer` if `wait`.
    Send { packet: Vec<u8>, wait: bool },
    /// The conversation is over (send Quit and close).
    Done(Verdict),
}

/// One step still to come.
#[derive(Debug)]
struct Planned {
    command: Command,
    /// The filter answers it.
    wait: bool,
}

#[derive(Debug, PartialEq, Eq)]
enum Stage {
    Negotiating,
    Steps,
    Finished,
}

/// One conversation (see the module comment).
pub struct Conversation {
    plan: VecDeque<Planned>,
    /// The command whose answer is awaited.
    awaiting: Option<u8>,
    stage: Stage,
    verdict: Option<Verdict>,
    pub changes: Changes,
    negotiated: Option<Negotiated>,
    /// What the plan is built from once the filter's wishes are known.
    message: Option<Pending>,
}

/// The message, kept until negotiation says which steps to send.
struct Pending {
    envelope: OwnedEnvelope,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Conversation {
    pub fn new(envelope: &Envelope<'_>, message: &[u8]) -> Conversation {
        let (headers, body) = split(message);
        let env = OwnedEnvelope::from(envelope);
        let body = body.to_vec();
        let mut plan = VecDeque::new();
        plan.push_back(Planned {
            command: Command::Negotiate {
                actions: OFFERED_ACTIONS,
                steps: OFFERED_STEPS,
            },
            wait: true,
        });
        Conversation {
            plan,
            awaiting: None,
            stage: Stage::Negotiating,
            verdict: None,
            changes: Changes::default(),
            negotiated: None,
            message: Some(Pending {
                envelope: env,
                headers,
                body,
            }),
        }
    }

    /// What to do next.
    pub fn step(&mut self) -> Next {
        if let Some(v) = &self.verdict {
            self.stage = Stage::Finished;
            return Next::Done(v.clone());
        }
        match self.plan.pop_front() {
            Some(p) => {
                if p.wait {
                    self.awaiting = Some(p.command.code());
                }
                Next::Send {
                    packet: p.command.encode(),
                    wait: p.wait,
                }
            }
            None => {
                self.stage = Stage::Finished;
                Next::Done(Verdict::Deliver)
            }
        }
    }

    /// Whether the last `Next::Send` still waits for an answer (after `Progress`).
    pub fn waiting(&self) -> bool {
        self.awaiting.is_some()
    }

    /// Takes the filter's answer to the awaited command; `Err` for an answer out of place.
    pub fn answer(&mut self, r: Response) -> Result<(), String> {
        let Some(cmd) = self.awaiting else {
            return Err(format!("answered {r:?} to nothing"));
        };
        if self.stage == Stage::Negotiating {
            let n = Negotiated::from_response(&r)?;
            self.negotiated = Some(n);
            self.changes.leading_space = n.skips(SMFIP_HDR_LEADSPC);
            if let Some(p) = self.message.take() {
                self.plan = steps(&p.envelope, &p.headers, &p.body, &n);
            }
            self.stage = Stage::Steps;
            self.awaiting = None;
            return Ok(());
        }
        let allowed = |flag: u32| self.negotiated.is_some_and(|n| n.actions & flag != 0);
        let at_end = cmd == b'E';
        match r {
            Response::Progress => return Ok(()),
            Response::Continue => {}
            Response::Accept => self.verdict = Some(Verdict::Deliver),
            Response::Reject => {
                self.verdict = Some(Verdict::Reject {
                    code: 550,
                    text: "5.7.1 Command rejected".into(),
                })
            }
            Response::TempFail => {
                self.verdict = Some(Verdict::TempFail {
                    code: 451,
                    text: "4.7.1 Service unavailable - try again later".into(),
                })
            }
            Response::ReplyCode { code, text } => {
                self.verdict = Some(if code >= 500 {
                    Verdict::Reject { code, text }
                } else {
                    Verdict::TempFail { code, text }
                })
            }
            Response::Discard => self.verdict = Some(Verdict::Discard),
            Response::Skip if cmd == b'B' => {
                self.plan.retain(|p| p.command.code() != b'B');
            }
            Response::AddHeader { name, value } if at_end && allowed(SMFIF_ADDHDRS) => {
                self.change(HeaderChange::Add { name, value })?;
                return Ok(());
            }
            Response::InsertHeader { index, name, value } if at_end && allowed(SMFIF_ADDHDRS) => {
                self.change(HeaderChange::Insert { index, name, value })?;
                return Ok(());
            }
            Response::ChangeHeader { index, name, value } if at_end && allowed(SMFIF_CHGHDRS) => {
                self.change(HeaderChange::Change { index, name, value })?;
                return Ok(());
            }
            Response::ReplaceBody(chunk) if at_end && allowed(SMFIF_CHGBODY) => {
                self.changes.body.get_or_insert_with(Vec::new).extend(chunk);
                return Ok(());
            }
            Response::Quarantine(reason) if at_end && allowed(SMFIF_QUARANTINE) => {
                self.changes.quarantine = Some(reason);
                return Ok(());
            }
            Response::Unoffered(c) if at_end => {
                tracing::info!(response = %(c as char), "a milter asked for a change Kurier does not offer; ignored");
                return Ok(());
            }
            other => {
                return Err(format!(
                    "answered {other:?} to {:?}, which it may not",
                    cmd as char
                ));
            }
        }
        self.awaiting = None;
        Ok(())
    }

    fn change(&mut self, c: HeaderChange) -> Result<(), String> {
        if self.changes.headers.len() >= MAX_CHANGES {
            return Err(format!("more than {MAX_CHANGES} header changes"));
        }
        self.changes.headers.push(c);
        Ok(())
    }
}

/// The envelope, owned for the plan built after negotiation.
struct OwnedEnvelope {
    client_ip: IpAddr,
    client_name: String,
    helo: String,
    from: String,
    recipients: Vec<String>,
    queue_id: String,
    hostname: String,
    auth_user: Option<String>,
    tls: Option<(String, String)>,
}

impl From<&Envelope<'_>> for OwnedEnvelope {
    fn from(e: &Envelope<'_>) -> Self {
        OwnedEnvelope {
            client_ip: e.client_ip.to_canonical(),
            client_name: e.client_name.to_string(),
            helo: e.helo.to_string(),
            from: e.from.to_string(),
            recipients: e.recipients.iter().map(|r| r.to_string()).collect(),
            queue_id: e.queue_id.to_string(),
            hostname: e.hostname.to_string(),
            auth_user: e.auth_user.map(str::to_string),
            tls: e.tls.map(|(v, c)| (v.to_string(), c.to_string())),
        }
    }
}

/// The header fields (name, value after the colon, folds as LF) and the body of `message`.
fn split(message: &[u8]) -> (Vec<(String, String)>, &[u8]) {
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&message[..end]);
    let mut fields: Vec<(String, String)> = Vec::new();
    for line in head.split("\r\n") {
        if line.is_empty() {
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.1.push('\n');
                last.1.push_str(line);
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            fields.push((name.to_string(), value.to_string()));
        }
    }
    (fields, &message[end.min(message.len())..])
}

/// The steps after negotiation, as the filter asked.
fn steps(
    e: &OwnedEnvelope,
    headers: &[(String, String)],
    body: &[u8],
    n: &Negotiated,
) -> VecDeque<Planned> {
    let mut plan = VecDeque::new();
    let add = |plan: &mut VecDeque<Planned>, skip: u32, no_reply: u32, command: Command| {
        if !n.skips(skip) {
            plan.push_back(Planned {
                command,
                wait: !n.skips(no_reply),
            });
        }
    };
    let macros = |code: u8, pairs: Vec<(&str, String)>| Planned {
        command: Command::Macros {
            for_command: code,
            pairs: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        },
        wait: false,
    };
    plan.push_back(macros(
        b'C',
        vec![
            ("j", e.hostname.clone()),
            ("{daemon_name}", "kurier".into()),
            ("v", "Kurier".into()),
            ("_", format!("{} [{}]", e.client_name, e.client_ip)),
            ("{client_addr}", e.client_ip.to_string()),
        ],
    ));
    add(
        &mut plan,
        SMFIP_NOCONNECT,
        SMFIP_NR_CONN,
        Command::Connect {
            hostname: e.client_name.clone(),
            ip: e.client_ip,
            port: 0,
        },
    );
    let mut tls = Vec::new();
    if let Some((version, cipher)) = &e.tls {
        tls.push(("{tls_version}", version.clone()));
        tls.push(("{cipher}", cipher.clone()));
    }
    plan.push_back(macros(b'H', tls));
    add(
        &mut plan,
        SMFIP_NOHELO,
        SMFIP_NR_HELO,
        Command::Helo(e.helo.clone()),
    );
    let mut mail = vec![("{mail_addr}", e.from.clone())];
    if let Some(u) = &e.auth_user {
        mail.push(("{auth_authen}", u.clone()));
        mail.push(("{auth_type}", "PLAIN".into()));
    }
    plan.push_back(macros(b'M', mail));
    add(
        &mut plan,
        SMFIP_NOMAIL,
        SMFIP_NR_MAIL,
        Command::Mail(vec![format!("<{}>", e.from)]),
    );
    for r in &e.recipients {
        plan.push_back(macros(b'R', vec![("{rcpt_addr}", r.clone())]));
        add(
            &mut plan,
            SMFIP_NORCPT,
            SMFIP_NR_RCPT,
            Command::Rcpt(vec![format!("<{r}>")]),
        );
    }
    plan.push_back(macros(b'T', vec![("i", e.queue_id.clone())]));
    if n.version >= 4 {
        add(&mut plan, SMFIP_NODATA, SMFIP_NR_DATA, Command::Data);
    }
    for (name, value) in headers {
        // Without SMFIP_HDR_LEADSPC the filter gets the value without the space after the colon.
        let value = if n.skips(SMFIP_HDR_LEADSPC) {
            value.clone()
        } else {
            value.strip_prefix(' ').unwrap_or(value).to_string()
        };
        add(
            &mut plan,
            SMFIP_NOHDRS,
            SMFIP_NR_HDR,
            Command::Header {
                name: name.clone(),
                value,
            },
        );
    }
    add(&mut plan, SMFIP_NOEOH, SMFIP_NR_EOH, Command::EndOfHeader);
    if !n.skips(SMFIP_NOBODY) {
        for chunk in body.chunks(CHUNK) {
            add(&mut plan, 0, SMFIP_NR_BODY, Command::Body(chunk.to_vec()));
        }
    }
    plan.push_back(macros(b'E', vec![("i", e.queue_id.clone())]));
    plan.push_back(Planned {
        command: Command::EndOfMessage,
        wait: true,
    });
    plan
}

/// `message` with the filter's changes; `None` if it made none.
pub fn apply(message: &[u8], c: &Changes) -> Option<Vec<u8>> {
    if c.headers.is_empty() && c.body.is_none() {
        return None;
    }
    let end = message
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(message.len(), |p| p + 2);
    let (head, rest) = message.split_at(end);
    // Whole fields, each with its CRLF and continuation lines.
    let mut fields: Vec<Vec<u8>> = Vec::new();
    for line in head.split_inclusive(|&b| b == b'\n') {
        match fields.last_mut() {
            Some(last) if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') => {
                last.extend_from_slice(line)
            }
            _ => fields.push(line.to_vec()),
        }
    }
    let name_of = |f: &[u8]| -> String {
        let colon = f.iter().position(|b| *b == b':').unwrap_or(0);
        String::from_utf8_lossy(&f[..colon])
            .trim()
            .to_ascii_lowercase()
    };
    let field = |name: &str, value: &str| -> Vec<u8> {
        let sep = if c.leading_space { ":" } else { ": " };
        format!("{name}{sep}{}\r\n", folded(value)).into_bytes()
    };
    for h in &c.headers {
        match h {
            HeaderChange::Add { name, value } => fields.push(field(name, value)),
            HeaderChange::Insert { index, name, value } => {
                let at = (*index as usize).min(fields.len());
                fields.insert(at, field(name, value));
            }
            HeaderChange::Change { index, name, value } => {
                let lower = name.to_ascii_lowercase();
                let found = fields
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| name_of(f) == lower)
                    .nth((*index as usize).saturating_sub(1))
                    .map(|(i, _)| i);
                match (found, value.is_empty()) {
                    (Some(i), true) => {
                        fields.remove(i);
                    }
                    (Some(i), false) => fields[i] = field(name, value),
                    // libmilter: changing a field that is not there adds it.
                    (None, false) => fields.push(field(name, value)),
                    (None, true) => {}
                }
            }
        }
    }
    let mut out: Vec<u8> = fields.concat();
    match &c.body {
        Some(b) => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(&crlf(b));
        }
        None => out.extend_from_slice(rest),
    }
    Some(out)
}

/// A header value as the filter wrote it (LF or CRLF folds) with CRLF folds, each continuation
/// starting with white space, no other CR or LF.
fn folded(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, line) in value.split('\n').enumerate() {
        let line = line.trim_end_matches('\r').replace('\r', "");
        if i > 0 {
            if line.trim().is_empty() {
                continue;
            }
            out.push_str("\r\n");
            if !line.starts_with([' ', '\t']) {
                out.push('\t');
            }
        }
        out.push_str(&line);
    }
    out
}

/// A body with every line ending CRLF (filters may send LF).
fn crlf(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len() + b.len() / 40);
    let mut prev = 0u8;
    for &c in b {
        if c == b'\n' && prev != b'\r' {
            out.push(b'\r');
        }
        out.push(c);
        prev = c;
    }
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;
    use crate::protocol::parse_response;

    const MESSAGE: &[u8] = b"Received: from a\r\n\tby b\r\nSubject: hi\r\nX-Old: 1\r\n\r\nbody\r\n";

    fn env() -> Envelope<'static> {
        Envelope {
            client_ip: "192.0.2.1".parse().unwrap(),
            client_name: "[192.0.2.1]",
            helo: "client.test",
            from: "a@sender.test",
            recipients: vec!["x@kurier.test", "y@kurier.test"],
            queue_id: "Q1",
            hostname: "mx.kurier.test",
            auth_user: None,
            tls: None,
        }
    }

    /// Runs a conversation in which the filter answers `steps` to negotiation and `answer`
    /// to every waited-for step; returns the command codes sent and the verdict.
    fn run(steps: u32, mut answer: impl FnMut(u8) -> Vec<Response>) -> (String, Verdict, Changes) {
        let mut c = Conversation::new(&env(), MESSAGE);
        let mut sent = String::new();
        loop {
            match c.step() {
                Next::Send { packet, wait } => {
                    let code = packet[4];
                    sent.push(code as char);
                    if !wait {
                        continue;
                    }
                    let replies = if code == b'O' {
                        vec![Response::Negotiate {
                            version: 6,
                            actions: OFFERED_ACTIONS,
                            steps,
                        }]
                    } else {
                        answer(code)
                    };
                    for r in replies {
                        c.answer(r).unwrap();
                    }
                    assert!(!c.waiting());
                }
                Next::Done(v) => return (sent, v, c.changes),
            }
        }
    }

    #[test]
    fn every_step_in_order_and_the_changes_at_the_end() {
        let (sent, v, ch) = run(0, |code| match code {
            b'E' => vec![
                parse_response(b"hX-Virus-Scanned\0ClamAV\0").unwrap(),
                Response::Progress,
                Response::Continue,
            ],
            _ => vec![Response::Continue],
        });
        // Macros (D) before connect, HELO, MAIL, each RCPT, DATA and end of message.
        assert_eq!(sent, "ODCDHDMDRDRDTLLLNBDE");
        assert_eq!(v, Verdict::Deliver);
        assert_eq!(ch.headers.len(), 1);
    }

    #[test]
    fn skipped_and_unanswered_steps_as_the_filter_asked() {
        let (sent, v, _) = run(
            SMFIP_NOCONNECT | SMFIP_NOHELO | SMFIP_NR_HDR | SMFIP_NOBODY,
            |_| vec![Response::Continue],
        );
        assert_eq!(sent, "ODDDMDRDRDTLLLNDE");
        assert_eq!(v, Verdict::Deliver);
    }

    #[test]
    fn a_verdict_ends_the_conversation() {
        let (sent, v, _) = run(0, |code| {
            if code == b'M' {
                vec![parse_response(b"y554 5.7.1 Go away\0").unwrap()]
            } else {
                vec![Response::Continue]
            }
        });
        assert_eq!(sent, "ODCDHDM");
        assert_eq!(
            v,
            Verdict::Reject {
                code: 554,
                text: "5.7.1 Go away".into()
            }
        );
        let (_, v, _) = run(0, |code| {
            if code == b'E' {
                vec![Response::TempFail]
            } else {
                vec![Response::Continue]
            }
        });
        assert!(matches!(v, Verdict::TempFail { code: 451, .. }));
        let (sent, v, _) = run(0, |code| {
            if code == b'H' {
                vec![Response::Accept]
            } else {
                vec![Response::Continue]
            }
        });
        assert_eq!((sent.as_str(), v), ("ODCDH", Verdict::Deliver));
    }

    #[test]
    fn out_of_place_answers_are_errors() {
        let mut c = Conversation::new(&env(), MESSAGE);
        assert!(matches!(c.step(), Next::Send { .. }));
        // A change before end of message, or a change we did not offer.
        assert!(
            c.answer(Response::Continue).is_err(),
            "not a negotiation answer"
        );
        let mut c = Conversation::new(&env(), MESSAGE);
        c.step();
        c.answer(Response::Negotiate {
            version: 6,
            actions: SMFIF_ADDHDRS,
            steps: 0,
        })
        .unwrap();
        loop {
            match c.step() {
                Next::Send { packet, wait: true } if packet[4] == b'C' => break,
                Next::Send { .. } => continue,
                Next::Done(_) => panic!(),
            }
        }
        assert!(
            c.answer(Response::AddHeader {
                name: "X".into(),
                value: "y".into()
            })
            .is_err()
        );
    }

    #[test]
    fn changes_apply_to_the_message() {
        let c = Changes {
            headers: vec![
                HeaderChange::Add {
                    name: "X-Virus-Scanned".into(),
                    value: "ClamAV using\n\tclamd".into(),
                },
                HeaderChange::Insert {
                    index: 0,
                    name: "X-First".into(),
                    value: "1".into(),
                },
                HeaderChange::Change {
                    index: 1,
                    name: "x-old".into(),
                    value: "".into(),
                },
                HeaderChange::Change {
                    index: 1,
                    name: "Subject".into(),
                    value: "[scanned] hi\r\nBcc: evil@x".into(),
                },
            ],
            body: Some(b"new\nbody\n".to_vec()),
            quarantine: None,
            leading_space: false,
        };
        let out = String::from_utf8(apply(MESSAGE, &c).unwrap()).unwrap();
        assert_eq!(
            out,
            "X-First: 1\r\nReceived: from a\r\n\tby b\r\nSubject: [scanned] hi\r\n\tBcc: evil@x\r\n\
             X-Virus-Scanned: ClamAV using\r\n\tclamd\r\n\r\nnew\r\nbody\r\n"
        );
        assert_eq!(apply(MESSAGE, &Changes::default()), None);
    }
}
