//! Who is asking: a browser session (cookie `kurier_session`, `Secure; HttpOnly;
//! SameSite=Strict`) or an API token (`Authorization: Bearer kurier_<id>_<secret>`), and what
//! that account may administer. Secrets are random 256-bit values; the store keeps only their
//! SHA-256, and comparisons are constant-time. A session carries its own CSRF token, which
//! every state-changing request made with the cookie must send back (a form field or the
//! `X-CSRF-Token` header); token requests carry no ambient authority and need none.

use hyper::HeaderMap;
use hyper::header;
use kurier_store::{Account, AdminScope, StoreError, UnixTime};

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "kurier_session";
/// The prefix of API tokens, so that a leaked one is recognisable (secret scanners).
pub const TOKEN_PREFIX: &str = "kurier_";

/// An authenticated account and what it administers.
#[derive(Debug, Clone)]
pub struct Principal {
    pub account: Account,
    pub scopes: Vec<AdminScope>,
    /// The browser session (its id and CSRF token), if the request came with the cookie.
    pub session: Option<(String, String)>,
}

/// What a principal may do, from the strongest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The whole server.
    Admin,
    /// The accounts and aliases of some domains.
    DomainAdmin,
    /// Its own account only.
    User,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::DomainAdmin => "domain-admin",
            Role::User => "user",
        }
    }
}

impl Principal {
    pub fn role(&self) -> Role {
        if self.scopes.contains(&AdminScope::Server) {
            Role::Admin
        } else if self.scopes.is_empty() {
            Role::User
        } else {
            Role::DomainAdmin
        }
    }

    /// Whether the principal administers `domain` (its accounts and aliases).
    pub fn manages(&self, domain: &str) -> bool {
        self.scopes.iter().any(|s| match s {
            AdminScope::Server => true,
            AdminScope::Domain(d) => d.eq_ignore_ascii_case(domain),
        })
    }

    /// The domains it administers; `None` for all of them.
    pub fn domains(&self) -> Option<Vec<String>> {
        if self.role() == Role::Admin {
            return None;
        }
        Some(
            self.scopes
                .iter()
                .filter_map(|s| match s {
                    AdminScope::Domain(d) => Some(d.clone()),
                    AdminScope::Server => None,
                })
                .collect(),
        )
    }

    /// Whether `given` is this session's CSRF token; always true for token requests.
    pub fn csrf_ok(&self, given: Option<&str>) -> bool {
        match (&self.session, given) {
            (None, _) => true,
            (Some((_, csrf)), Some(g)) => {
                g.len() == csrf.len() && openssl::memcmp::eq(g.as_bytes(), csrf.as_bytes())
            }
            (Some(_), None) => false,
        }
    }

    /// The CSRF token for forms (empty for token requests).
    pub fn csrf(&self) -> &str {
        self.session.as_ref().map_or("", |(_, c)| c.as_str())
    }
}

/// `n` random bytes as lower-case hex.
pub fn random_hex(n: usize) -> String {
    let mut b = vec![0u8; n];
    // OpenSSL's CSPRNG does not fail once initialised; an all-zero secret would still be
    // unguessable only if it did, so refuse to go on instead.
    openssl::rand::rand_bytes(&mut b).unwrap_or_else(|_| std::process::abort());
    hex(&b)
}

/// SHA-256 of `s`, hex: how the store keeps session and token secrets.
pub fn sha256_hex(s: &str) -> String {
    hex(&openssl::sha::sha256(s.as_bytes()))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// The value of cookie `name` in the request's Cookie headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// The `(id, secret)` of a bearer token `kurier_<id>_<secret>`.
pub fn bearer(headers: &HeaderMap) -> Option<(&str, &str)> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = v.strip_prefix("Bearer ")?.trim();
    token.strip_prefix(TOKEN_PREFIX)?.split_once('_')
}

/// A new token for `account`: what the store keeps, and the text handed to the owner once.
pub fn new_token(
    account: Account,
    name: &str,
    now: UnixTime,
    days: Option<i64>,
) -> (kurier_store::ApiToken, String) {
    let id = random_hex(8);
    let secret = random_hex(32);
    let text = format!("{TOKEN_PREFIX}{id}_{secret}");
    (
        kurier_store::ApiToken {
            id,
            account: account.id,
            name: name.to_string(),
            secret: sha256_hex(&secret),
            created: now,
            expires: days.map(|d| now + d * 86400),
        },
        text,
    )
}

