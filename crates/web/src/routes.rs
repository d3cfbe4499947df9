//! Request routing: a pure function from request to response.

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use kurier_policy::sts::StsPolicy;

use crate::clientconfig::{self, ClientServices};
use std::sync::RwLock;

/// What the handlers need to know about this server.
#[derive(Debug, Default)]
pub struct Site {
    pub hostname: String,
    /// Our MTA-STS policy, if we publish one (RFC 8461 §3.2).
    pub mta_sts: Option<StsHosting>,
    /// The domains we host (refreshed from the store by the binary): `mta-sts.<domain>` serves
    /// the policy for each.
    pub domains: RwLock<Vec<String>>,
    /// Client autoconfiguration (autoconfig, Autodiscover), if enabled.
    pub client_services: Option<ClientServices>,
    /// Counters served at `/metrics` (Prometheus text format) to loopback clients only.
    pub metrics: Option<std::sync::Arc<dyn MetricsSource>>,
    /// HTTP-01 responses of the ACME client, answered on the plain-HTTP listener.
    pub acme: Option<std::sync::Arc<kurier_acme::Http01Tokens>>,
    /// The web administration (`None`: `/admin` and `/api` are not served).
    pub admin: Option<std::sync::Arc<crate::admin::Admin>>,
}

/// Something that can render its counters in the Prometheus text format.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    fn render(&self) -> String;
}

/// The policy file we serve and its id for the `_mta-sts` TXT record.
#[derive(Debug, Clone)]
pub struct StsHosting {
    pub text: String,
    /// Changes whenever `text` does (STS-1): 20 hex digits of its SHA-256.
    pub id: String,
}

impl StsHosting {
    pub fn new(policy: &StsPolicy) -> StsHosting {
        let text = policy.to_text();
        let digest = openssl::sha::sha256(text.as_bytes());
        let id = digest[..10].iter().map(|b| format!("{b:02x}")).collect();
        StsHosting { text, id }
    }
}

impl Site {
    pub fn set_domains(&self, domains: Vec<String>) {
        if let Ok(mut d) = self.domains.write() {
            *d = domains;
        }
    }

    /// The policy, if `host` (the Host header) is `mta-sts.<a domain we host>`.
    fn sts_policy_for(&self, host: &str) -> Option<&StsHosting> {
        let sts = self.mta_sts.as_ref()?;
        self.hosts(host.strip_prefix("mta-sts.")?).then_some(sts)
    }

    fn hosts(&self, domain: &str) -> bool {
        self.domains
            .read()
            .is_ok_and(|d| d.iter().any(|x| x.eq_ignore_ascii_case(domain)))
    }

    /// Thunderbird's file for `autoconfig.<domain>` or `<domain>` (its `.well-known` path).
    fn autoconfig(&self, host: &str) -> Option<String> {
        let services = self.client_services.as_ref()?;
        let domain = host.strip_prefix("autoconfig.").unwrap_or(host);
        self.hosts(domain)
            .then(|| clientconfig::thunderbird(domain, services))
    }

    /// The Autodiscover answer for the address in `body`, if its domain is ours.
    fn autodiscover(&self, body: &[u8]) -> Option<String> {
        let services = self.client_services.as_ref()?;
        let email = clientconfig::autodiscover_email(body)?;
        let domain = email.rsplit_once('@')?.1;
        self.hosts(domain)
            .then(|| clientconfig::autodiscover(&email, services))
    }
}

/// The host part of the Host header (or the URI's authority), lower case, without the port.
fn request_host<B>(req: &Request<B>) -> String {
    let raw = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().host())
        .unwrap_or("");
    // `[v6]:port` or `name:port`.
    let host = match raw.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => raw.split(':').next().unwrap_or(""),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
}

