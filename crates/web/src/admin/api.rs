//! The JSON API (`/api/v1/…`): every operation of the pages, for scripts and the CLI. Each
//! route is a row of `ROUTES` — method, path pattern, who may call it — from which both the
//! dispatcher and the test against `openapi.json` (the API's documentation, beside this
//! crate) work, so the two cannot drift apart. Errors are `{"error": "…"}` in words: 400 for
//! input that cannot be taken (a bad address, a domain hosted already, a body over 16 KiB),
//! 401 without valid credentials, 403 for a role that may not, or a cookie request without
//! its CSRF token, 404 for what does not exist.

use std::net::IpAddr;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use kurier_access::LoginOutcome;
use kurier_store::{PolicyType, ResultType, StoreError, TlsOutcome, UnixTime};
use serde_json::{Value, json};

use super::auth::{self, Principal, Role};
use super::{Admin, http};

/// Who may call a route.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone (signing in).
    Public,
    /// Any signed-in account.
    Account,
    /// Domain administrators and admins (each sees what it administers).
    DomainAdmin,
    /// Server administrators only.
    Admin,
}

/// The API: method, path (`{x}` is one segment), access.
pub const ROUTES: &[(&str, &str, Access)] = &[
    ("POST", "/api/v1/session", Access::Public),
    ("DELETE", "/api/v1/session", Access::Account),
    ("GET", "/api/v1/me", Access::Account),
    ("POST", "/api/v1/me/password", Access::Account),
    ("GET", "/api/v1/me/app-passwords", Access::Account),
    ("POST", "/api/v1/me/app-passwords", Access::Account),
    ("DELETE", "/api/v1/me/app-passwords/{name}", Access::Account),
    ("GET", "/api/v1/tokens", Access::Account),
    ("POST", "/api/v1/tokens", Access::Account),
    ("DELETE", "/api/v1/tokens/{name}", Access::Account),
    ("GET", "/api/v1/status", Access::Admin),
    ("GET", "/api/v1/domains", Access::DomainAdmin),
    ("POST", "/api/v1/domains", Access::Admin),
    ("DELETE", "/api/v1/domains/{name}", Access::Admin),
    ("GET", "/api/v1/domains/{name}/records", Access::DomainAdmin),
    ("POST", "/api/v1/domains/{name}/check", Access::DomainAdmin),
    ("GET", "/api/v1/accounts", Access::DomainAdmin),
    ("POST", "/api/v1/accounts", Access::DomainAdmin),
    ("PATCH", "/api/v1/accounts/{address}", Access::DomainAdmin),
    ("DELETE", "/api/v1/accounts/{address}", Access::DomainAdmin),
    ("GET", "/api/v1/aliases", Access::DomainAdmin),
    ("POST", "/api/v1/aliases", Access::DomainAdmin),
    ("DELETE", "/api/v1/aliases/{address}", Access::DomainAdmin),
    ("GET", "/api/v1/queue", Access::Admin),
    ("GET", "/api/v1/queue/{id}", Access::Admin),
    ("POST", "/api/v1/queue/{id}/retry", Access::Admin),
    ("POST", "/api/v1/queue/{id}/bounce", Access::Admin),
    ("DELETE", "/api/v1/queue/{id}", Access::Admin),
    ("GET", "/api/v1/tls", Access::Admin),
    ("GET", "/api/v1/reports", Access::Admin),
];

/// The route of `method` and `path` and the values of its `{…}` segments.
pub fn find(method: &Method, path: &str) -> Option<(usize, Vec<String>)> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    ROUTES.iter().enumerate().find_map(|(i, (m, pattern, _))| {
        if *m != method.as_str() {
            return None;
        }
        let want: Vec<&str> = pattern.split('/').collect();
        if want.len() != segments.len() {
            return None;
        }
        let mut values = Vec::new();
        for (w, s) in want.iter().zip(&segments) {
            if w.starts_with('{') {
                values.push(percent_decoded(s)?);
            } else if w != s {
                return None;
            }
        }
        Some((i, values))
    })
}

fn percent_decoded(s: &str) -> Option<String> {
    let pairs = http::form(format!("v={s}").as_bytes());
    http::field(&pairs, "v")
        .map(str::to_string)
        .filter(|v| !v.is_empty())
}

