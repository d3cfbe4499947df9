//! The DATA body decoder (RFC 5321 §4.1.4, §4.5.2): finds the `<CRLF>.<CRLF>` terminator,
//! removes dot-stuffing, and enforces the smuggling defence.
//!
//! SMTP smuggling (CVE-2023-51764 class) relies on receivers that also accept `<LF>.<LF>`,
//! `<CR>.<CR>` or `<LF>.<CR><LF>` as the end of DATA. Here only `<CRLF>.<CRLF>` ends a message, and
//! a bare LF or bare CR anywhere in it marks the message as bad (rejected after the real end) or,
//! in `Normalize` mode, is turned into CRLF. Either way no byte after a fake terminator can be
//! read as a command.

/// What to do with a bare CR or LF in DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLineEnding {
    /// Reject the message (default; what Postfix's `smtpd_forbid_bare_newline` does).
    Reject,
    /// Accept it, turning each bare CR or LF into CRLF.
    Normalize,
}

/// Why a message body is refused once it has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyProblem {
    BareLineEnding,
    LineTooLong,
    TooBig,
}

/// Incremental decoder; feed it the bytes after the 354 reply.
#[derive(Debug)]
pub struct DataDecoder {
    mode: BareLineEnding,
    max_size: usize,
    max_line: usize,
    body: Vec<u8>,
    line_len: usize,
    /// We are at the start of a line (after CRLF, or at the very beginning).
    at_line_start: bool,
    /// The current line started with a dot that was removed (stuffing or terminator).
    dot_line: bool,
    /// A CR was seen and not yet resolved.
    pending_cr: bool,
    /// The current line began after a real CRLF (or at the start); only such a "." line ends
    /// DATA — after a normalized bare LF, "<LF>.<CR><LF>" must stay data.
    line_after_crlf: bool,
    problem: Option<BodyProblem>,
}

/// Result of feeding bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum DataProgress {
    /// Need more input; all bytes were consumed.
    More,
    /// The terminator was found after `consumed` bytes of the input.
    Done { consumed: usize },
}

impl DataDecoder {
    pub fn new(mode: BareLineEnding, max_size: usize, max_line: usize) -> Self {
        DataDecoder {
            mode,
            max_size,
            max_line,
            body: Vec::new(),
            line_len: 0,
            at_line_start: true,
            dot_line: false,
            pending_cr: false,
            line_after_crlf: true,
            problem: None,
        }
    }

    fn flag(&mut self, p: BodyProblem) {
        self.problem.get_or_insert(p);
    }

    fn push(&mut self, b: u8) {
        if self.body.len() >= self.max_size {
            self.flag(BodyProblem::TooBig);
            return;
        }
        self.body.push(b);
    }

    fn end_line(&mut self, real_crlf: bool) {
        self.push(b'\r');
        self.push(b'\n');
        self.at_line_start = true;
        self.dot_line = false;
        self.line_len = 0;
        self.line_after_crlf = real_crlf;
    }

