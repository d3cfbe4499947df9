//! Request routing: a pure function from request to response.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

/// What the handlers need to know about this server.
#[derive(Debug, Clone)]
pub struct Site {
    pub hostname: String,
}

/// Answers one request.
pub fn route<B>(site: &Site, req: &Request<B>) -> Response<Full<Bytes>> {
    let is_read = matches!(*req.method(), Method::GET | Method::HEAD);
    let (status, body): (StatusCode, String) = match req.uri().path() {
        _ if !is_read => (
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served here\n".into(),
        ),
        "/" => (
            StatusCode::OK,
            format!(
                "Kurier {} on {}\n",
                env!("CARGO_PKG_VERSION"),
                site.hostname
            ),
        ),
        "/healthz" => (StatusCode::OK, "ok\n".into()),
        _ => (StatusCode::NOT_FOUND, "not found\n".into()),
    };
    let body = if *req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::STRICT_TRANSPORT_SECURITY,
        HeaderValue::from_static("max-age=31536000"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if status == StatusCode::METHOD_NOT_ALLOWED {
        h.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(method: Method, path: &str) -> Response<Full<Bytes>> {
        let site = Site {
            hostname: "mail.example.test".into(),
        };
        route(
            &site,
            &Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("request"),
        )
    }

    #[test]
    fn status_page_health_and_errors() {
        assert_eq!(get(Method::GET, "/").status(), StatusCode::OK);
        assert_eq!(get(Method::GET, "/healthz").status(), StatusCode::OK);
        assert_eq!(get(Method::GET, "/nope").status(), StatusCode::NOT_FOUND);
        let r = get(Method::POST, "/");
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[header::ALLOW], "GET, HEAD");
        assert!(
            get(Method::HEAD, "/")
                .headers()
                .contains_key(header::STRICT_TRANSPORT_SECURITY)
        );
    }
}
