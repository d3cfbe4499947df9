//! Modified UTF-7 mailbox names (RFC 3501 §5.1.3), spoken by IMAP4rev1 clients; IMAP4rev2
//! (RFC 9051 §5.1) and UTF8=ACCEPT clients use UTF-8. The store keeps UTF-8.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,";

/// UTF-8 → modified UTF-7.
pub fn encode(name: &str) -> String {
    let mut out = String::new();
    let mut pending: Vec<u16> = Vec::new();
    let flush = |pending: &mut Vec<u16>, out: &mut String| {
        if pending.is_empty() {
            return;
        }
        out.push('&');
        let bytes: Vec<u8> = pending.iter().flat_map(|u| u.to_be_bytes()).collect();
        let mut bits = 0u32;
        let mut n = 0;
        for b in bytes {
            bits = bits << 8 | u32::from(b);
            n += 8;
            while n >= 6 {
                n -= 6;
                out.push(char::from(ALPHABET[(bits >> n) as usize & 63]));
            }
        }
        if n > 0 {
            out.push(char::from(ALPHABET[(bits << (6 - n)) as usize & 63]));
        }
        out.push('-');
        pending.clear();
    };
    for c in name.chars() {
        if (' '..='~').contains(&c) {
            flush(&mut pending, &mut out);
            out.push(c);
            if c == '&' {
                out.push('-');
            }
        } else {
            let mut buf = [0u16; 2];
            pending.extend_from_slice(c.encode_utf16(&mut buf));
        }
    }
    flush(&mut pending, &mut out);
    out
}

/// Modified UTF-7 → UTF-8; `None` if it is not valid modified UTF-7.
pub fn decode(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut rest = name;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let after = &rest[amp + 1..];
        let end = after.find('-')?;
        let chunk = &after[..end];
        rest = &after[end + 1..];
        if chunk.is_empty() {
            out.push('&');
            continue;
        }
        let mut bits = 0u32;
        let mut n = 0;
        let mut units = Vec::new();
        let mut bytes = Vec::new();
        for c in chunk.bytes() {
            let v = ALPHABET.iter().position(|&a| a == c)? as u32;
            bits = bits << 6 | v;
            n += 6;
            if n >= 8 {
                n -= 8;
                bytes.push((bits >> n) as u8);
            }
        }
        if bytes.len() % 2 != 0 || bits & ((1 << n) - 1) != 0 {
            return None;
        }
        for pair in bytes.chunks(2) {
            units.push(u16::from_be_bytes([pair[0], pair[1]]));
        }
        let decoded = String::from_utf16(&units).ok()?;
        // Printable ASCII must not be encoded (RFC 3501 §5.1.3).
        if decoded.chars().any(|c| (' '..='~').contains(&c)) {
            return None;
        }
        out.push_str(&decoded);
    }
    if rest.chars().any(|c| !(' '..='~').contains(&c)) {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_examples_and_round_trips() {
        assert_eq!(
            encode("~peter/mail/台北/日本語"),
            "~peter/mail/&U,BTFw-/&ZeVnLIqe-"
        );
        assert_eq!(
            decode("~peter/mail/&U,BTFw-/&ZeVnLIqe-").as_deref(),
            Some("~peter/mail/台北/日本語")
        );
        assert_eq!(encode("Entwürfe & Co"), "Entw&APw-rfe &- Co");
        for s in ["INBOX", "Gelöschte Elemente", "😀/x", "&", "a&b", "ÄÖÜ"] {
            assert_eq!(decode(&encode(s)).as_deref(), Some(s), "{s}");
        }
        for bad in ["&", "&AGE-", "&Jjo!-", "ü", "&U,BTF-"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