pub async fn handle(
    admin: &Admin,
    req: &Request<()>,
    body: &[u8],
    peer: IpAddr,
    now: UnixTime,
) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let Some((route, args)) = find(req.method(), path) else {
        let known = ROUTES.iter().any(|(_, p, _)| find_path(p, path));
        return if known {
            http::json_error(
                StatusCode::METHOD_NOT_ALLOWED,
                "this method is not served here",
            )
        } else {
            http::json_error(StatusCode::NOT_FOUND, "no such API route; see openapi.json")
        };
    };
    let (_, pattern, access) = ROUTES[route];
    let input: Value = if body.is_empty() {
        Value::Null
    } else {
        match serde_json::from_slice(body) {
            Ok(v) => v,
            Err(e) => {
                return http::json_error(
                    StatusCode::BAD_REQUEST,
                    &format!("the body is not JSON: {e}"),
                );
            }
        }
    };
    if access == Access::Public {
        return sign_in(admin, &input, peer, now).await;
    }
    let p = match auth::principal(&*admin.store, req.headers(), now).await {
        Ok(Some(p)) => p,
        Ok(None) => {
            return http::json_error(
                StatusCode::UNAUTHORIZED,
                "sign in first (POST /api/v1/session) or send Authorization: Bearer with an API token",
            );
        }
        Err(e) => return store_error(&e),
    };
    let allowed = match access {
        Access::Public | Access::Account => true,
        Access::DomainAdmin => p.role() != Role::User,
        Access::Admin => p.role() == Role::Admin,
    };
    if !allowed {
        return http::json_error(StatusCode::FORBIDDEN, "your account's role may not do this");
    }
    if *req.method() != Method::GET {
        let given = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        if !p.csrf_ok(given) {
            return http::json_error(
                StatusCode::FORBIDDEN,
                "a request with the session cookie needs its X-CSRF-Token header",
            );
        }
    }
    let query = http::form(req.uri().query().unwrap_or("").as_bytes());
    let text = |k: &str| {
        input
            .get(k)
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let result: Result<(StatusCode, Value), Failure> = match (req.method().as_str(), pattern) {
        ("DELETE", "/api/v1/session") => {
            if let Some((id, _)) = &p.session {
                let _ = admin.store.delete_web_session(id).await;
            }
            let mut r = http::json(StatusCode::OK, &json!({"signed_out": true}));
            if let Ok(v) = auth::session_cookie(None, 0).parse() {
                r.headers_mut().insert(hyper::header::SET_COOKIE, v);
            }
            return r;
        }
        ("GET", "/api/v1/me") => Ok((StatusCode::OK, me(&p))),
        ("POST", "/api/v1/me/password") => {
            change_own_password(admin, &p, &text("current"), &text("new"))
                .await
                .map(|m| (StatusCode::OK, json!({"done": m})))
                .map_err(Failure::Input)
        }
        ("GET", "/api/v1/me/app-passwords") => admin
            .store
            .app_passwords(p.account.id)
            .await
            .map_err(Failure::from)
            .map(|l| {
                let list: Vec<Value> = l.iter().map(|(n, c)| json!({"name": n, "created": c})).collect();
                (StatusCode::OK, json!(list))
            }),
        ("POST", "/api/v1/me/app-passwords") => add_app_password(admin, &p, &text("name"), now)
            .await
            .map(|pw| (StatusCode::CREATED, json!({"name": text("name").trim(), "password": pw}))),
        ("DELETE", "/api/v1/me/app-passwords/{name}") => admin
            .store
            .delete_app_password(p.account.id, &arg(0))
            .await
            .map(|_| (StatusCode::OK, json!({"deleted": arg(0)})))
            .map_err(Failure::from),
        ("GET", "/api/v1/tokens") => admin
            .store
            .api_tokens(p.account.id)
            .await
            .map_err(Failure::from)
            .map(|t| {
                let list: Vec<Value> = t
                    .iter()
                    .map(|t| json!({"name": t.name, "created": t.created, "expires": t.expires}))
                    .collect();
                (StatusCode::OK, json!(list))
            }),
        ("POST", "/api/v1/tokens") => {
            add_token(
                admin,
                &p,
                &text("name"),
                input.get("days").and_then(Value::as_i64),
                now,
            )
            .await
        }
        ("DELETE", "/api/v1/tokens/{name}") => admin
            .store
            .delete_api_token(p.account.id, &arg(0))
            .await
            .map(|_| (StatusCode::OK, json!({"deleted": arg(0)})))
            .map_err(Failure::from),
        ("GET", "/api/v1/status") => admin.status(now).await.map_err(Failure::from).map(|s| {
            let tls: serde_json::Map<String, Value> = super::pages::TLS_OUTCOMES
                .iter()
                .zip(s.tls)
                .map(|(k, n)| ((*k).to_string(), json!(n)))
                .collect();
            (
                StatusCode::OK,
                json!({"hostname": s.hostname, "version": s.version, "domains": s.domains,
                       "accounts": s.accounts, "queued": s.queued, "deferred": s.deferred,
                       "tls_last_24h": tls,
                       "listeners": s.listeners.iter().map(|(w, a)| json!({"service": w, "address": a})).collect::<Vec<_>>(),
                       "certificates": s.certificates.iter().map(|(n, at)| json!({"names": n, "not_after": at})).collect::<Vec<_>>(),
                       "dnssec_validator": s.validator.as_ref().map(|(ok, words)| json!({"working": ok, "detail": words})),
                       "dane_tlsa_match": s.dane}),
            )
        }),
        ("GET", "/api/v1/domains") => admin.domain_list(&p).await.map_err(Failure::from).map(|d| {
            let list: Vec<Value> = d
                .iter()
                .map(|(name, n)| json!({"name": name, "accounts": n}))
                .collect();
            (StatusCode::OK, json!(list))
        }),
        ("POST", "/api/v1/domains") => add_domain(admin, &text("name"))
            .await
            .map(|d| (StatusCode::CREATED, json!({"name": d})))
            .map_err(Failure::Input),
        ("DELETE", "/api/v1/domains/{name}") => delete_domain(admin, &arg(0))
            .await
            .map(|_| (StatusCode::OK, json!({"deleted": arg(0)})))
            .map_err(Failure::Input),
        ("GET", "/api/v1/domains/{name}/records") | ("POST", "/api/v1/domains/{name}/check") => {
            let name = arg(0).to_ascii_lowercase();
            if !p.manages(&name) {
                Err(Failure::Forbidden)
            } else {
                domain_facts(admin, &name, pattern.ends_with("check")).await
            }
        }
        ("GET", "/api/v1/accounts") => {
            let domain = http::field(&query, "domain");
            match domain {
                Some(d) if !p.manages(d) => Err(Failure::Forbidden),
                _ => admin.account_list(&p, domain).await.map_err(Failure::from).map(|a| {
                    let list: Vec<Value> = a
                        .iter()
                        .map(|(a, used)| json!({"address": a.address, "enabled": a.enabled, "quota": a.quota, "used": used}))
                        .collect();
                    (StatusCode::OK, json!(list))
                }),
            }
        }
        ("POST", "/api/v1/accounts") => {
            let quota = input.get("quota").map(|q| match q {
                Value::Number(n) => n.to_string(),
                other => other.as_str().unwrap_or("").to_string(),
            });
            add_account(
                admin,
                &p,
                &text("address"),
                &text("password"),
                quota.as_deref().unwrap_or(""),
            )
            .await
            .map(|a| (StatusCode::CREATED, json!({"address": a})))
            .map_err(Failure::Input)
        }
        ("PATCH", "/api/v1/accounts/{address}") => patch_account(admin, &p, &arg(0), &input).await,
        ("DELETE", "/api/v1/accounts/{address}") => {
            let address = arg(0);
            if !p.manages(domain_of(&address)) {
                Err(Failure::Forbidden)
            } else {
                admin
                    .store
                    .delete_account(&address)
                    .await
                    .map(|_| (StatusCode::OK, json!({"deleted": address})))
                    .map_err(Failure::from)
            }
        }
        ("GET", "/api/v1/aliases") => admin
            .store
            .aliases(http::field(&query, "domain"))
            .await
            .map_err(Failure::from)
            .map(|a| {
                let list: Vec<Value> = a
                    .iter()
                    .filter(|a| p.manages(&a.domain))
                    .map(|a| json!({"address": a.address, "targets": a.targets}))
                    .collect();
                (StatusCode::OK, json!(list))
            }),
        ("POST", "/api/v1/aliases") => {
            let address = text("address");
            let targets: Vec<String> = input
                .get("targets")
                .and_then(Value::as_array)
                .map(|t| {
                    t.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default();
            add_alias(admin, &p, &address, &targets).await.map(|a| {
                (
                    StatusCode::CREATED,
                    json!({"address": a.address, "targets": a.targets}),
                )
            })
        }
        ("DELETE", "/api/v1/aliases/{address}") => {
            let address = arg(0);
            if !p.manages(domain_of(&address)) {
                Err(Failure::Forbidden)
            } else {
                admin
                    .store
                    .delete_alias(&address)
                    .await
                    .map(|_| (StatusCode::OK, json!({"deleted": address})))
                    .map_err(Failure::from)
            }
        }
        ("GET", "/api/v1/queue") => admin.store.queue().await.map_err(Failure::from).map(|q| {
            let list: Vec<Value> = q.iter().map(|e| queue_entry(e, now)).collect();
            (StatusCode::OK, json!(list))
        }),
        ("GET", "/api/v1/queue/{id}") => match arg(0).parse::<i64>() {
            Ok(id) => queue_entry_with_attempts(admin, id, now).await,
            Err(_) => Err(Failure::NotFound("queue entry".into())),
        },
        ("POST", "/api/v1/queue/{id}/retry") | ("DELETE", "/api/v1/queue/{id}") => {
            match arg(0).parse::<i64>() {
                Ok(id) if req.method() == Method::POST => admin
                    .store
                    .retry_queue_entry(id, now)
                    .await
                    .map(|_| (StatusCode::OK, json!({"retry": id})))
                    .map_err(Failure::from),
                Ok(id) => admin
                    .store
                    .delete_queue_entry(id, now)
                    .await
                    .map(|_| (StatusCode::OK, json!({"deleted": id})))
                    .map_err(Failure::from),
                Err(_) => Err(Failure::NotFound("queue entry".into())),
            }
        }
        ("POST", "/api/v1/queue/{id}/bounce") => match arg(0).parse::<i64>() {
            Ok(id) => admin
                .bounce(&p, id, now)
                .await
                .map(|n| (StatusCode::OK, json!({"returned": id, "recipients": n})))
                .map_err(|m| {
                    if m.ends_with("not found") {
                        Failure::NotFound(format!("queue entry {id}"))
                    } else {
                        Failure::Input(m)
                    }
                }),
            Err(_) => Err(Failure::NotFound("queue entry".into())),
        },
        ("GET", "/api/v1/tls") => {
            let days = http::field(&query, "days")
                .and_then(|d| d.parse::<i64>().ok())
                .unwrap_or(7)
                .clamp(1, 31);
            tls_days(admin, now, days).await
        }
        ("GET", "/api/v1/reports") => {
            let days = http::field(&query, "days").and_then(|d| d.parse::<i64>().ok()).unwrap_or(30).clamp(1, 366);
            admin.reports(now, days).await.map_err(Failure::from).map(|r| {
                let received: Vec<Value> = r
                    .received
                    .iter()
                    .map(|((domain, org, day), t)| json!({"day": day, "reporter": org, "domain": domain,
                        "reports": t.reports, "successful": t.successful, "failed": t.failed, "failures": t.failures}))
                    .collect();
                let sent = |l: &[(String, i64, String, i64)]| -> Vec<Value> {
                    l.iter().map(|(d, day, id, at)| json!({"domain": d, "day": day, "report_id": id, "sent": at})).collect()
                };
                let dmarc: Vec<Value> = r
                    .dmarc_received
                    .iter()
                    .map(|(d, t)| {
                        let sources: Vec<Value> = t
                            .ordered()
                            .into_iter()
                            .map(|(ip, s)| json!({"source": ip, "messages": s.messages, "failed": s.failed,
                                "reporters": s.reporters, "failures": s.seen}))
                            .collect();
                        json!({"domain": d, "reports": t.reports, "messages": t.messages, "failed": t.failed, "sources": sources})
                    })
                    .collect();
                (StatusCode::OK, json!({"days": days, "tlsrpt_received": received, "dmarc_received": dmarc,
                    "tlsrpt_sent": sent(&r.sent_tlsrpt), "dmarc_sent": sent(&r.sent_dmarc)}))
            })
        }
        _ => Err(Failure::NotFound("route".into())),
    };
    match result {
        Ok((status, v)) => http::json(status, &v),
        Err(f) => f.response(),
    }
}

/// Why an API call did not happen.
#[derive(Debug)]
pub enum Failure {
    Input(String),
    Forbidden,
    NotFound(String),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Invalid(_) | StoreError::Exists(_) | StoreError::QuotaExceeded { .. } => {
                Failure::Input(words(&e))
            }
            StoreError::NotFound(what) => Failure::NotFound(what),
            other => Failure::Store(other),
        }
    }
}

