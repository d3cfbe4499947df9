//! One POP3 session's view of the INBOX (RFC 1939 §5): the messages present at login,
//! numbered from 1, with deletion marks that take effect only at QUIT; and the multi-line
//! framing of message text (dot-stuffing, RFC 1939 §3). Pure.

use kurier_store::MessageMeta;

#[derive(Debug, Clone)]
pub struct Maildrop {
    uid_validity: u32,
    messages: Vec<MessageMeta>,
    deleted: Vec<bool>,
}

/// Why a message number cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoMessage {
    Missing,
    Deleted,
}

impl NoMessage {
    pub fn text(self) -> &'static str {
        match self {
            NoMessage::Missing => "no such message",
            NoMessage::Deleted => "message is marked as deleted",
        }
    }
}

impl Maildrop {
    pub fn new(uid_validity: u32, mut messages: Vec<MessageMeta>) -> Self {
        messages.sort_by_key(|m| m.uid);
        let deleted = vec![false; messages.len()];
        Maildrop {
            uid_validity,
            messages,
            deleted,
        }
    }

    /// The message `n` unless missing or marked.
    pub fn get(&self, n: u32) -> Result<&MessageMeta, NoMessage> {
        let i = (n as usize).checked_sub(1).ok_or(NoMessage::Missing)?;
        match (self.messages.get(i), self.deleted.get(i)) {
            (Some(_), Some(true)) => Err(NoMessage::Deleted),
            (Some(m), _) => Ok(m),
            _ => Err(NoMessage::Missing),
        }
    }

    /// Messages not marked, with their numbers.
    pub fn live(&self) -> impl Iterator<Item = (u32, &MessageMeta)> {
        self.messages
            .iter()
            .enumerate()
            .filter(|(i, _)| !self.deleted[*i])
            .map(|(i, m)| (i as u32 + 1, m))
    }

    /// STAT: count and octets of the messages not marked.
    pub fn stat(&self) -> (usize, u64) {
        self.live()
            .fold((0, 0), |(n, size), (_, m)| (n + 1, size + m.size))
    }

    /// A unique-id that stays the same across sessions (RFC 1939 §7 UIDL): UIDVALIDITY and UID.
    pub fn unique_id(&self, m: &MessageMeta) -> String {
        format!("{}.{}", self.uid_validity, m.uid)
    }

    pub fn delete(&mut self, n: u32) -> Result<(), NoMessage> {
        self.get(n)?;
        self.deleted[n as usize - 1] = true;
        Ok(())
    }

    pub fn reset(&mut self) {
        self.deleted.iter_mut().for_each(|d| *d = false);
    }

    /// The UIDs to remove at QUIT.
    pub fn marked(&self) -> Vec<u32> {
        self.messages
            .iter()
            .zip(&self.deleted)
            .filter(|(_, d)| **d)
            .map(|(m, _)| m.uid)
            .collect()
    }
}

/// Message text as a multi-line response: lines starting with `.` get another `.`, bare LF
/// becomes CRLF, and the terminating `.` line follows. `body_lines` limits the body to that
/// many lines after the header (TOP); `None` sends everything.
pub fn multiline(out: &mut Vec<u8>, raw: &[u8], body_lines: Option<u32>) {
    let mut in_body = false;
    let mut body_count = 0u32;
    for line in raw.split_inclusive(|&b| b == b'\n') {
        let text = line
            .strip_suffix(b"\n")
            .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
            .unwrap_or(line);
        if in_body {
            if body_lines.is_some_and(|max| body_count >= max) {
                break;
            }
            body_count += 1;
        }
        if text.starts_with(b".") {
            out.push(b'.');
        }
        out.extend_from_slice(text);
        out.extend_from_slice(b"\r\n");
        if !in_body && text.is_empty() {
            in_body = true;
        }
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(uid: u32, size: u64) -> MessageMeta {
        MessageMeta {
            mailbox: 1,
            uid,
            modseq: 1,
            flags: Vec::new(),
            internal_date: 0,
            size,
        }
    }

    #[test]
    fn marks_take_effect_only_when_asked() {
        let mut d = Maildrop::new(7, vec![meta(9, 100), meta(3, 50)]);
        assert_eq!(d.stat(), (2, 150));
        assert_eq!(d.get(1).unwrap().uid, 3, "numbered by UID");
        assert_eq!(d.unique_id(d.get(2).unwrap()), "7.9");
        d.delete(1).unwrap();
        assert_eq!(d.delete(1), Err(NoMessage::Deleted));
        assert_eq!(d.get(1).unwrap_err(), NoMessage::Deleted);
        assert_eq!(d.get(3).unwrap_err(), NoMessage::Missing);
        assert_eq!(d.get(0).unwrap_err(), NoMessage::Missing);
        assert_eq!(d.stat(), (1, 100));
        assert_eq!(d.marked(), [3]);
        assert_eq!(d.live().map(|(n, _)| n).collect::<Vec<_>>(), [2]);
        d.reset();
        assert!(d.marked().is_empty());
        assert_eq!(d.stat(), (2, 150));
    }

    #[test]
    fn dot_stuffing_and_top() {
        let raw = b"Subject: x\r\n.hidden: y\r\n\r\n.line one\nline two\r\n..\r\nlast";
        let mut out = Vec::new();
        multiline(&mut out, raw, None);
        assert_eq!(
            out,
            b"Subject: x\r\n..hidden: y\r\n\r\n..line one\r\nline two\r\n...\r\nlast\r\n.\r\n"
        );
        let mut out = Vec::new();
        multiline(&mut out, raw, Some(1));
        assert_eq!(out, b"Subject: x\r\n..hidden: y\r\n\r\n..line one\r\n.\r\n");
        let mut out = Vec::new();
        multiline(&mut out, raw, Some(0));
        assert_eq!(out, b"Subject: x\r\n..hidden: y\r\n\r\n.\r\n");
        let mut out = Vec::new();
        multiline(&mut out, b"", None);
        assert_eq!(out, b".\r\n");
    }
}