    /// Consumes `input`; stops right after the terminator.
    pub fn feed(&mut self, input: &[u8]) -> DataProgress {
        for (i, &b) in input.iter().enumerate() {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    // CRLF: a line ends. A line that was exactly "." after a real CRLF ends
                    // the message; after a normalized bare line ending the dot is data.
                    if self.dot_line && self.line_len == 0 {
                        if self.line_after_crlf {
                            return DataProgress::Done { consumed: i + 1 };
                        }
                        self.push(b'.');
                    }
                    self.end_line(true);
                    continue;
                }
                // A bare CR.
                self.bare();
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.bare(),
                b'.' if self.at_line_start => {
                    self.at_line_start = false;
                    self.dot_line = true;
                }
                _ => {
                    if self.dot_line && self.line_len == 0 {
                        // The removed dot was stuffing; the line goes on.
                    }
                    self.at_line_start = false;
                    self.line_len += 1;
                    if self.line_len > self.max_line {
                        self.flag(BodyProblem::LineTooLong);
                    }
                    self.push(b);
                }
            }
        }
        DataProgress::More
    }

    /// A bare CR or LF: never a line end that can terminate DATA.
    fn bare(&mut self) {
        match self.mode {
            BareLineEnding::Reject => {
                self.flag(BodyProblem::BareLineEnding);
                // Keep the byte out of the body; the line goes on (no terminator can follow
                // it that we would honour).
                self.at_line_start = false;
                self.dot_line = false;
            }
            BareLineEnding::Normalize => {
                if self.dot_line && self.line_len == 0 {
                    // "<LF>.<LF>" style fake terminator: keep the dot as data.
                    self.push(b'.');
                }
                self.end_line(false);
            }
        }
    }

    /// The body (dot-unstuffed, CRLF line ends) or the problem that refuses it.
    pub fn finish(self) -> Result<Vec<u8>, BodyProblem> {
        match self.problem {
            Some(p) => Err(p),
            None => Ok(self.body),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(mode: BareLineEnding, input: &[u8]) -> (Result<Vec<u8>, BodyProblem>, Option<usize>) {
        let mut d = DataDecoder::new(mode, 1 << 20, 1000);
        let consumed = match d.feed(input) {
            DataProgress::Done { consumed } => Some(consumed),
            DataProgress::More => None,
        };
        (d.finish(), consumed)
    }

    #[test]
    fn terminator_and_dot_unstuffing() {
        let (body, n) = decode(
            BareLineEnding::Reject,
            b"Subject: x\r\n\r\n..leading dot\r\n.\r\nQUIT\r\n",
        );
        assert_eq!(body.unwrap(), b"Subject: x\r\n\r\n.leading dot\r\n");
        assert_eq!(
            n,
            Some(b"Subject: x\r\n\r\n..leading dot\r\n.\r\n".len()),
            "QUIT is left for the command parser"
        );
        let (body, n) = decode(BareLineEnding::Reject, b".\r\n");
        assert_eq!((body.unwrap(), n), (Vec::new(), Some(3)), "empty message");
    }

    #[test]
    fn byte_by_byte_equals_all_at_once() {
        let msg = b"a\r\n..b\r\n.c\r\n\r\n.\r\n";
        let mut d = DataDecoder::new(BareLineEnding::Reject, 1 << 20, 1000);
        let mut done = None;
        for (i, b) in msg.iter().enumerate() {
            if let DataProgress::Done { consumed } = d.feed(std::slice::from_ref(b)) {
                done = Some(i + consumed);
                break;
            }
        }
        assert_eq!(done, Some(msg.len()));
        assert_eq!(d.finish().unwrap(), b"a\r\n.b\r\nc\r\n\r\n");
    }

    /// CVE-2023-51764 class: none of these ends the message; the smuggled "command" stays body
    /// and the message is refused.
    #[test]
    fn smuggling_sequences_do_not_end_data() {
        for fake in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
            let mut input = b"Subject: a\r\n\r\nhello".to_vec();
            input.extend_from_slice(fake);
            input.extend_from_slice(
                b"MAIL FROM:<evil@x.test>\r\nRCPT TO:<victim@y.test>\r\nDATA\r\nevil\r\n",
            );
            let (body, n) = decode(BareLineEnding::Reject, &input);
            assert_eq!(n, None, "{fake:?} must not end DATA");
            input.extend_from_slice(b".\r\n");
            let (body2, n2) = decode(BareLineEnding::Reject, &input);
            assert_eq!(n2, Some(input.len()), "{fake:?}: only CRLF.CRLF ends it");
            assert_eq!(body2, Err(BodyProblem::BareLineEnding), "{fake:?}");
            let _ = body;
            // Normalized: accepted, and the fake terminator is data, not an end.
            let (norm, n3) = decode(BareLineEnding::Normalize, &input);
            assert_eq!(n3, Some(input.len()));
            let norm = norm.unwrap();
            assert!(
                norm.windows(4).any(|w| w == b"MAIL"),
                "{fake:?}: smuggled text stays in the body"
            );
            assert!(
                !norm
                    .windows(2)
                    .enumerate()
                    .any(|(i, w)| w[1] == b'\n' && (i == 0 || w[0] != b'\r'))
            );
        }
    }

    #[test]
    fn limits() {
        let mut d = DataDecoder::new(BareLineEnding::Reject, 10, 1000);
        assert_eq!(
            d.feed(b"0123456789abcdef\r\n.\r\n"),
            DataProgress::Done { consumed: 21 }
        );
        assert_eq!(d.finish(), Err(BodyProblem::TooBig));
        let mut d = DataDecoder::new(BareLineEnding::Reject, 1 << 20, 5);
        assert_eq!(
            d.feed(b"123456\r\n.\r\n"),
            DataProgress::Done { consumed: 11 }
        );
        assert_eq!(d.finish(), Err(BodyProblem::LineTooLong));
    }
}
