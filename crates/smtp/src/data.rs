//! The DATA body decoder (RFC 5321 §4.1.4, §4.5.2): finds the `<CRLF>.<CRLF>` terminator,
//! removes dot-stuffing, and enforces the smuggling defence.
//!
//! SMTP smuggling (CVE-2023-51764 class) relies on receivers that also accept `<LF>.<LF>`,
//! `<CR>.<CR>` or `<LF>.<CR><LF>` as the end of DATA. Here only `<CRLF>.<CRLF>` ends a message, and
//! a bare LF or bare CR anywhere in it marks the message as bad (rejected after the real end) or,
//! in `Normalize` mode, is turned into CRLF. Either way no byte after a fake terminator can be
//! read as a command.

use crate::spool::{Body, InFlight, SpoolProblem};

/// What to do with a bare CR or LF in DATA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareLineEnding {
    /// Reject the message (default; what Postfix's `smtpd_forbid_bare_newline` does).
    Reject,
    /// Accept it, turning each bare CR or LF into CRLF.
    Normalize,
}

/// Why a message body is refused once it has ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BodyProblem {
    BareLineEnding,
    LineTooLong,
    TooBig,
    /// It could not be kept (budget used up, spool not writable): a temporary failure.
    Spool(SpoolProblem),
}

/// Where both decoders put decoded bytes: staged per `feed`, then handed to the body in one
/// piece; counts the size and remembers the first problem (after which nothing is kept).
#[derive(Debug)]
struct BodyWriter {
    max_size: usize,
    staged: Vec<u8>,
    body: Body,
    /// Bytes decoded so far (staged and in `body`).
    size: usize,
    problem: Option<BodyProblem>,
}

impl BodyWriter {
    fn new(max_size: usize, body: Body) -> Self {
        BodyWriter {
            max_size,
            staged: Vec::new(),
            body,
            size: 0,
            problem: None,
        }
    }

    fn flag(&mut self, p: BodyProblem) {
        self.problem.get_or_insert(p);
    }

    fn push(&mut self, b: u8) {
        if self.size >= self.max_size {
            self.flag(BodyProblem::TooBig);
            return;
        }
        self.size += 1;
        self.staged.push(b);
    }

    /// Hands the staged bytes to the body (nothing once the message is refused).
    fn unstage(&mut self) {
        if self.problem.is_none() {
            self.body.push(&self.staged);
        }
        self.staged.clear();
    }

    fn finish(mut self) -> Result<Body, BodyProblem> {
        self.unstage();
        if let Some(p) = self.problem {
            return Err(p);
        }
        match self.body.problem() {
            Some(p) => Err(BodyProblem::Spool(p.clone())),
            None => Ok(self.body),
        }
    }
}

/// Incremental decoder; feed it the bytes after the 354 reply.
#[derive(Debug)]
pub struct DataDecoder {
    mode: BareLineEnding,
    max_line: usize,
    out: BodyWriter,
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
    /// A decoder that keeps the body in memory without limit (tests, fuzzing).
    pub fn new(mode: BareLineEnding, max_size: usize, max_line: usize) -> Self {
        Self::with_body(mode, max_size, max_line, Body::new(InFlight::unlimited()))
    }

    /// A decoder that writes into `body` (memory, then spool, within its budget).
    pub fn with_body(mode: BareLineEnding, max_size: usize, max_line: usize, body: Body) -> Self {
        DataDecoder {
            mode,
            max_line,
            out: BodyWriter::new(max_size, body),
            line_len: 0,
            at_line_start: true,
            dot_line: false,
            pending_cr: false,
            line_after_crlf: true,
        }
    }

    fn flag(&mut self, p: BodyProblem) {
        self.out.flag(p);
    }

    fn push(&mut self, b: u8) {
        self.out.push(b);
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
        let progress = self.decode(input);
        self.out.unstage();
        progress
    }

    fn decode(&mut self, input: &[u8]) -> DataProgress {
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
    pub fn finish(self) -> Result<Body, BodyProblem> {
        self.out.finish()
    }
}

/// The BDAT body decoder (RFC 3030): chunks are counted, not framed, so there is no
/// dot-stuffing — but the same line-ending rule as DATA holds (a bare CR or LF is refused, or
/// turned into CRLF in `Normalize` mode), so that no bare CR or LF is ever stored or relayed
/// (a submitted `hello\r.\r\nMAIL FROM:…` would otherwise go out as is, and a receiver that
/// accepts `<CR>.<CR>` would read a second message). Also checks line length and size.
#[derive(Debug)]
pub struct BdatDecoder {
    mode: BareLineEnding,
    max_line: usize,
    out: BodyWriter,
    line_len: usize,
    pending_cr: bool,
}

impl BdatDecoder {
    pub fn new(mode: BareLineEnding, max_size: usize, max_line: usize, body: Body) -> Self {
        BdatDecoder {
            mode,
            max_line,
            out: BodyWriter::new(max_size, body),
            line_len: 0,
            pending_cr: false,
        }
    }