impl Failure {
    /// In words, for a page.
    pub fn words(&self) -> String {
        match self {
            Failure::Input(m) => m.clone(),
            Failure::Forbidden => "your account does not administer this".into(),
            Failure::NotFound(what) => format!("{what} not found"),
            Failure::Store(e) => words(e),
        }
    }

    fn response(self) -> Response<Full<Bytes>> {
        match self {
            Failure::Input(m) => http::json_error(StatusCode::BAD_REQUEST, &m),
            Failure::Forbidden => http::json_error(
                StatusCode::FORBIDDEN,
                "your account does not administer this",
            ),
            Failure::NotFound(what) => {
                http::json_error(StatusCode::NOT_FOUND, &format!("{what} not found"))
            }
            Failure::Store(e) => store_error(&e),
        }
    }
}

fn store_error(e: &StoreError) -> Response<Full<Bytes>> {
    tracing::warn!(error = %e, "the web administration cannot use the store");
    http::json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the store is not available right now; try again later",
    )
}

/// A store error in words for people.
pub fn words(e: &StoreError) -> String {
    e.to_string()
}

fn domain_of(address: &str) -> &str {
    address.rsplit_once('@').map_or("", |(_, d)| d)
}

fn me(p: &Principal) -> Value {
    json!({
        "address": p.account.address,
        "role": p.role().as_str(),
        "domains": p.domains(),
        "csrf": p.session.as_ref().map(|(_, c)| c.as_str()),
    })
}

