//! SMTP replies (RFC 5321 §4.2) with enhanced status codes (RFC 3463, RFC 2034).

/// One reply: a code, an enhanced status (omitted for 220/221 greetings where RFC 2034 allows),
/// and one or more text lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub enhanced: Option<&'static str>,
    pub lines: Vec<String>,
}

impl Reply {
    pub fn new(code: u16, enhanced: &'static str, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: Some(enhanced),
            lines: vec![text.into()],
        }
    }

    pub fn plain(code: u16, text: impl Into<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines: vec![text.into()],
        }
    }

    pub fn multiline(code: u16, lines: Vec<String>) -> Reply {
        Reply {
            code,
            enhanced: None,
            lines,
        }
    }

    pub fn is_positive(&self) -> bool {
        self.code < 400
    }

    /// The wire form: `250-first\r\n250 last\r\n`. CR and LF inside the text are replaced, so
    /// no text can ever inject a line.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let n = self.lines.len().max(1);
        for i in 0..n {
            let text = self.lines.get(i).map(String::as_str).unwrap_or("");
            let sep = if i + 1 == n { ' ' } else { '-' };
            out.extend_from_slice(format!("{}{}", self.code, sep).as_bytes());
            if let Some(e) = self.enhanced {
                out.extend_from_slice(e.as_bytes());
                out.push(b' ');
            }
            out.extend(
                text.bytes()
                    .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
            );
            out.extend_from_slice(b"\r\n");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form() {
        assert_eq!(
            Reply::new(250, "2.1.0", "Ok").to_bytes(),
            b"250 2.1.0 Ok\r\n"
        );
        let m = Reply::multiline(
            250,
            vec!["mx.example".into(), "PIPELINING".into(), "8BITMIME".into()],
        );
        assert_eq!(
            m.to_bytes(),
            b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"
        );
        assert_eq!(
            Reply::plain(221, "bye\r\nRSET").to_bytes(),
            b"221 bye  RSET\r\n"
        );
    }
}