    fn push(&mut self, b: u8) {
        self.out.push(b);
    }

    fn bare(&mut self) {
        match self.mode {
            BareLineEnding::Reject => {
                self.out.flag(BodyProblem::BareLineEnding);
            }
            BareLineEnding::Normalize => {
                self.push(b'\r');
                self.push(b'\n');
                self.line_len = 0;
            }
        }
    }

    /// Takes the bytes of a chunk (any split).
    pub fn feed(&mut self, chunk: &[u8]) {
        for &b in chunk {
            if self.pending_cr {
                self.pending_cr = false;
                if b == b'\n' {
                    self.push(b'\r');
                    self.push(b'\n');
                    self.line_len = 0;
                    continue;
                }
                self.bare();
            }
            match b {
                b'\r' => self.pending_cr = true,
                b'\n' => self.bare(),
                _ => {
                    self.line_len += 1;
                    if self.line_len > self.max_line {
                        self.out.flag(BodyProblem::LineTooLong);
                    }
                    self.push(b);
                }
            }
        }
        self.out.unstage();
    }

    /// Bytes received so far, as decoded.
    pub fn size(&self) -> usize {
        self.out.size
    }

    /// After the LAST chunk: the body, or why it is refused.
    pub fn finish(mut self) -> Result<Body, BodyProblem> {
        if self.pending_cr {
            // A CR at the very end has no LF: bare.
            self.pending_cr = false;
            self.bare();
        }
        self.out.finish()
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
        (d.finish().map(bytes), consumed)
    }

    fn bytes(b: Body) -> Vec<u8> {
        b.into_bytes(0).unwrap().0
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
        assert_eq!(bytes(d.finish().unwrap()), b"a\r\n.b\r\nc\r\n\r\n");
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
        assert_eq!(d.finish().map(bytes), Err(BodyProblem::TooBig));
        let mut d = DataDecoder::new(BareLineEnding::Reject, 1 << 20, 5);
        assert_eq!(
            d.feed(b"123456\r\n.\r\n"),
            DataProgress::Done { consumed: 11 }
        );
        assert_eq!(d.finish().map(bytes), Err(BodyProblem::LineTooLong));
    }

    fn bdat(mode: BareLineEnding, chunks: &[&[u8]]) -> Result<Vec<u8>, BodyProblem> {
        let mut d = BdatDecoder::new(mode, 1 << 20, 1000, Body::new(InFlight::unlimited()));
        for c in chunks {
            d.feed(c);
        }
        d.finish().map(bytes)
    }

    /// Issue 16 item 7: BDAT obeys the bare CR/LF rule like DATA, across chunk boundaries.
    #[test]
    fn bdat_refuses_or_normalizes_bare_line_endings() {
        let smuggle: &[u8] = b"hello\r.\r\nMAIL FROM:<a@b.test>\r\n";
        assert_eq!(
            bdat(BareLineEnding::Reject, &[smuggle]),
            Err(BodyProblem::BareLineEnding)
        );
        assert_eq!(
            bdat(BareLineEnding::Normalize, &[smuggle]).unwrap(),
            b"hello\r\n.\r\nMAIL FROM:<a@b.test>\r\n"
        );
        for bad in [&b"a\nb\r\n"[..], b"a\rb\r\n", b"ab\r"] {
            assert_eq!(
                bdat(BareLineEnding::Reject, &[bad]),
                Err(BodyProblem::BareLineEnding)
            );
        }
        // CRLF split across chunks is a real line end.
        assert_eq!(
            bdat(BareLineEnding::Reject, &[b"a\r", b"\nb\r\n"]).unwrap(),
            b"a\r\nb\r\n"
        );
        assert_eq!(
            bdat(BareLineEnding::Normalize, &[b"a\n", b"b\r", b"c\r"]).unwrap(),
            b"a\r\nb\r\nc\r\n"
        );
        // Dots are data in BDAT: no unstuffing.
        assert_eq!(
            bdat(BareLineEnding::Reject, &[b"..x\r\n.\r\n"]).unwrap(),
            b"..x\r\n.\r\n"
        );
        let mut long = vec![b'x'; 1001];
        long.extend_from_slice(b"\r\n");
        assert_eq!(
            bdat(BareLineEnding::Reject, &[&long]),
            Err(BodyProblem::LineTooLong)
        );
    }
}