async fn sign_in(
    admin: &Admin,
    input: &Value,
    peer: IpAddr,
    now: UnixTime,
) -> Response<Full<Bytes>> {
    let field = |k: &str| input.get(k).and_then(Value::as_str);
    let (Some(address), Some(password)) = (field("address"), field("password")) else {
        return http::json_error(
            StatusCode::BAD_REQUEST,
            "send {\"address\": …, \"password\": …}",
        );
    };
    match admin.sign_in(peer, address, password, now).await {
        LoginOutcome::Ok((session, secret)) => {
            let p = match auth::principal_of_session(&*admin.store, &session, now).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    return http::json_error(StatusCode::UNAUTHORIZED, "the session ended at once");
                }
                Err(e) => return store_error(&e),
            };
            let mut r = http::json(StatusCode::OK, &me(&p));
            if let Ok(v) = auth::session_cookie(Some(&secret), admin.session_secs).parse() {
                r.headers_mut().insert(hyper::header::SET_COOKIE, v);
            }
            r
        }
        LoginOutcome::Invalid => {
            http::json_error(StatusCode::UNAUTHORIZED, "wrong address or password")
        }
        LoginOutcome::Blocked => http::json_error(
            StatusCode::TOO_MANY_REQUESTS,
            "too many failed sign-ins; try again in a few minutes",
        ),
        LoginOutcome::Unavailable => http::json_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "passwords cannot be checked right now",
        ),
    }
}

