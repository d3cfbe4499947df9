//! Where a client's command ends (RFC 9051 §2.2, §4.3, RFC 7888): a command is a line, or
//! several lines joined by literals `{n}` (synchronizing: the server answers `+` before the
//! client sends the bytes) and `{n+}` (non-synchronizing, LITERAL+). I/O-free: the driver
//! feeds bytes in and acts on what `next` says.

/// What the reader needs next.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// A whole command (its lines and literals, with the final CRLF).
    Command(Vec<u8>),
    /// More bytes are needed.
    NeedMore,
    /// A literal of `size` octets was announced (within the limits). The driver either takes
    /// it — for a synchronizing one (`sync`) by sending a continuation request (`+ Ready`) —
    /// or, when it cannot hold that much now, calls `refuse_literal`.
    Literal { size: u64, sync: bool },
    /// A synchronizing literal is larger than allowed: answer the tagged command `NO [TOOBIG]`
    /// (the client will not send it) and drop what was buffered of the command.
    LiteralTooBig { tag: Vec<u8>, size: u64 },
    /// A line without CRLF grew past the limit, or a non-synchronizing literal is larger than
    /// allowed (it would have to be read to find the next command): close with BYE.
    TooLong,
}

/// Frames commands out of the bytes a client sends.
#[derive(Debug)]
pub struct CommandReader {
    buf: Vec<u8>,
    /// Bytes of `buf` that belong to the command being framed and were checked.
    scanned: usize,
    /// Bytes of literal still expected before scanning resumes.
    literal_left: u64,
    max_line: usize,
    max_literal: u64,
    max_command: usize,
}

impl CommandReader {
    /// `max_line`: longest line without a literal; `max_literal`: largest literal (APPEND size);
    /// `max_command`: all lines and literals of one command together.
    pub fn new(max_line: usize, max_literal: u64, max_command: usize) -> Self {
        CommandReader {
            buf: Vec::new(),
            scanned: 0,
            literal_left: 0,
            max_line,
            max_literal,
            max_command,
        }
    }

    /// Changes the limits (they grow after login); applies from the next announcement on.
    pub fn set_limits(&mut self, max_line: usize, max_literal: u64, max_command: usize) {
        self.max_line = max_line;
        self.max_literal = max_literal;
        self.max_command = max_command;
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// Forgets everything buffered (after STARTTLS: nothing sent in plain text counts,
    /// RFC 9051 §6.2.1).
    pub fn clear(&mut self) {
        self.buf.clear();
        self.scanned = 0;
        self.literal_left = 0;
    }

    pub fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    /// Returns memory to the allocator between commands (idle sessions stay small).
    pub fn shrink(&mut self) {
        if self.buf.is_empty() && self.buf.capacity() > 4096 {
            self.buf = Vec::new();
        }
    }

    /// Takes one raw line (for SASL responses and IDLE's DONE), without its CRLF.
    pub fn take_line(&mut self) -> Option<Result<Vec<u8>, ()>> {
        match find_crlf(&self.buf, 0) {
            Some(end) => {
                let line = self.buf[..end].to_vec();
                self.buf.drain(..end + 2);
                self.scanned = 0;
                Some(Ok(line))
            }
            None if self.buf.len() > self.max_line => Some(Err(())),
            None => None,
        }
    }

    pub fn next_step(&mut self) -> Step {
        if self.literal_left > 0 {
            let have = (self.buf.len() - self.scanned) as u64;
            if have < self.literal_left {
                self.scanned = self.buf.len();
                self.literal_left -= have;
                return Step::NeedMore;
            }
            self.scanned += self.literal_left as usize;
            self.literal_left = 0;
        }
        let Some(end) = find_crlf(&self.buf, self.scanned) else {
            if self.buf.len() - self.scanned > self.max_line {
                return Step::TooLong;
            }
            return Step::NeedMore;
        };
        let line = &self.buf[self.scanned..end];
        let Some((size, sync)) = literal_announcement(line) else {
            let command: Vec<u8> = self.buf.drain(..end + 2).collect();
            self.scanned = 0;
            return Step::Command(command);
        };
        self.scanned = end + 2;
        if size > self.max_literal
            || (end as u64 + 2).saturating_add(size) > self.max_command as u64
        {
            if !sync {
                return Step::TooLong;
            }
            let tag = self.refuse_literal();
            return Step::LiteralTooBig { tag, size };
        }
        self.literal_left = size;
        Step::Literal { size, sync }
    }
}

impl CommandReader {
    /// Refuses the literal just announced by `Step::Literal` and drops its command; returns
    /// the command's tag (for `NO`). For a synchronizing literal the client sends nothing more
    /// of it; a non-synchronizing one is already on its way, so the caller closes instead.
    pub fn refuse_literal(&mut self) -> Vec<u8> {
        let line_end = self.scanned.saturating_sub(2).min(self.buf.len());
        let tag = self.buf[..line_end]
            .split(|&b| b == b' ')
            .next()
            .unwrap_or_default()
            .to_vec();
        let drop_to = self.scanned.min(self.buf.len());
        self.buf.drain(..drop_to);
        self.scanned = 0;
        self.literal_left = 0;
        tag
    }
}

fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    buf.get(from..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map(|p| p + from)
}

/// `{n}` / `{n+}` (and literal8 `~{n}`) at the end of a line.
pub fn literal_announcement(line: &[u8]) -> Option<(u64, bool)> {
    let inner = line.strip_suffix(b"}")?;
    let open = inner.iter().rposition(|&b| b == b'{')?;
    let mut digits = &inner[open + 1..];
    let sync = match digits.strip_suffix(b"+") {
        Some(d) => {
            digits = d;
            false
        }
        None => true,
    };
    if digits.is_empty() || digits.len() > 19 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits)
        .ok()?
        .parse()
        .ok()
        .map(|n| (n, sync))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> CommandReader {
        CommandReader::new(100, 50, 200)
    }

