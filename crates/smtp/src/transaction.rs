//! One mail transaction of the outbound client as an I/O-free state machine (RFC 5321 §3.3):
//! RSET on a reused connection, MAIL and RCPT — pipelined with DATA when the server offers
//! PIPELINING (RFC 2920 §3.1) — then the message with DATA or, with CHUNKING, one
//! `BDAT … LAST` (RFC 3030). The driver (`client_driver.rs`) writes what a `Step` says, reads a
//! reply when asked and feeds it back; this module decides everything else, so every path is
//! unit-tested here without a socket.

use crate::client::{Extensions, ServerReply, TransactionResult};

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Write these command lines (each ends in CRLF).
    Send(String),
    /// Write the message: dot-stuffed after DATA's 354, or as one `BDAT <len> LAST` chunk.
    SendBody(BodyFraming),
    /// Read the next reply; `data` when it answers the message itself (the longer timeout,
    /// RFC 5321 §4.5.3.2.6).
    Read { data: bool },
    /// The transaction is over.
    Done(Finished),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// Dot-stuffed, ending in `.` (RFC 5321 §4.5.2).
    Data,
    /// `BDAT <len> LAST` and the raw body (RFC 3030 §2).
    BdatLast,
}

/// How a transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finished {
    /// MAIL was accepted: per recipient the reply, and the reply to the message if any
    /// recipient was accepted.
    Result(TransactionResult),
    /// The server refused a command that the whole transaction needs (RSET, MAIL FROM).
    Rejected {
        command: &'static str,
        reply: ServerReply,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Start,
    Rset,
    /// Waiting for the MAIL reply.
    Mail,
    /// Waiting for the reply to RCPT number `0`.
    Rcpt(usize),
    /// Pipelined DATA's reply, after the RCPT replies.
    PipelinedData,
    /// DATA sent on its own, waiting for 354.
    Data,
    /// An unwanted 354 (no recipient accepted, or MAIL refused) is being closed with `.`.
    Closing,
    /// The message went out; waiting for its reply.
    Message,
    Over,
}

/// One transaction (see the module comment).
#[derive(Debug)]
pub struct Transaction {
    state: State,
    rset_first: bool,
    mail: String,
    rcpts: Vec<(String, String)>,
    pipelining: bool,
    chunking: bool,
    mail_reply: Option<ServerReply>,
    rcpt_replies: Vec<ServerReply>,
    /// What to report once an unwanted 354 is closed.
    after_closing: Option<Finished>,
}

impl Transaction {
    /// `mail` and `rcpts` (address, RCPT command) are the command lines without CRLF;
    /// `rset_first` on a connection that carried a transaction before.
    pub fn new(
        mail: String,
        rcpts: Vec<(String, String)>,
        ext: &Extensions,
        rset_first: bool,
    ) -> Transaction {
        Transaction {
            state: State::Start,
            rset_first,
            mail,
            rcpts,
            pipelining: ext.pipelining,
            chunking: ext.chunking,
            mail_reply: None,
            rcpt_replies: Vec::new(),
            after_closing: None,
        }
    }

    /// The first step.
    pub fn start(&mut self) -> Step {
        if self.rset_first {
            self.state = State::Rset;
            return Step::Send("RSET\r\n".into());
        }
        self.send_envelope()
    }

    /// After a `Send` or `SendBody`: what comes next.
    pub fn sent(&mut self) -> Step {
        match self.state {
            State::Over => Step::Done(self.finish(None)),
            State::Message | State::Closing => Step::Read { data: true },
            _ => Step::Read { data: false },
        }
    }

    /// A reply arrived (the one the last `Read` asked for).
    pub fn reply(&mut self, r: ServerReply) -> Step {
        match self.state {
            State::Start | State::Over => Step::Done(self.finish(None)),
            State::Rset if r.code == 250 => self.send_envelope(),
            State::Rset => self.end(Finished::Rejected {
                command: "RSET",
                reply: r,
            }),
            State::Mail => {
                let ok = r.code == 250;
                self.mail_reply = Some(r);
                if self.pipelining {
                    // Every pipelined reply is read, whatever MAIL said.
                    return self.next_rcpt_reply(0);
                }
                if !ok {
                    return self.mail_refused(None);
                }
                match self.rcpts.first() {
                    Some((_, cmd)) => {
                        self.state = State::Rcpt(0);
                        Step::Send(format!("{cmd}\r\n"))
                    }
                    None => self.after_rcpts(None),
                }
            }
            State::Rcpt(i) => {
                self.rcpt_replies.push(r);
                if self.pipelining {
                    return self.next_rcpt_reply(i + 1);
                }
                match self.rcpts.get(i + 1) {
                    Some((_, cmd)) => {
                        self.state = State::Rcpt(i + 1);
                        Step::Send(format!("{cmd}\r\n"))
                    }
                    None => self.after_rcpts(None),
                }
            }
            State::PipelinedData => self.after_rcpts(Some(r)),
            State::Data if r.code == 354 => self.send_body(BodyFraming::Data),
            State::Data => self.end_with_message(r),
            State::Closing => {
                let f = self
                    .after_closing
                    .take()
                    .unwrap_or_else(|| self.finish(None));
                self.end(f)
            }
            State::Message => self.end_with_message(r),
        }
    }