async fn add_token(
    admin: &Admin,
    p: &Principal,
    name: &str,
    days: Option<i64>,
    now: UnixTime,
) -> Result<(StatusCode, Value), Failure> {
    let name = name.trim();
    if name.is_empty() || name.len() > 64 || name.chars().any(char::is_control) {
        return Err(Failure::Input(
            "give the token a name of 1 to 64 characters (\"name\": \"backup script\")".into(),
        ));
    }
    if days.is_some_and(|d| !(1..=3650).contains(&d)) {
        return Err(Failure::Input("\"days\" is from 1 to 3650".into()));
    }
    if admin.store.api_tokens(p.account.id).await?.len() >= 100 {
        return Err(Failure::Input(
            "100 API tokens at most; delete one first".into(),
        ));
    }
    let (token, text) = auth::new_token(p.account.clone(), name, now, days);
    admin.store.put_api_token(&token).await?;
    tracing::info!(account = %p.account.address, name, "API token created");
    Ok((
        StatusCode::CREATED,
        json!({"name": name, "token": text, "expires": token.expires}),
    ))
}

/// A hosted domain's records with their live state, or its `kurier check` findings.
async fn domain_facts(
    admin: &Admin,
    name: &str,
    check: bool,
) -> Result<(StatusCode, Value), Failure> {
    admin.store.domain_settings(name).await?;
    let Some(facts) = &admin.facts else {
        return Err(Failure::NotFound("DNS facts on this server".into()));
    };
    if check {
        let lines = facts.check(name).await.map_err(Failure::Input)?;
        let list: Vec<Value> = lines
            .iter()
            .map(|l| json!({"id": l.id, "status": l.status, "subject": l.subject, "evidence": l.evidence, "fix": l.fix}))
            .collect();
        return Ok((StatusCode::OK, json!({"domain": name, "findings": list})));
    }
    let records = facts.records(name).await.map_err(Failure::Input)?;
    let list: Vec<Value> = records
        .iter()
        .map(|r| {
            let found = match &r.seen {
                super::records::Seen::Different(f) => json!(f),
                _ => Value::Null,
            };
            json!({"name": r.name, "type": r.rtype, "value": r.value, "published": r.seen.word(),
                   "found": found, "dnssec": r.dnssec})
        })
        .collect();
    Ok((StatusCode::OK, json!({"domain": name, "records": list})))
}

