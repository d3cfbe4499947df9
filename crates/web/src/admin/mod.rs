//! # The web administration: pages at `/admin/…`, JSON at `/api/v1/…`
//!
//! Owns signing in (the account password, checked through the login throttle every protocol
//! shares, then a session cookie), the roles (`auth`: admin, domain admin, user), the pages
//! (`pages`, server-rendered, no script) and the API (`api`) over the same operations, and the
//! web security both need: CSRF tokens on every state change made with the cookie, a strict
//! Content-Security-Policy and the other headers (`http`), the admin area only on HTTPS (the
//! plain-HTTP listener never routes here) and optionally only to some networks.
//!
//! Must not: decide what the CLI could not — every action is one the store offers `kurier
//! domain|user|alias|queue` as well; or keep a secret the store could leak (sessions and tokens
//! are kept as hashes).

pub mod api;
pub mod auth;
pub mod http;
pub mod pages;
pub mod records;

use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use kurier_access::{AuthThrottle, LoginOutcome};
use kurier_store::{Store, StoreError, UnixTime};

use auth::{Principal, Role};
use pages::Notice;

/// The administration's settings and what it works on.
pub struct Admin {
    pub store: Arc<dyn Store>,
    /// The login throttle of every protocol (IMAP, POP3, submission, ManageSieve).
    pub throttle: Arc<Mutex<AuthThrottle>>,
    /// Client networks served (empty: any).
    pub networks: Vec<(IpAddr, u8)>,
    pub hostname: String,
    /// How long a session lives without signing in again.
    pub session_secs: i64,
    /// A domain's DNS records with their live state, and its audit (`None`: not shown).
    pub facts: Option<Arc<dyn records::DomainFacts>>,
    /// What the dashboard shows of the running server (`None`: not shown).
    pub server: Option<Arc<dyn ServerFacts>>,
    /// Wakes the outbound queue runner after a notice was queued.
    pub outbound: Option<Arc<tokio::sync::Notify>>,
}

/// The running server as the dashboard shows it, from the binary (which knows the
/// listeners, the certificates in use and the validator's last probe).
pub trait ServerFacts: Send + Sync {
    /// (service, address) of every listener.
    fn listeners(&self) -> Vec<(String, String)>;
    /// The certificates in use: their names and when they expire (Unix time).
    fn certificates(&self) -> Vec<(String, i64)>;
    /// Whether the DNSSEC validator's last probe passed, and what it showed or why it failed.
    fn validator(&self) -> (bool, String);
    /// Whether the served chain matches our published TLSA records (`None`: not checked yet).
    fn dane(&self) -> Option<bool>;
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("networks", &self.networks)
            .finish()
    }
}

/// A request body as read by the listener.
#[derive(Debug, Clone)]
pub enum Body {
    Read(Bytes),
    /// Larger than the listener reads (16 KiB): refused with a clear message.
    TooLarge,
}

/// Queue entries shown on one page (the API lists all).
pub const QUEUE_PAGE: usize = 200;

/// Whether `path` belongs to the administration.
pub fn is_admin_path(path: &str) -> bool {
    path == "/admin" || path.starts_with("/admin/") || path.starts_with("/api/")
}

impl Admin {
    /// Answers one request under `/admin` or `/api`.
    pub async fn handle(
        &self,
        req: &Request<()>,
        body: &Body,
        peer: IpAddr,
    ) -> Response<Full<Bytes>> {
        let api = req.uri().path().starts_with("/api/");
        if !self.networks.is_empty()
            && !self
                .networks
                .iter()
                .any(|(n, l)| kurier_access::rate::contains(*n, *l, peer))
        {
            let msg = "the administration is not served to this network";
            return if api {
                http::json_error(StatusCode::FORBIDDEN, msg)
            } else {
                http::response(
                    StatusCode::FORBIDDEN,
                    "text/plain; charset=utf-8",
                    msg.into(),
                )
            };
        }
        let body = match body {
            Body::Read(b) => b.clone(),
            Body::TooLarge => {
                let msg = "the request body is larger than 16 KiB";
                return if api {
                    http::json_error(StatusCode::BAD_REQUEST, msg)
                } else {
                    http::response(
                        StatusCode::BAD_REQUEST,
                        "text/plain; charset=utf-8",
                        msg.into(),
                    )
                };
            }
        };
        let now = kurier_store::now();
        if api {
            return api::handle(self, req, &body, peer, now).await;
        }
        self.page(req, &body, peer, now).await
    }

