//! Writing IMAP data (RFC 9051 §4): strings as atoms, quoted strings or literals, NIL.

/// A `string`: quoted when it is short printable ASCII, else a literal (which carries any
/// octets, 8-bit and CRLF included).
pub fn string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 1024 && s.iter().all(|&b| (0x20..0x7f).contains(&b) || b == b'\t') {
        out.push(b'"');
        for &b in s {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, s);
    }
}

pub fn literal(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(format!("{{{}}}\r\n", s.len()).as_bytes());
    out.extend_from_slice(s);
}

/// `nstring`: a string or NIL.
pub fn nstring(out: &mut Vec<u8>, s: Option<&[u8]>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"NIL"),
    }
}

/// A mailbox name (`astring`): an atom when it can be one, else quoted (UTF-8 names are
/// allowed quoted in IMAP4rev2, RFC 9051 §5.1) or a literal.
pub fn mailbox(out: &mut Vec<u8>, name: &str) {
    let atom_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b > 0x20 && b < 0x7f && !b"(){%*\"\\".contains(&b));
    if atom_ok {
        out.extend_from_slice(name.as_bytes());
    } else if name.len() <= 1024 && !name.bytes().any(|b| b < 0x20 || b == 0x7f) {
        out.push(b'"');
        for b in name.bytes() {
            if b == b'"' || b == b'\\' {
                out.push(b'\\');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        literal(out, name.as_bytes());
    }
}

/// A parenthesized list of flags.
pub fn flags(out: &mut Vec<u8>, flags: &[String]) {
    out.push(b'(');
    for (i, f) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(f.as_bytes());
    }
    out.push(b')');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(f: impl Fn(&mut Vec<u8>)) -> String {
        let mut v = Vec::new();
        f(&mut v);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn strings() {
        assert_eq!(w(|o| string(o, b"a \"b\" \\")), "\"a \\\"b\\\" \\\\\"");
        assert_eq!(w(|o| string(o, b"line\r\n")), "{6}\r\nline\r\n");
        assert_eq!(w(|o| string(o, "ü".as_bytes())), "{2}\r\nü");
        assert_eq!(w(|o| nstring(o, None)), "NIL");
        assert_eq!(w(|o| mailbox(o, "INBOX")), "INBOX");
        assert_eq!(w(|o| mailbox(o, "Sent Items")), "\"Sent Items\"");
        assert_eq!(w(|o| mailbox(o, "Entwürfe")), "\"Entwürfe\"");
        assert_eq!(w(|o| mailbox(o, "")), "\"\"");
        assert_eq!(
            w(|o| flags(o, &["\\Seen".into(), "$X".into()])),
            "(\\Seen $X)"
        );
    }
}