/// Makes an app password for `p`'s own account; the password, to be shown once.
pub async fn add_app_password(
    admin: &Admin,
    p: &Principal,
    name: &str,
    now: UnixTime,
) -> Result<String, Failure> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 64 || name.chars().any(char::is_control) {
        return Err(Failure::Input(
            "give the app password a name of 1 to 64 characters (\"name\": \"phone\")".into(),
        ));
    }
    if admin.store.app_passwords(p.account.id).await?.len() >= 32 {
        return Err(Failure::Input(
            "32 app passwords at most; delete one first".into(),
        ));
    }
    let password = kurier_store::password::new_app_password()?;
    admin
        .store
        .add_app_password(
            p.account.id,
            name,
            &kurier_store::password::app_secret(&password),
            now,
        )
        .await?;
    tracing::info!(account = %p.account.address, name, "app password made");
    Ok(password)
}

/// Creates an alias of a domain `p` administers, delivering to accounts of its domains.
pub async fn add_alias(
    admin: &Admin,
    p: &Principal,
    address: &str,
    targets: &[String],
) -> Result<kurier_store::Alias, Failure> {
    if !p.manages(domain_of(address)) || targets.iter().any(|t| !p.manages(domain_of(t))) {
        return Err(Failure::Forbidden);
    }
    if targets.is_empty() {
        return Err(Failure::Input(
            "give the alias at least one target (\"targets\": [\"ann@example.org\"])".into(),
        ));
    }
    let t: Vec<&str> = targets.iter().map(String::as_str).collect();
    Ok(admin.store.add_alias(address, &t).await?)
}

/// Hosts `name`; the normalised name.
pub async fn add_domain(admin: &Admin, name: &str) -> Result<String, String> {
    admin
        .store
        .add_domain(name)
        .await
        .map(|d| d.name)
        .map_err(|e| words(&e))
}

pub async fn delete_domain(admin: &Admin, name: &str) -> Result<(), String> {
    admin.store.delete_domain(name).await.map_err(|e| words(&e))
}

/// Creates an account of a domain `p` administers; its normalised address.
pub async fn add_account(
    admin: &Admin,
    p: &Principal,
    address: &str,
    password: &str,
    quota: &str,
) -> Result<String, String> {
    if !p.manages(domain_of(address)) {
        return Err(format!(
            "your account does not administer the domain of {address:?}"
        ));
    }
    if password.chars().count() < 8 {
        return Err("the password needs at least 8 characters".into());
    }
    let quota = match quota.trim() {
        "" => None,
        q => Some(
            kurier_store::parse_size(q)
                .ok_or_else(|| format!("{q:?} is no size (write e.g. 500M or 2G)"))?,
        ),
    };
    let a = admin
        .store
        .add_account(address, password, quota)
        .await
        .map_err(|e| words(&e))?;
    tracing::info!(account = %a.address, by = %p.account.address, "account created in the web administration");
    Ok(a.address)
}

/// One change to an account.
#[derive(Debug, Clone)]
pub enum Change {
    Enabled(bool),
    /// A size, or "" for unlimited.
    Quota(String),
    Password(String),
}

/// Changes an account of a domain `p` administers; what was done, in words.
pub async fn change_account(
    admin: &Admin,
    p: &Principal,
    address: &str,
    change: Change,
) -> Result<String, String> {
    if !p.manages(domain_of(address)) {
        return Err(format!("your account does not administer {address:?}"));
    }
    let s = &admin.store;
    let done = match change {
        Change::Enabled(on) => s
            .set_enabled(address, on)
            .await
            .map(|_| if on { "enabled" } else { "disabled" }.to_string()),
        Change::Quota(q) if q.is_empty() => s
            .set_quota(address, None)
            .await
            .map(|_| "quota removed".to_string()),
        Change::Quota(q) => {
            let Some(bytes) = kurier_store::parse_size(&q) else {
                return Err(format!("{q:?} is no size (write e.g. 500M or 2G)"));
            };
            s.set_quota(address, Some(bytes))
                .await
                .map(|_| format!("quota set to {q}"))
        }
        Change::Password(pw) => {
            if pw.chars().count() < 8 {
                return Err("the password needs at least 8 characters".into());
            }
            s.set_password(address, &pw)
                .await
                .map(|_| "password reset".to_string())
        }
    };
    done.map_err(|e| words(&e))
}