/// Answers one request with its `body` (read only for POSTs); `local`: the client is on this
/// machine (loopback).
pub fn route<B>(site: &Site, req: &Request<B>, body: &[u8], local: bool) -> Response<Full<Bytes>> {
    let is_read = matches!(*req.method(), Method::GET | Method::HEAD);
    let host = request_host(req);
    let path = req.uri().path();
    // Outlook asks with any capitalization, by POST (and probes with GET).
    if path.eq_ignore_ascii_case("/autodiscover/autodiscover.xml") {
        return match site.autodiscover(body) {
            Some(xml) if *req.method() == Method::POST => {
                text_response(req, StatusCode::OK, "application/xml; charset=utf-8", xml)
            }
            _ => text_response(
                req,
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "POST an Autodiscover request for an address of a domain hosted here\n".into(),
            ),
        };
    }
    let (status, text): (StatusCode, String) = match path {
        _ if !is_read => (
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET and HEAD are served here\n".into(),
        ),
        // RFC 8461 §3.3: 200, text/plain, no redirect.
        "/.well-known/mta-sts.txt" => match site.sts_policy_for(&host) {
            Some(sts) => return text_response(req, StatusCode::OK, "text/plain", sts.text.clone()),
            None => (
                StatusCode::NOT_FOUND,
                "no MTA-STS policy for this host\n".into(),
            ),
        },
        "/" => (
            StatusCode::OK,
            format!(
                "Kurier {} on {}\n",
                env!("CARGO_PKG_VERSION"),
                site.hostname
            ),
        ),
        "/healthz" => (StatusCode::OK, "ok\n".into()),
        // Thunderbird (TR-03108 MUA-6): autoconfig.<domain>, or <domain>'s .well-known path.
        "/mail/config-v1.1.xml" | "/.well-known/autoconfig/mail/config-v1.1.xml" => {
            match site.autoconfig(&host) {
                Some(xml) => {
                    return text_response(
                        req,
                        StatusCode::OK,
                        "application/xml; charset=utf-8",
                        xml,
                    );
                }
                None => (
                    StatusCode::NOT_FOUND,
                    "no configuration for this host\n".into(),
                ),
            }
        }
        "/metrics" => match (&site.metrics, local) {
            (Some(m), true) => {
                return text_response(req, StatusCode::OK, "text/plain; version=0.0.4", m.render());
            }
            (Some(_), false) => (
                StatusCode::FORBIDDEN,
                "metrics are for this machine only\n".into(),
            ),
            (None, _) => (StatusCode::NOT_FOUND, "not found\n".into()),
        },
        _ => (StatusCode::NOT_FOUND, "not found\n".into()),
    };
    text_response(req, status, "text/plain; charset=utf-8", text)
}

/// The answer of the plain-HTTP listener: 301 to `https://<host>[:port]<path>`.
pub fn redirect<B>(site: &Site, req: &Request<B>, https_port: u16) -> Response<Full<Bytes>> {
    // RFC 8555 §8.3: the CA fetches the key authorization over plain HTTP on port 80.
    if let (Some(tokens), Some(token)) = (
        &site.acme,
        req.uri()
            .path()
            .strip_prefix("/.well-known/acme-challenge/"),
    ) && matches!(*req.method(), Method::GET | Method::HEAD)
    {
        return match tokens.get(token) {
            Some(ka) => text_response(req, StatusCode::OK, "application/octet-stream", ka),
            None => text_response(
                req,
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "no such ACME challenge\n".into(),
            ),
        };
    }
    let mut host = request_host(req);
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        host = site.hostname.clone();
    }
    let port = if https_port == 443 {
        String::new()
    } else {
        format!(":{https_port}")
    };
    let path = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = format!("https://{host}{port}{path}");
    let mut resp = text_response(
        req,
        StatusCode::MOVED_PERMANENTLY,
        "text/plain; charset=utf-8",
        format!("moved to {location}\n"),
    );
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp
}

