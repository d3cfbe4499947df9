//! The ACME objects (RFC 8555 §7.1: directory, order, authorization, challenge; §6.7 problem
//! documents) and, as pure functions, what a client does next with each: the order and
//! authorization state machines of §7.1.6 seen from the client.

use serde::Deserialize;

/// RFC 8555 §7.1.1.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Directory {
    pub new_nonce: String,
    pub new_account: String,
    pub new_order: String,
    #[serde(default)]
    pub meta: DirectoryMeta,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DirectoryMeta {
    #[serde(default)]
    pub terms_of_service: Option<String>,
    #[serde(default)]
    pub external_account_required: bool,
}

/// RFC 8555 §7.1.6 statuses (of orders, authorizations and challenges).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pending,
    Ready,
    Processing,
    Valid,
    Invalid,
    Deactivated,
    Expired,
    Revoked,
}

/// RFC 8555 §6.7 / RFC 7807.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct Problem {
    #[serde(default, rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub detail: String,
}

impl Problem {
    /// `urn:ietf:params:acme:error:badNonce` (§6.5): retry with the fresh nonce.
    pub fn is_bad_nonce(&self) -> bool {
        self.kind == "urn:ietf:params:acme:error:badNonce"
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = self
            .kind
            .strip_prefix("urn:ietf:params:acme:error:")
            .unwrap_or(&self.kind);
        write!(f, "{kind}: {}", self.detail)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Identifier {
    #[serde(rename = "type")]
    pub kind: String,
    pub value: String,
}

/// RFC 8555 §7.1.3.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Order {
    pub status: Status,
    #[serde(default)]
    pub identifiers: Vec<Identifier>,
    #[serde(default)]
    pub authorizations: Vec<String>,
    pub finalize: String,
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub error: Option<Problem>,
}

/// RFC 8555 §7.1.4.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Authorization {
    pub status: Status,
    pub identifier: Identifier,
    #[serde(default)]
    pub challenges: Vec<Challenge>,
}

/// RFC 8555 §8.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Challenge {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub status: Status,
    #[serde(default)]
    pub token: String,
    #[serde(default)]
    pub error: Option<Problem>,
}

/// The challenge types Kurier answers: HTTP-01 on the port-80 listener (RFC 8555 §8.3),
/// TLS-ALPN-01 on 443 (RFC 8737).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeType {
    Http01,
    TlsAlpn01,
}

impl ChallengeType {
    pub fn name(self) -> &'static str {
        match self {
            ChallengeType::Http01 => "http-01",
            ChallengeType::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

/// What to do with an order now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderStep {
    /// Some authorizations are still to be won (pending): look at each.
    Authorize(Vec<String>),
    /// All authorized: send the CSR to this URL.
    Finalize(String),
    /// The CA is working on it: ask again later.
    Wait,
    /// Issued: fetch the chain from this URL.
    Download(String),
    /// The order failed or expired: start a new one (after a pause).
    Failed(String),
}

pub fn order_step(order: &Order) -> OrderStep {
    let why = |what: &str| match &order.error {
        Some(p) => format!("order {what}: {p}"),
        None => format!("order {what}"),
    };
    match order.status {
        Status::Pending => OrderStep::Authorize(order.authorizations.clone()),
        Status::Ready => OrderStep::Finalize(order.finalize.clone()),
        Status::Processing => OrderStep::Wait,
        Status::Valid => match &order.certificate {
            Some(url) => OrderStep::Download(url.clone()),
            // §7.1.3: "certificate" is present once valid; without it, ask again.
            None => OrderStep::Wait,
        },
        Status::Invalid => OrderStep::Failed(why("invalid")),
        Status::Expired | Status::Deactivated | Status::Revoked => {
            OrderStep::Failed(why("expired"))
        }
    }
}

/// What to do with one authorization now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationStep {
    /// Provision this challenge's response and tell the CA (POST `{}` to its URL).
    Respond(Challenge),
    /// A response was sent; the CA is validating: ask again later.
    Wait,
    Done,
    /// Failed, with the CA's reason (e.g. the connection to port 80 was refused).
    Failed(String),
}