async fn patch_account(
    admin: &Admin,
    p: &Principal,
    address: &str,
    input: &Value,
) -> Result<(StatusCode, Value), Failure> {
    let mut changes = Vec::new();
    if let Some(on) = input.get("enabled") {
        changes.push(Change::Enabled(on.as_bool().ok_or_else(|| {
            Failure::Input("\"enabled\" is true or false".into())
        })?));
    }
    if let Some(q) = input.get("quota") {
        changes.push(Change::Quota(match q {
            Value::Null => String::new(),
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => {
                return Err(Failure::Input(
                    "\"quota\" is a size (\"2G\"), a number of bytes or null".into(),
                ));
            }
        }));
    }
    if let Some(pw) = input.get("password") {
        changes.push(Change::Password(
            pw.as_str()
                .ok_or_else(|| Failure::Input("\"password\" is a string".into()))?
                .to_string(),
        ));
    }
    if changes.is_empty() {
        return Err(Failure::Input(
            "send one or more of \"enabled\", \"quota\", \"password\"".into(),
        ));
    }
    if !p.manages(domain_of(address)) {
        return Err(Failure::Forbidden);
    }
    let mut done = Vec::new();
    for c in changes {
        done.push(change_account(admin, p, address, c).await.map_err(|m| {
            if m.ends_with("not found") {
                Failure::NotFound(format!("account {address}"))
            } else {
                Failure::Input(m)
            }
        })?);
    }
    Ok((StatusCode::OK, json!({"address": address, "done": done})))
}

/// Changes `p`'s own password after checking the current one.
pub async fn change_own_password(
    admin: &Admin,
    p: &Principal,
    current: &str,
    new: &str,
) -> Result<String, String> {
    match admin.store.authenticate(&p.account.address, current).await {
        Ok(Some(_)) => {}
        Ok(None) => return Err("the current password is wrong".into()),
        Err(e) => return Err(words(&e)),
    }
    if new.chars().count() < 8 {
        return Err("the new password needs at least 8 characters".into());
    }
    admin
        .store
        .set_password(&p.account.address, new)
        .await
        .map_err(|e| words(&e))?;
    Ok("password changed".into())
}

/// One queued message with every attempt (when, recipient, outcome, what was said).
async fn queue_entry_with_attempts(
    admin: &Admin,
    id: i64,
    now: UnixTime,
) -> Result<(StatusCode, Value), Failure> {
    let q = admin.store.queue().await?;
    let e = q
        .iter()
        .find(|e| e.id == id)
        .ok_or(Failure::NotFound(format!("queue entry {id}")))?;
    let attempts: Vec<Value> = admin
        .store
        .queue_attempts(id)
        .await?
        .iter()
        .map(|a| json!({"at": a.at, "recipient": a.recipient, "status": a.status.as_str(), "detail": a.detail}))
        .collect();
    let mut v = queue_entry(e, now);
    v["attempts"] = json!(attempts);
    Ok((StatusCode::OK, v))
}

fn queue_entry(e: &kurier_store::QueueEntry, now: UnixTime) -> Value {
    json!({
        "id": e.id,
        "sender": e.sender,
        "size": e.size,
        "created": e.created,
        "attempts": e.attempts,
        "next_attempt": e.next_attempt,
        "due": e.next_attempt <= now,
        "require_tls": e.require_tls,
        "being_delivered": e.lease.as_ref().is_some_and(|(_, until)| *until > now),
        "recipients": e.recipients.iter().map(|r| json!({
            "address": r.address, "status": r.status.as_str(), "last_error": r.last_error,
        })).collect::<Vec<_>>(),
    })
}

/// Which of the dashboard's TLS outcomes an event is (an index into `TLS_OUTCOMES`).
pub fn tls_class(e: &TlsOutcome) -> usize {
    match (&e.failure, e.policy_type) {
        (None, PolicyType::Tlsa) => 0,
        (None, PolicyType::Sts) => 1,
        (None, PolicyType::NoPolicyFound) => 2,
        (Some(ResultType::StarttlsNotSupported), PolicyType::NoPolicyFound) => 3,
        (Some(_), _) => 4,
    }
}