/// Who sent `headers`: a valid API token, else a live session; `None` if neither.
pub async fn principal(
    store: &dyn kurier_store::Store,
    headers: &HeaderMap,
    now: UnixTime,
) -> Result<Option<Principal>, StoreError> {
    if let Some((id, secret)) = bearer(headers) {
        let Some((token, account)) = store.api_token(id).await? else {
            return Ok(None);
        };
        let given = sha256_hex(secret);
        let fresh = token.expires.is_none_or(|e| e > now);
        if !fresh || !openssl::memcmp::eq(given.as_bytes(), token.secret.as_bytes()) {
            return Ok(None);
        }
        let scopes = store.admin_scopes(account.id).await?;
        return Ok(Some(Principal {
            account,
            scopes,
            session: None,
        }));
    }
    let Some(secret) = cookie(headers, SESSION_COOKIE) else {
        return Ok(None);
    };
    let Some((session, account)) = store.web_session(&sha256_hex(secret), now).await? else {
        return Ok(None);
    };
    let scopes = store.admin_scopes(account.id).await?;
    Ok(Some(Principal {
        account,
        scopes,
        session: Some((session.id, session.csrf)),
    }))
}

/// The principal of a session just made.
pub async fn principal_of_session(
    store: &dyn kurier_store::Store,
    session: &kurier_store::WebSession,
    now: UnixTime,
) -> Result<Option<Principal>, StoreError> {
    let Some((session, account)) = store.web_session(&session.id, now).await? else {
        return Ok(None);
    };
    let scopes = store.admin_scopes(account.id).await?;
    Ok(Some(Principal {
        account,
        scopes,
        session: Some((session.id, session.csrf)),
    }))
}

/// A new session for `account` until `now + secs`: what the store keeps and the cookie's
/// secret.
pub fn new_session(
    account: &Account,
    now: UnixTime,
    secs: i64,
) -> (kurier_store::WebSession, String) {
    let secret = random_hex(32);
    (
        kurier_store::WebSession {
            id: sha256_hex(&secret),
            account: account.id,
            csrf: random_hex(16),
            created: now,
            expires: now + secs,
        },
        secret,
    )
}

/// The Set-Cookie value for a session secret (`None`: clear the cookie).
pub fn session_cookie(secret: Option<&str>, secs: i64) -> String {
    match secret {
        Some(s) => format!(
            "{SESSION_COOKIE}={s}; Path=/; Max-Age={secs}; Secure; HttpOnly; SameSite=Strict"
        ),
        None => format!("{SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn principal(scopes: Vec<AdminScope>, csrf: Option<&str>) -> Principal {
        Principal {
            account: Account {
                id: 1,
                address: "ann@example.org".into(),
                domain: "example.org".into(),
                quota: None,
                enabled: true,
                created: 0,
            },
            scopes,
            session: csrf.map(|c| ("id".to_string(), c.to_string())),
        }
    }

    #[test]
    fn roles_and_what_they_manage() {
        let admin = principal(vec![AdminScope::Server], None);
        assert_eq!(admin.role(), Role::Admin);
        assert!(admin.manages("any.test") && admin.domains().is_none());
        let d = principal(vec![AdminScope::Domain("example.org".into())], None);
        assert_eq!(d.role(), Role::DomainAdmin);
        assert!(d.manages("EXAMPLE.org") && !d.manages("other.test"));
        assert_eq!(d.domains().unwrap(), ["example.org"]);
        let u = principal(vec![], None);
        assert_eq!(u.role(), Role::User);
        assert!(!u.manages("example.org"));
        assert_eq!(u.domains().unwrap(), Vec::<String>::new());
    }

    #[test]
    fn csrf_is_required_with_the_cookie_only() {
        let s = principal(vec![], Some("0123abcd"));
        assert!(s.csrf_ok(Some("0123abcd")));
        assert!(!s.csrf_ok(Some("0123abce")));
        assert!(!s.csrf_ok(Some("0123")));
        assert!(!s.csrf_ok(None));
        assert!(principal(vec![], None).csrf_ok(None));
    }

    #[test]
    fn cookies_tokens_and_secrets() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; kurier_session=s3cr3t; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("s3cr3t"));
        assert_eq!(cookie(&h, "c"), None);
        h.insert(
            header::AUTHORIZATION,
            "Bearer kurier_abc_def0".parse().unwrap(),
        );
        assert_eq!(bearer(&h), Some(("abc", "def0")));
        h.insert(
            header::AUTHORIZATION,
            "Bearer other_abc_def".parse().unwrap(),
        );
        assert_eq!(bearer(&h), None);
        let a = random_hex(32);
        assert_eq!(a.len(), 64);
        assert_ne!(a, random_hex(32));
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let c = session_cookie(Some("x"), 3600);
        for part in ["Secure", "HttpOnly", "SameSite=Strict", "Path=/"] {
            assert!(c.contains(part), "{c}");
        }
    }
}