    /// Signs in with the account password through the shared throttle: a new session and the
    /// cookie secret.
    pub async fn sign_in(
        &self,
        peer: IpAddr,
        address: &str,
        password: &str,
        now: UnixTime,
    ) -> LoginOutcome<(kurier_store::WebSession, String)> {
        let store = self.store.clone();
        let check = async move {
            match store.authenticate(address, password).await {
                Ok(found) => Ok(found),
                Err(StoreError::Invalid(_)) => Ok(None),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot check a web sign-in");
                    Err(())
                }
            }
        };
        match kurier_access::throttled_login(&self.throttle, peer, address, check).await {
            LoginOutcome::Ok(account) => {
                let (session, secret) = auth::new_session(&account, now, self.session_secs);
                if let Err(e) = self.store.put_web_session(&session).await {
                    tracing::warn!(error = %e, "cannot keep a web session");
                    return LoginOutcome::Unavailable;
                }
                tracing::info!(%peer, account = %account.address, "signed in to the web administration");
                LoginOutcome::Ok((session, secret))
            }
            LoginOutcome::Invalid => {
                tracing::warn!(%peer, user = address, "web sign-in failed");
                LoginOutcome::Invalid
            }
            LoginOutcome::Blocked => LoginOutcome::Blocked,
            LoginOutcome::Unavailable => LoginOutcome::Unavailable,
        }
    }

    async fn page(
        &self,
        req: &Request<()>,
        body: &[u8],
        peer: IpAddr,
        now: UnixTime,
    ) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let method = req.method().clone();
        if path == "/admin/style.css" && method == Method::GET {
            return http::response(
                StatusCode::OK,
                "text/css; charset=utf-8",
                pages::STYLE.into(),
            );
        }
        if path == "/admin/copy.js" && method == Method::GET {
            return http::response(
                StatusCode::OK,
                "text/javascript; charset=utf-8",
                pages::COPY_SCRIPT.into(),
            );
        }
        if path == "/admin/login" {
            return self.login_page(&method, body, peer, now).await;
        }
        let p = match auth::principal(&*self.store, req.headers(), now).await {
            Ok(Some(p)) if p.session.is_some() => p,
            Ok(_) => return http::see_other("/admin/login", None),
            Err(e) => return unavailable(&e),
        };
        let query = http::form(req.uri().query().unwrap_or("").as_bytes());
        let notice = match (http::field(&query, "done"), http::field(&query, "error")) {
            (_, Some(e)) => Some(Notice::Failed(e.to_string())),
            (Some(d), _) => Some(Notice::Done(d.to_string())),
            _ => None,
        };
        if method == Method::POST {
            let form = http::form(body);
            if !p.csrf_ok(http::field(&form, "csrf")) {
                tracing::warn!(%peer, account = %p.account.address, path, "a form without its CSRF token was refused");
                return http::response(
                    StatusCode::FORBIDDEN,
                    "text/plain; charset=utf-8",
                    "the form's CSRF token is missing or wrong; reload the page and try again\n"
                        .into(),
                );
            }
            return self.post(&p, path, &form, now).await;
        }
        if method != Method::GET && method != Method::HEAD {
            return http::response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain; charset=utf-8",
                Vec::new(),
            );
        }
        let n = notice.as_ref();
        let rendered = match path {
            "/admin" | "/admin/" => match p.role() {
                Role::Admin => self.status(now).await.map(|s| pages::dashboard(&p, n, &s)),
                Role::DomainAdmin => return http::see_other("/admin/accounts", None),
                Role::User => return http::see_other("/admin/me", None),
            },
            "/admin/queue" if p.role() == Role::Admin => self
                .queue_with_attempts()
                .await
                .map(|(q, total)| pages::queue(&p, n, &q, total, now)),
            "/admin/domains" if p.role() != Role::User => self
                .domain_list(&p)
                .await
                .map(|d| pages::domains(&p, n, &d)),
            "/admin/accounts" if p.role() != Role::User => {
                let domain = http::field(&query, "domain");
                if let Some(d) = domain
                    && !p.manages(d)
                {
                    return http::html(StatusCode::FORBIDDEN, pages::forbidden(&p));
                }
                self.account_list(&p, domain)
                    .await
                    .map(|a| pages::accounts(&p, n, domain, &a))
            }
            "/admin/domain" if p.role() != Role::User => {
                let name = http::field(&query, "name")
                    .unwrap_or("")
                    .to_ascii_lowercase();
                if !p.manages(&name) {
                    return http::html(StatusCode::FORBIDDEN, pages::forbidden(&p));
                }
                return self.domain_page(&p, &name, None).await;
            }
            "/admin/aliases" if p.role() != Role::User => self.store.aliases(None).await.map(|a| {
                let mine: Vec<_> = a.into_iter().filter(|a| p.manages(&a.domain)).collect();
                pages::aliases(&p, n, &mine)
            }),
            "/admin/reports" if p.role() == Role::Admin => {
                self.reports(now, 30).await.map(|r| pages::reports(&p, &r))
            }
            "/admin/me" => self
                .store
                .app_passwords(p.account.id)
                .await
                .map(|a| pages::me(&p, n, &a, None)),
            "/admin/queue" | "/admin/domains" | "/admin/accounts" | "/admin/reports"
            | "/admin/aliases" => {
                return http::html(StatusCode::FORBIDDEN, pages::forbidden(&p));
            }
            _ => return http::html(StatusCode::NOT_FOUND, pages::not_found(&p)),
        };
        match rendered {
            Ok(page) => http::html(StatusCode::OK, page),
            Err(e) => unavailable(&e),
        }
    }

    async fn login_page(
        &self,
        method: &Method,
        body: &[u8],
        peer: IpAddr,
        now: UnixTime,
    ) -> Response<Full<Bytes>> {
        if *method != Method::POST {
            return http::html(StatusCode::OK, pages::login(None));
        }
        let form = http::form(body);
        let (Some(address), Some(password)) = (
            http::field(&form, "address"),
            http::field(&form, "password"),
        ) else {
            return http::html(
                StatusCode::BAD_REQUEST,
                pages::login(Some("Give an address and a password.")),
            );
        };
        match self.sign_in(peer, address, password, now).await {
            LoginOutcome::Ok((_, secret)) => http::see_other(
                "/admin/",
                Some(&auth::session_cookie(Some(&secret), self.session_secs)),
            ),
            LoginOutcome::Invalid => http::html(
                StatusCode::UNAUTHORIZED,
                pages::login(Some("Wrong address or password.")),
            ),
            LoginOutcome::Blocked => http::html(
                StatusCode::TOO_MANY_REQUESTS,
                pages::login(Some(
                    "Too many failed sign-ins; try again in a few minutes.",
                )),
            ),
            LoginOutcome::Unavailable => http::html(
                StatusCode::SERVICE_UNAVAILABLE,
                pages::login(Some(
                    "The server cannot check passwords right now; try again later.",
                )),
            ),
        }
    }

    /// A form's action; answers with a redirect to the page it came from, saying what happened.
    async fn post(
        &self,
        p: &Principal,
        path: &str,
        form: &[(String, String)],
        now: UnixTime,
    ) -> Response<Full<Bytes>> {
        let f = |k: &str| http::field(form, k).unwrap_or("").trim();
        let (back, outcome): (String, Result<String, String>) = match path {
            "/admin/logout" => {
                if let Some((id, _)) = &p.session {
                    let _ = self.store.delete_web_session(id).await;
                }
                return http::see_other("/admin/login", Some(&auth::session_cookie(None, 0)));
            }
            "/admin/domains" | "/admin/domains/delete" if p.role() != Role::Admin => {
                return forbidden_page(p);
            }
            "/admin/domains" => (
                "/admin/domains".into(),
                api::add_domain(self, f("name"))
                    .await
                    .map(|d| format!("added domain {d}")),
            ),
            "/admin/domains/delete" => (
                "/admin/domains".into(),
                api::delete_domain(self, f("name"))
                    .await
                    .map(|_| format!("removed domain {}", f("name"))),
            ),
            "/admin/accounts" => (
                "/admin/accounts".into(),
                api::add_account(
                    self,
                    p,
                    f("address"),
                    http::field(form, "password").unwrap_or(""),
                    f("quota"),
                )
                .await
                .map(|a| format!("created account {a}")),
            ),
            "/admin/accounts/update" => {
                let address = f("address");
                let value = http::field(form, "value").unwrap_or("");
                let change = match f("action") {
                    "enable" => api::Change::Enabled(true),
                    "disable" => api::Change::Enabled(false),
                    "quota" => api::Change::Quota(value.trim().to_string()),
                    "password" => api::Change::Password(value.to_string()),
                    other => {
                        return http::see_other(
                            &format!(
                                "/admin/accounts?error={}",
                                http::encode(&format!("unknown action {other:?}"))
                            ),
                            None,
                        );
                    }
                };
                (
                    "/admin/accounts".into(),
                    api::change_account(self, p, address, change)
                        .await
                        .map(|m| format!("{address}: {m}")),
                )
            }
            "/admin/queue/retry" | "/admin/queue/delete" | "/admin/queue/bounce"
                if p.role() != Role::Admin =>
            {
                return forbidden_page(p);
            }
            "/admin/queue/retry" | "/admin/queue/delete" | "/admin/queue/bounce" => {
                let outcome = match f("id").parse::<i64>() {
                    Ok(id) if path.ends_with("retry") => self
                        .store
                        .retry_queue_entry(id, now)
                        .await
                        .map(|_| format!("message {id} is retried now"))
                        .map_err(|e| api::words(&e)),
                    Ok(id) if path.ends_with("delete") => self
                        .store
                        .delete_queue_entry(id, now)
                        .await
                        .map(|_| format!("message {id} deleted"))
                        .map_err(|e| api::words(&e)),
                    Ok(id) => self
                        .bounce(p, id, now)
                        .await
                        .map(|n| format!("message {id} returned to its sender ({n} recipients)")),
                    Err(_) => Err("no such message".into()),
                };
                ("/admin/queue".into(), outcome)
            }
            "/admin/aliases" => {
                let targets: Vec<String> = f("targets")
                    .split([',', ' '])
                    .filter(|t| !t.is_empty())
                    .map(str::to_string)
                    .collect();
                let outcome = api::add_alias(self, p, f("address"), &targets)
                    .await
                    .map(|a| format!("alias {} delivers to {}", a.address, a.targets.join(", ")))
                    .map_err(|e| e.words());
                ("/admin/aliases".into(), outcome)
            }
            "/admin/aliases/delete" => {
                let address = f("address");
                let outcome = if !p.manages(address.rsplit_once('@').map_or("", |(_, d)| d)) {
                    Err("your account does not administer this".to_string())
                } else {
                    self.store
                        .delete_alias(address)
                        .await
                        .map(|_| format!("deleted alias {address}"))
                        .map_err(|e| api::words(&e))
                };
                ("/admin/aliases".into(), outcome)
            }
            "/admin/domain/check" => {
                let name = f("name").to_ascii_lowercase();
                if !p.manages(&name) {
                    return forbidden_page(p);
                }
                let findings = match &self.facts {
                    Some(facts) => facts.check(&name).await,
                    None => Err("not available on this server".into()),
                };
                return self.domain_page(p, &name, Some(findings)).await;
            }
            "/admin/me/app-passwords" => {
                let made = api::add_app_password(self, p, f("name"), now).await;
                let list = match self.store.app_passwords(p.account.id).await {
                    Ok(l) => l,
                    Err(e) => return unavailable(&e),
                };
                // Shown once, in this answer only (never in a URL).
                return match made {
                    Ok(password) => http::html(
                        StatusCode::OK,
                        pages::me(p, None, &list, Some((f("name"), &password))),
                    ),
                    Err(e) => http::html(
                        StatusCode::BAD_REQUEST,
                        pages::me(p, Some(&Notice::Failed(e.words())), &list, None),
                    ),
                };
            }
            "/admin/me/app-passwords/delete" => (
                "/admin/me".into(),
                self.store
                    .delete_app_password(p.account.id, f("name"))
                    .await
                    .map(|_| format!("deleted app password {:?}", f("name")))
                    .map_err(|e| api::words(&e)),
            ),
            "/admin/me/password" => (
                "/admin/me".into(),
                api::change_own_password(
                    self,
                    p,
                    http::field(form, "current").unwrap_or(""),
                    http::field(form, "new").unwrap_or(""),
                )
                .await,
            ),
            _ => return http::html(StatusCode::NOT_FOUND, pages::not_found(p)),
        };
        let query = match outcome {
            Ok(m) => format!("done={}", http::encode(&m)),
            Err(m) => format!("error={}", http::encode(&m)),
        };
        http::see_other(&format!("{back}?{query}"), None)
    }

    /// A domain's page: its records with their live state, and the audit if one was run.
    async fn domain_page(
        &self,
        p: &Principal,
        name: &str,
        check: Option<Result<Vec<records::CheckLine>, String>>,
    ) -> Response<Full<Bytes>> {
        match self.store.domain_settings(name).await {
            Ok(_) => {}
            Err(StoreError::NotFound(_)) | Err(StoreError::Invalid(_)) => {
                return http::html(StatusCode::NOT_FOUND, pages::not_found(p));
            }
            Err(e) => return unavailable(&e),
        }
        let records = match &self.facts {
            Some(facts) => facts.records(name).await,
            None => Err("not available on this server".into()),
        };
        http::html(
            StatusCode::OK,
            pages::domain(p, name, &records, check.as_ref()),
        )
    }

    /// The TLSRPT reports received for the last `days` days per domain, reporter and day, and
    /// the reports we sent.
    pub async fn reports(&self, now: UnixTime, days: i64) -> Result<pages::Reports, StoreError> {
        let from = now - days * 86400;
        let stored = self.store.reports().await?;
        let fresh = stored
            .iter()
            .filter(|r| r.received >= from)
            .map(|r| r.json.as_slice());
        let received = kurier_policy::tlsrpt::sum_reports(fresh, None, true)
            .into_iter()
            .rev()
            .collect();
        let day = from - from.rem_euclid(86400);
        let dmarc = self.store.dmarc_reports().await?;
        let dmarc_received = kurier_mailauth::aggregate::sum_feedback(
            dmarc
                .iter()
                .filter(|r| r.received >= from)
                .map(|r| (r.policy_domain.as_str(), r.xml.as_slice())),
        );
        Ok(pages::Reports {
            days,
            received,
            dmarc_received,
            sent_tlsrpt: self
                .store
                .sent_reports(kurier_store::ReportKind::Tlsrpt, day)
                .await?,
            sent_dmarc: self
                .store
                .sent_reports(kurier_store::ReportKind::Dmarc, day)
                .await?,
        })
    }

    /// The first `QUEUE_PAGE` entries of the queue, each with its attempts, and how many
    /// there are in all.
    pub async fn queue_with_attempts(
        &self,
    ) -> Result<
        (
            Vec<(kurier_store::QueueEntry, Vec<kurier_store::QueueAttempt>)>,
            usize,
        ),
        StoreError,
    > {
        let q = self.store.queue().await?;
        let total = q.len();
        let mut out = Vec::new();
        for e in q.into_iter().take(QUEUE_PAGE) {
            let attempts = self.store.queue_attempts(e.id).await?;
            out.push((e, attempts));
        }
        Ok((out, total))
    }

    /// Returns a queued message to its sender with a failure notice; how many recipients it
    /// names.
    pub async fn bounce(
        &self,
        p: &Principal,
        id: kurier_store::QueueId,
        now: UnixTime,
    ) -> Result<usize, String> {
        let why = format!(
            "returned by {} in the web administration",
            p.account.address
        );
        let b = kurier_delivery::bounce::bounce(&*self.store, &self.hostname, id, &why, now)
            .await
            .map_err(|e| api::words(&e))?;
        if b.queued
            && let Some(w) = &self.outbound
        {
            w.notify_one();
        }
        Ok(b.recipients.len())
    }

    /// The dashboard's numbers.
    pub async fn status(&self, now: UnixTime) -> Result<pages::Status, StoreError> {
        let queue = self.store.queue().await?;
        let mut tls = [0u64; 5];
        for e in self.store.tls_events(now - 86400, now + 1).await? {
            tls[api::tls_class(&e)] += 1;
        }
        let server = self.server.as_deref();
        Ok(pages::Status {
            listeners: server.map(ServerFacts::listeners).unwrap_or_default(),
            certificates: server.map(ServerFacts::certificates).unwrap_or_default(),
            validator: server.map(ServerFacts::validator),
            dane: server.and_then(ServerFacts::dane),
            now,
            hostname: self.hostname.clone(),
            version: env!("CARGO_PKG_VERSION"),
            domains: self.store.domains().await?.len(),
            accounts: self.store.accounts(None).await?.len(),
            deferred: queue.iter().filter(|e| e.attempts > 0).count(),
            queued: queue.len(),
            tls,
        })
    }

    /// The domains `p` administers, with their number of accounts.
    pub async fn domain_list(&self, p: &Principal) -> Result<Vec<(String, usize)>, StoreError> {
        let accounts = self.store.accounts(None).await?;
        Ok(self
            .store
            .domains()
            .await?
            .into_iter()
            .filter(|d| p.manages(&d.name))
            .map(|d| {
                let n = accounts.iter().filter(|a| a.domain == d.name).count();
                (d.name, n)
            })
            .collect())
    }

    /// The accounts `p` administers (of `domain`, if given), with the bytes each uses.
    pub async fn account_list(
        &self,
        p: &Principal,
        domain: Option<&str>,
    ) -> Result<Vec<(kurier_store::Account, u64)>, StoreError> {
        let mut out = Vec::new();
        for a in self.store.accounts(domain).await? {
            if p.manages(&a.domain) {
                let used = self.store.usage(a.id).await?;
                out.push((a, used));
            }
        }
        Ok(out)
    }
}

fn forbidden_page(p: &Principal) -> Response<Full<Bytes>> {
    http::html(StatusCode::FORBIDDEN, pages::forbidden(p))
}

fn unavailable(e: &StoreError) -> Response<Full<Bytes>> {
    tracing::warn!(error = %e, "the web administration cannot read the store");
    http::response(
        StatusCode::SERVICE_UNAVAILABLE,
        "text/plain; charset=utf-8",
        "the store is not available right now; try again later\n".into(),
    )
}