    #[test]
    fn lines_are_commands() {
        let mut r = reader();
        r.feed(b"a1 NOOP\r\na2 CAPA");
        assert_eq!(r.next_step(), Step::Command(b"a1 NOOP\r\n".to_vec()));
        assert_eq!(r.next_step(), Step::NeedMore);
        r.feed(b"BILITY\r\n");
        assert_eq!(r.next_step(), Step::Command(b"a2 CAPABILITY\r\n".to_vec()));
        assert!(r.is_empty());
    }

    #[test]
    fn synchronizing_literal_asks_to_continue() {
        let mut r = reader();
        r.feed(b"a LOGIN {5}\r\n");
        assert_eq!(
            r.next_step(),
            Step::Literal {
                size: 5,
                sync: true
            }
        );
        assert_eq!(r.next_step(), Step::NeedMore);
        r.feed(b"al");
        assert_eq!(r.next_step(), Step::NeedMore);
        r.feed(b"ice {3+}\r\npw\n");
        assert_eq!(
            r.next_step(),
            Step::Literal {
                size: 3,
                sync: false
            }
        );
        assert_eq!(
            r.next_step(),
            Step::NeedMore,
            "a literal may hold CRLF-less bytes"
        );
        r.feed(b"\r\n");
        assert_eq!(
            r.next_step(),
            Step::Command(b"a LOGIN {5}\r\nalice {3+}\r\npw\n\r\n".to_vec())
        );
    }

    #[test]
    fn a_literal_holding_crlf_and_braces_does_not_end_the_command() {
        let mut r = reader();
        r.feed(b"a APPEND x {8+}\r\nab\r\n{1}\r\r\n");
        assert_eq!(
            r.next_step(),
            Step::Literal {
                size: 8,
                sync: false
            }
        );
        assert_eq!(
            r.next_step(),
            Step::Command(b"a APPEND x {8+}\r\nab\r\n{1}\r\r\n".to_vec())
        );
    }

    #[test]
    fn oversized_literals_and_lines() {
        let mut r = reader();
        r.feed(b"t1 APPEND INBOX {51}\r\nt2 NOOP\r\n");
        assert_eq!(
            r.next_step(),
            Step::LiteralTooBig {
                tag: b"t1".to_vec(),
                size: 51
            }
        );
        assert_eq!(r.next_step(), Step::Command(b"t2 NOOP\r\n".to_vec()));
        r.feed(b"t3 APPEND INBOX {51+}\r\n");
        assert_eq!(r.next_step(), Step::TooLong);
        let mut r = reader();
        r.feed(&[b'x'; 101]);
        assert_eq!(r.next_step(), Step::TooLong);
        let mut r = reader();
        r.feed(b"x {99999999999999999999}\r\n");
        assert_eq!(
            r.next_step(),
            Step::Command(b"x {99999999999999999999}\r\n".to_vec())
        );
    }

    /// A literal the server cannot hold now is refused by tag; the next command frames as usual.
    #[test]
    fn a_refused_literal_drops_its_command() {
        let mut r = reader();
        r.feed(b"t1 APPEND INBOX {20}\r\nt2 NOOP\r\n");
        assert_eq!(
            r.next_step(),
            Step::Literal {
                size: 20,
                sync: true
            }
        );
        assert_eq!(r.refuse_literal(), b"t1");
        assert_eq!(r.next_step(), Step::Command(b"t2 NOOP\r\n".to_vec()));
        assert!(r.is_empty());
    }

    #[test]
    fn announcements() {
        assert_eq!(literal_announcement(b"a {0}"), Some((0, true)));
        assert_eq!(literal_announcement(b"a ~{12+}"), Some((12, false)));
        for bad in [&b"a {}"[..], b"a {x}", b"a {1", b"a {-1}", b"a {+}"] {
            assert_eq!(literal_announcement(bad), None);
        }
    }

    #[test]
    fn lines_for_sasl_and_idle() {
        let mut r = reader();
        r.feed(b"DONE\r\nrest");
        assert_eq!(r.take_line(), Some(Ok(b"DONE".to_vec())));
        assert_eq!(r.take_line(), None);
    }
}