/// TLS outcomes per destination domain and UTC day, for the last `days` days.
async fn tls_days(admin: &Admin, now: UnixTime, days: i64) -> Result<(StatusCode, Value), Failure> {
    let today = now - now.rem_euclid(86400);
    let mut rows = Vec::new();
    for d in (0..days).rev() {
        let start = today - d * 86400;
        let mut by_domain: std::collections::BTreeMap<String, [u64; 5]> = Default::default();
        for e in admin.store.tls_events(start, start + 86400).await? {
            by_domain.entry(e.policy_domain.clone()).or_default()[tls_class(&e)] += 1;
        }
        for (domain, counts) in by_domain {
            let c: serde_json::Map<String, Value> = super::pages::TLS_OUTCOMES
                .iter()
                .zip(counts)
                .map(|(k, n)| ((*k).to_string(), json!(n)))
                .collect();
            rows.push(json!({"day": start, "domain": domain, "outcomes": c}));
        }
    }
    Ok((StatusCode::OK, json!(rows)))
}

/// Whether `path` fits `pattern` (whatever the method).
fn find_path(pattern: &str, path: &str) -> bool {
    let want: Vec<&str> = pattern.split('/').collect();
    let got: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    want.len() == got.len()
        && want
            .iter()
            .zip(&got)
            .all(|(w, g)| w.starts_with('{') || w == g)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_found_with_their_arguments() {
        let (i, a) = find(&Method::PATCH, "/api/v1/accounts/ann%40example.org").unwrap();
        assert_eq!(ROUTES[i].1, "/api/v1/accounts/{address}");
        assert_eq!(a, ["ann@example.org"]);
        let (i, a) = find(&Method::POST, "/api/v1/queue/17/retry").unwrap();
        assert_eq!(
            (ROUTES[i].1, a[0].as_str()),
            ("/api/v1/queue/{id}/retry", "17")
        );
        assert!(find(&Method::PUT, "/api/v1/domains").is_none());
        assert!(find(&Method::GET, "/api/v1/nothing").is_none());
        assert!(find_path("/api/v1/domains", "/api/v1/domains/"));
    }

    /// `openapi.json` documents exactly the routes the dispatcher serves, each with its
    /// security and error answers.
    #[test]
    fn the_openapi_file_matches_the_routes() {
        let doc: Value = serde_json::from_str(include_str!("../../openapi.json")).unwrap();
        assert_eq!(doc["openapi"].as_str().map(|v| &v[..2]), Some("3."));
        let paths = doc["paths"].as_object().unwrap();
        let mut documented = Vec::new();
        for (path, ops) in paths {
            for (method, op) in ops.as_object().unwrap() {
                documented.push((method.to_uppercase(), path.clone()));
                let responses = op["responses"].as_object().unwrap();
                let public = ROUTES.iter().any(|(m, p, a)| {
                    m.eq_ignore_ascii_case(method) && p == path && *a == Access::Public
                });
                if !public {
                    for code in ["401", "403"] {
                        assert!(
                            responses.contains_key(code),
                            "{method} {path} documents no {code}"
                        );
                    }
                }
            }
        }
        let mut served: Vec<(String, String)> = ROUTES
            .iter()
            .map(|(m, p, _)| (m.to_string(), p.to_string()))
            .collect();
        documented.sort();
        served.sort();
        assert_eq!(documented, served);
    }

    #[test]
    fn tls_outcomes_are_classed() {
        let e = |failure, policy_type| TlsOutcome {
            policy_domain: "example.org".into(),
            policy_type,
            policy_strings: vec![],
            mx_host: "mx.example.org".into(),
            failure,
            receiving_ip: None,
            sending_ip: None,
            receiving_helo: None,
            detail: None,
        };
        assert_eq!(tls_class(&e(None, PolicyType::Tlsa)), 0);
        assert_eq!(tls_class(&e(None, PolicyType::Sts)), 1);
        assert_eq!(tls_class(&e(None, PolicyType::NoPolicyFound)), 2);
        assert_eq!(
            tls_class(&e(
                Some(ResultType::StarttlsNotSupported),
                PolicyType::NoPolicyFound
            )),
            3
        );
        assert_eq!(
            tls_class(&e(Some(ResultType::TlsaInvalid), PolicyType::Tlsa)),
            4
        );
    }
}