/// `preferred` first, then any other type we answer.
pub fn authorization_step(authz: &Authorization, preferred: &[ChallengeType]) -> AuthorizationStep {
    let name = &authz.identifier.value;
    match authz.status {
        Status::Valid => return AuthorizationStep::Done,
        Status::Pending => {}
        _ => {
            let why = authz
                .challenges
                .iter()
                .find_map(|c| c.error.as_ref())
                .map(|p| p.to_string())
                .unwrap_or_else(|| format!("authorization {:?}", authz.status));
            return AuthorizationStep::Failed(format!("{name}: {why}"));
        }
    }
    // One challenge of ours already in flight: wait for the verdict (§7.5.1).
    if authz
        .challenges
        .iter()
        .any(|c| c.status == Status::Processing)
    {
        return AuthorizationStep::Wait;
    }
    for want in preferred {
        if let Some(c) = authz
            .challenges
            .iter()
            .find(|c| c.kind == want.name() && c.status == Status::Pending)
        {
            // §8.1: a token is base64url, at least 128 bits; it becomes a URL path segment.
            if !valid_token(&c.token) {
                return AuthorizationStep::Failed(format!("{name}: the CA sent a malformed token"));
            }
            return AuthorizationStep::Respond(c.clone());
        }
    }
    let offered: Vec<&str> = authz.challenges.iter().map(|c| c.kind.as_str()).collect();
    AuthorizationStep::Failed(format!(
        "{name}: no challenge Kurier can answer (offered: {})",
        offered.join(", ")
    ))
}

