//! Responses of the administration with the headers every one of them carries (a strict
//! Content-Security-Policy: no inline script or style, framing refused, no referrer, HSTS, no
//! caching), and the decoding of form bodies and query strings.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Response, StatusCode};

/// Scripts and styles only from our own files (one script: the copy buttons), never inline;
/// forms only to us, never in a frame.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A response with the administration's headers.
pub fn response(
    status: StatusCode,
    content_type: &'static str,
    body: Vec<u8>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

pub fn html(status: StatusCode, page: maud::Markup) -> Response<Full<Bytes>> {
    response(
        status,
        "text/html; charset=utf-8",
        page.into_string().into_bytes(),
    )
}

pub fn json(status: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
    body.push(b'\n');
    response(status, "application/json", body)
}

/// `{"error": message}` with `status`.
pub fn json_error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &serde_json::json!({ "error": message }))
}

/// 303 to `location` (after a form), with `cookie` set if given.
pub fn see_other(location: &str, cookie: Option<&str>) -> Response<Full<Bytes>> {
    let mut r = response(
        StatusCode::SEE_OTHER,
        "text/plain; charset=utf-8",
        Vec::new(),
    );
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    if let Some(c) = cookie.and_then(|c| HeaderValue::from_str(c).ok()) {
        r.headers_mut().insert(header::SET_COOKIE, c);
    }
    r
}

/// The pairs of an `application/x-www-form-urlencoded` body or query string, decoded; a pair
/// that is not UTF-8 is left out.
pub fn form(text: &[u8]) -> Vec<(String, String)> {
    text.split(|b| *b == b'&')
        .filter(|p| !p.is_empty())
        .filter_map(|p| {
            let (k, v) = match p.iter().position(|b| *b == b'=') {
                Some(i) => (&p[..i], &p[i + 1..]),
                None => (p, &p[p.len()..]),
            };
            Some((decode(k)?, decode(v)?))
        })
        .collect()
}

/// The first value of `name` in `pairs`.
pub fn field<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < s.len() => {
                let h = std::str::from_utf8(&s[i + 1..i + 3]).ok()?;
                out.push(u8::from_str_radix(h, 16).ok()?);
                i += 2;
            }
            b'%' => return None,
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// `s` for a query string value.
pub fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode_and_bad_escapes_are_dropped() {
        let f = form(b"a=1&name=J%C3%BCrgen+M&empty=&flag&bad=%zz&cut=%4");
        assert_eq!(field(&f, "a"), Some("1"));
        assert_eq!(field(&f, "name"), Some("Jürgen M"));
        assert_eq!(field(&f, "empty"), Some(""));
        assert_eq!(field(&f, "flag"), Some(""));
        assert_eq!(field(&f, "bad"), None);
        assert_eq!(field(&f, "cut"), None);
        assert_eq!(encode("a b&c@d"), "a%20b%26c@d");
        assert_eq!(field(&form(encode("<x>&y").as_bytes()), "<x>"), None);
    }

    #[test]
    fn every_response_has_the_security_headers() {
        let r = response(StatusCode::OK, "text/plain", Vec::new());
        for h in [
            header::CONTENT_SECURITY_POLICY,
            header::X_FRAME_OPTIONS,
            header::STRICT_TRANSPORT_SECURITY,
            header::REFERRER_POLICY,
            header::X_CONTENT_TYPE_OPTIONS,
        ] {
            assert!(r.headers().contains_key(&h), "{h}");
        }
        assert!(CSP.contains("default-src 'none'") && CSP.contains("script-src 'self';"));
        assert!(
            !CSP.contains("unsafe"),
            "no inline script or style, no eval"
        );
    }
}