    fn send_envelope(&mut self) -> Step {
        self.state = State::Mail;
        if !self.pipelining {
            return Step::Send(format!("{}\r\n", self.mail));
        }
        // RFC 2920 §3.1: MAIL, the RCPTs and (without CHUNKING) DATA in one go.
        let mut batch = format!("{}\r\n", self.mail);
        for (_, cmd) in &self.rcpts {
            batch.push_str(cmd);
            batch.push_str("\r\n");
        }
        if !self.chunking {
            batch.push_str("DATA\r\n");
        }
        Step::Send(batch)
    }

    /// Pipelined: the next RCPT reply to read, or DATA's, or what follows.
    fn next_rcpt_reply(&mut self, i: usize) -> Step {
        if i < self.rcpts.len() {
            self.state = State::Rcpt(i);
            return Step::Read { data: false };
        }
        if !self.chunking {
            self.state = State::PipelinedData;
            return Step::Read { data: false };
        }
        self.after_rcpts(None)
    }

    /// All RCPT replies are in; `data` is the pipelined DATA's reply, if one was sent.
    fn after_rcpts(&mut self, data: Option<ServerReply>) -> Step {
        if self.mail_reply.as_ref().is_some_and(|m| m.code != 250) {
            return self.mail_refused(data);
        }
        let accepted = self.rcpt_replies.iter().any(ServerReply::is_positive);
        if !accepted {
            let done = self.finish(None);
            // RFC 2920 §3.1: a 354 despite no recipient still needs the (empty) data ended.
            return self.close_or_end(data, done);
        }
        if self.chunking {
            return self.send_body(BodyFraming::BdatLast);
        }
        match data {
            Some(r) if r.code == 354 => self.send_body(BodyFraming::Data),
            Some(r) => self.end_with_message(r),
            None => {
                self.state = State::Data;
                Step::Send("DATA\r\n".into())
            }
        }
    }

    fn mail_refused(&mut self, data: Option<ServerReply>) -> Step {
        let reply = self.mail_reply.clone().unwrap_or_else(|| ServerReply {
            code: 0,
            lines: Vec::new(),
            enhanced: None,
        });
        self.close_or_end(
            data,
            Finished::Rejected {
                command: "MAIL FROM",
                reply,
            },
        )
    }

    fn close_or_end(&mut self, data: Option<ServerReply>, done: Finished) -> Step {
        if data.is_some_and(|r| r.code == 354) {
            self.after_closing = Some(done);
            self.state = State::Closing;
            return Step::Send(".\r\n".into());
        }
        self.end(done)
    }

    fn send_body(&mut self, framing: BodyFraming) -> Step {
        self.state = State::Message;
        Step::SendBody(framing)
    }

    fn end_with_message(&mut self, r: ServerReply) -> Step {
        let f = self.finish(Some(r));
        self.end(f)
    }

    fn end(&mut self, f: Finished) -> Step {
        self.state = State::Over;
        Step::Done(f)
    }