/// A token is base64url characters only (RFC 8555 §8.1), 22 (128 bits) to 256 characters.
pub fn valid_token(token: &str) -> bool {
    (22..=256).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    const TOKEN: &str = "DGyRejmCefe7v4NfDGDKfA";

    /// RFC 8555 §7.1.3's example order, as pending.
    fn order(status: &str, certificate: bool) -> Order {
        let mut v = serde_json::json!({
            "status": status,
            "expires": "2016-01-05T14:09:07.99Z",
            "identifiers": [{"type": "dns", "value": "www.example.org"}],
            "authorizations": ["https://example.com/acme/authz/PAniVnsZcis"],
            "finalize": "https://example.com/acme/order/TOlocE8rfgo/finalize"
        });
        if certificate {
            v["certificate"] = "https://example.com/acme/cert/mAt3xBGaobw".into();
        }
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn the_order_moves_from_authorize_to_finalize_to_download() {
        assert_eq!(
            order_step(&order("pending", false)),
            OrderStep::Authorize(vec!["https://example.com/acme/authz/PAniVnsZcis".into()])
        );
        assert_eq!(
            order_step(&order("ready", false)),
            OrderStep::Finalize("https://example.com/acme/order/TOlocE8rfgo/finalize".into())
        );
        assert_eq!(order_step(&order("processing", false)), OrderStep::Wait);
        assert_eq!(order_step(&order("valid", false)), OrderStep::Wait);
        assert_eq!(
            order_step(&order("valid", true)),
            OrderStep::Download("https://example.com/acme/cert/mAt3xBGaobw".into())
        );
        let mut failed = order("invalid", false);
        failed.error = Some(Problem {
            kind: "urn:ietf:params:acme:error:unauthorized".into(),
            detail: "no".into(),
        });
        assert_eq!(
            order_step(&failed),
            OrderStep::Failed("order invalid: unauthorized: no".into())
        );
    }

    fn authz(status: &str, challenges: serde_json::Value) -> Authorization {
        serde_json::from_value(serde_json::json!({
            "status": status,
            "identifier": {"type": "dns", "value": "www.example.org"},
            "challenges": challenges,
        }))
        .unwrap()
    }

    fn ch(kind: &str, status: &str, token: &str) -> serde_json::Value {
        serde_json::json!({"type": kind, "url": format!("https://example.com/acme/chall/{kind}"), "status": status, "token": token})
    }

    #[test]
    fn the_preferred_challenge_is_answered_and_others_only_as_a_fallback() {
        let a = authz(
            "pending",
            serde_json::json!([
                ch("dns-01", "pending", TOKEN),
                ch("tls-alpn-01", "pending", TOKEN),
                ch("http-01", "pending", TOKEN)
            ]),
        );
        let step = authorization_step(&a, &[ChallengeType::Http01, ChallengeType::TlsAlpn01]);
        assert!(matches!(step, AuthorizationStep::Respond(c) if c.kind == "http-01"));
        let step = authorization_step(&a, &[ChallengeType::TlsAlpn01, ChallengeType::Http01]);
        assert!(matches!(step, AuthorizationStep::Respond(c) if c.kind == "tls-alpn-01"));
        let dns_only = authz(
            "pending",
            serde_json::json!([ch("dns-01", "pending", TOKEN)]),
        );
        assert_eq!(
            authorization_step(&dns_only, &[ChallengeType::Http01]),
            AuthorizationStep::Failed(
                "www.example.org: no challenge Kurier can answer (offered: dns-01)".into()
            )
        );
    }

    #[test]
    fn a_challenge_in_flight_waits_and_a_failed_one_says_why() {
        let busy = authz(
            "pending",
            serde_json::json!([ch("http-01", "processing", TOKEN)]),
        );
        assert_eq!(
            authorization_step(&busy, &[ChallengeType::Http01]),
            AuthorizationStep::Wait
        );
        let done = authz("valid", serde_json::json!([ch("http-01", "valid", TOKEN)]));
        assert_eq!(
            authorization_step(&done, &[ChallengeType::Http01]),
            AuthorizationStep::Done
        );
        let mut c = ch("http-01", "invalid", TOKEN);
        c["error"] = serde_json::json!({"type": "urn:ietf:params:acme:error:connection", "detail": "connection refused"});
        let failed = authz("invalid", serde_json::json!([c]));
        assert_eq!(
            authorization_step(&failed, &[ChallengeType::Http01]),
            AuthorizationStep::Failed("www.example.org: connection: connection refused".into())
        );
    }

    #[test]
    fn tokens_that_could_escape_a_url_path_are_refused() {
        assert!(valid_token(TOKEN));
        for bad in [
            "short",
            "../../../../etc/passwd-xxxxxxxxx",
            "DGyRejmCefe7v4NfDGDKfA/x",
            &"a".repeat(300),
        ] {
            assert!(!valid_token(bad), "{bad}");
            let a = authz(
                "pending",
                serde_json::json!([ch("http-01", "pending", bad)]),
            );
            assert!(matches!(
                authorization_step(&a, &[ChallengeType::Http01]),
                AuthorizationStep::Failed(_)
            ));
        }
    }

    #[test]
    fn the_directory_of_rfc_8555_parses_and_garbage_does_not() {
        let d: Directory = serde_json::from_str(r#"{
            "newNonce": "https://example.com/acme/new-nonce",
            "newAccount": "https://example.com/acme/new-account",
            "newOrder": "https://example.com/acme/new-order",
            "newAuthz": "https://example.com/acme/new-authz",
            "revokeCert": "https://example.com/acme/revoke-cert",
            "keyChange": "https://example.com/acme/key-change",
            "meta": {"termsOfService": "https://example.com/acme/terms/2017-5-30", "website": "https://www.example.com/", "externalAccountRequired": false}
        }"#).unwrap();
        assert_eq!(d.new_order, "https://example.com/acme/new-order");
        assert_eq!(
            d.meta.terms_of_service.as_deref(),
            Some("https://example.com/acme/terms/2017-5-30")
        );
        assert!(serde_json::from_str::<Directory>(r#"{"newNonce": 1}"#).is_err());
        assert!(serde_json::from_str::<Order>(r#"{"status": "weird", "finalize": "x"}"#).is_err());
    }
}