fn text_response<B>(
    req: &Request<B>,
    status: StatusCode,
    content_type: &'static str,
    body: String,
) -> Response<Full<Bytes>> {
    let body = if *req.method() == Method::HEAD {
        Bytes::new()
    } else {
        Bytes::from(body)
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
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
            ..Site::default()
        };
        route(
            &site,
            &Request::builder()
                .method(method)
                .uri(path)
                .body(())
                .expect("request"),
            b"",
            false,
        )
    }

    fn sts_site() -> Site {
        let policy = kurier_policy::sts::parse_policy(
            "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 604800\n",
        )
        .expect("policy");
        let site = Site {
            hostname: "mail.example.test".into(),
            mta_sts: Some(StsHosting::new(&policy)),
            ..Site::default()
        };
        site.set_domains(vec!["example.test".into()]);
        site
    }

    fn get_at(site: &Site, host: &str, path: &str) -> Response<Full<Bytes>> {
        route(
            site,
            &Request::builder()
                .uri(path)
                .header(header::HOST, host)
                .body(())
                .expect("request"),
            b"",
            false,
        )
    }

    #[test]
    fn sts1_the_policy_is_served_for_hosted_domains_only() {
        let site = sts_site();
        for host in [
            "mta-sts.example.test",
            "MTA-STS.example.test:443",
            "mta-sts.example.test.",
        ] {
            let r = get_at(&site, host, "/.well-known/mta-sts.txt");
            assert_eq!(r.status(), StatusCode::OK, "{host}");
            assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
        }
        for host in [
            "mta-sts.other.test",
            "example.test",
            "mail.example.test",
            "",
        ] {
            let r = get_at(&site, host, "/.well-known/mta-sts.txt");
            assert_eq!(r.status(), StatusCode::NOT_FOUND, "{host}");
        }
        let id = &site.mta_sts.as_ref().expect("sts").id;
        assert_eq!(id.len(), 20);
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
        let other = StsHosting::new(
            &kurier_policy::sts::parse_policy(
                "version: STSv1\nmode: testing\nmx: mail.example.test\nmax_age: 604800\n",
            )
            .expect("policy"),
        );
        assert_ne!(&other.id, id, "a new policy gets a new id");
    }

    #[test]
    fn web1_plain_http_only_redirects() {
        let site = sts_site();
        let r = redirect(
            &site,
            &Request::builder()
                .uri("/.well-known/mta-sts.txt?x=1")
                .header(header::HOST, "mta-sts.example.test:80")
                .body(())
                .expect("request"),
            443,
        );
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://mta-sts.example.test/.well-known/mta-sts.txt?x=1"
        );
        let r = redirect(
            &site,
            &Request::builder()
                .uri("/")
                .header(header::HOST, "evil\"host")
                .body(())
                .expect("request"),
            8443,
        );
        assert_eq!(
            r.headers()[header::LOCATION],
            "https://mail.example.test:8443/"
        );
    }

    /// RFC 8555 §8.3: the plain-HTTP listener answers a provisioned token with its key
    /// authorization (no redirect), an unknown one with 404; everything else still redirects.
    #[test]
    fn acme_http01_answers_on_plain_http() {
        let tokens = std::sync::Arc::new(kurier_acme::Http01Tokens::default());
        assert!(tokens.insert("tok_123", "tok_123.thumb"));
        let site = Site {
            hostname: "mail.example.test".into(),
            acme: Some(tokens),
            ..Site::default()
        };
        let get = |path: &str| {
            redirect(
                &site,
                &Request::builder().uri(path).body(()).expect("request"),
                443,
            )
        };
        let r = get("/.well-known/acme-challenge/tok_123");
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            r.headers()[header::CONTENT_TYPE],
            "application/octet-stream"
        );
        assert_eq!(
            get("/.well-known/acme-challenge/nope").status(),
            StatusCode::NOT_FOUND
        );
        assert_eq!(get("/other").status(), StatusCode::MOVED_PERMANENTLY);
        let without = Site::default();
        let r = redirect(
            &without,
            &Request::builder()
                .uri("/.well-known/acme-challenge/tok_123")
                .body(())
                .expect("request"),
            443,
        );
        assert_eq!(r.status(), StatusCode::MOVED_PERMANENTLY);
    }

    #[derive(Debug)]
    struct Two;
    impl MetricsSource for Two {
        fn render(&self) -> String {
            "kurier_test_total 2\n".into()
        }
    }

    #[test]
    fn metrics_only_for_loopback_clients() {
        let site = Site {
            metrics: Some(std::sync::Arc::new(Two)),
            ..Site::default()
        };
        let req = Request::builder()
            .uri("/metrics")
            .body(())
            .expect("request");
        assert_eq!(route(&site, &req, b"", true).status(), StatusCode::OK);
        assert_eq!(
            route(&site, &req, b"", false).status(),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            route(&Site::default(), &req, b"", true).status(),
            StatusCode::NOT_FOUND
        );
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