    fn finish(&mut self, message: Option<ServerReply>) -> Finished {
        let recipients = self
            .rcpts
            .iter()
            .map(|(a, _)| a.clone())
            .zip(std::mem::take(&mut self.rcpt_replies))
            .collect();
        Finished::Result(TransactionResult {
            recipients,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn reply(code: u16) -> ServerReply {
        ServerReply {
            code,
            lines: vec!["x".into()],
            enhanced: None,
        }
    }

    fn ext(pipelining: bool, chunking: bool) -> Extensions {
        Extensions {
            esmtp: true,
            pipelining,
            chunking,
            ..Extensions::default()
        }
    }

    fn rcpts(n: usize) -> Vec<(String, String)> {
        (0..n)
            .map(|i| (format!("r{i}@d"), format!("RCPT TO:<r{i}@d>")))
            .collect()
    }

    /// Runs `t` against a server that answers with `codes` in order; returns what was sent
    /// and how it ended.
    fn run(mut t: Transaction, codes: &[u16]) -> (Vec<String>, Finished) {
        let mut sent = Vec::new();
        let mut codes = codes.iter();
        let mut step = t.start();
        for _ in 0..100 {
            step = match step {
                Step::Send(s) => {
                    sent.push(s);
                    t.sent()
                }
                Step::SendBody(f) => {
                    sent.push(format!("<{f:?}>"));
                    t.sent()
                }
                Step::Read { .. } => t.reply(reply(*codes.next().expect("a reply too few"))),
                Step::Done(f) => {
                    assert!(codes.next().is_none(), "replies left over");
                    return (sent, f);
                }
            };
        }
        panic!("no end")
    }

    fn result(f: Finished) -> TransactionResult {
        match f {
            Finished::Result(r) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pipelined_mail_rcpts_and_data_in_one_write() {
        let t = Transaction::new("MAIL FROM:<a@b>".into(), rcpts(2), &ext(true, false), false);
        let (sent, f) = run(t, &[250, 250, 550, 354, 250]);
        assert_eq!(
            sent,
            [
                "MAIL FROM:<a@b>\r\nRCPT TO:<r0@d>\r\nRCPT TO:<r1@d>\r\nDATA\r\n",
                "<Data>"
            ]
        );
        let r = result(f);
        assert_eq!(r.recipients[1].1.code, 550);
        assert_eq!(r.message.unwrap().code, 250);
    }

    #[test]
    fn without_pipelining_one_command_at_a_time_and_rset_first() {
        let t = Transaction::new("MAIL FROM:<a@b>".into(), rcpts(2), &ext(false, false), true);
        let (sent, f) = run(t, &[250, 250, 250, 451, 354, 250]);
        assert_eq!(
            sent,
            [
                "RSET\r\n",
                "MAIL FROM:<a@b>\r\n",
                "RCPT TO:<r0@d>\r\n",
                "RCPT TO:<r1@d>\r\n",
                "DATA\r\n",
                "<Data>"
            ]
        );
        assert_eq!(result(f).recipients[1].1.code, 451);
    }

    #[test]
    fn a_354_with_no_recipient_accepted_is_closed_with_a_lone_dot() {
        let t = Transaction::new("MAIL FROM:<a@b>".into(), rcpts(1), &ext(true, false), false);
        let (sent, f) = run(t, &[250, 550, 354, 554]);
        assert_eq!(sent.last().unwrap(), ".\r\n");
        let r = result(f);
        assert!(r.message.is_none() && r.recipients[0].1.code == 550);
    }

    #[test]
    fn a_refused_mail_reads_every_pipelined_reply_and_closes_a_354() {
        let t = Transaction::new("MAIL FROM:<a@b>".into(), rcpts(2), &ext(true, false), false);
        let (sent, f) = run(t, &[550, 503, 503, 354, 250]);
        assert_eq!(sent.last().unwrap(), ".\r\n");
        assert!(matches!(
            f,
            Finished::Rejected { command: "MAIL FROM", reply } if reply.code == 550
        ));
        // Not pipelined: nothing after the refusal.
        let t = Transaction::new(
            "MAIL FROM:<a@b>".into(),
            rcpts(2),
            &ext(false, false),
            false,
        );
        let (sent, f) = run(t, &[550]);
        assert_eq!(sent, ["MAIL FROM:<a@b>\r\n"]);
        assert!(matches!(f, Finished::Rejected { .. }));
    }

    #[test]
    fn chunking_sends_one_bdat_last_and_no_data() {
        let t = Transaction::new("MAIL FROM:<a@b>".into(), rcpts(1), &ext(true, true), false);
        let (sent, f) = run(t, &[250, 250, 250]);
        assert_eq!(
            sent,
            ["MAIL FROM:<a@b>\r\nRCPT TO:<r0@d>\r\n", "<BdatLast>"]
        );
        assert_eq!(result(f).message.unwrap().code, 250);
    }

    #[test]
    fn a_refused_rset_or_data_ends_the_transaction() {
        let t = Transaction::new("MAIL FROM:<a@b>".into(), rcpts(1), &ext(false, false), true);
        let (_, f) = run(t, &[421]);
        assert!(matches!(
            f,
            Finished::Rejected {
                command: "RSET",
                ..
            }
        ));
        let t = Transaction::new(
            "MAIL FROM:<a@b>".into(),
            rcpts(1),
            &ext(false, false),
            false,
        );
        let (sent, f) = run(t, &[250, 250, 554]);
        assert_eq!(sent.last().unwrap(), "DATA\r\n");
        assert_eq!(
            result(f).message.unwrap().code,
            554,
            "DATA's refusal is the answer"
        );
    }
}
