//! The async driver of one ACME account (RFC 8555 §7): fetch the directory, keep a nonce
//! (§7.2, retrying once per `badNonce`, §6.5), find or create the account (§7.3), and run one
//! order to a certificate chain (§7.4): authorizations by the challenges of `messages`, the CSR,
//! polling with the server's Retry-After, the download (§7.4.2). Every wait is bounded.

use std::time::{Duration, Instant};

use openssl::pkey::{PKeyRef, Private};
use openssl::x509::X509;

use crate::AcmeError;
use crate::certificate::{chain, csr};
use crate::https::{HttpResponse, Https};
use crate::jws::{AccountKey, b64u};
use crate::messages::{
    Authorization, AuthorizationStep, ChallengeType, Directory, Order, OrderStep, Problem,
    authorization_step, order_step,
};

/// How many `badNonce` answers in a row are retried (§6.5).
const NONCE_RETRIES: usize = 3;
/// Polling: at least this long between two looks, at most the server's Retry-After capped here.
const POLL_MIN: Duration = Duration::from_millis(500);
const POLL_MAX: Duration = Duration::from_secs(10);

/// Where challenge responses are put for the CA to find.
pub trait ChallengeResponder: Send + Sync {
    /// Serve `key_authorization` for `token` (HTTP-01) or for `name` (TLS-ALPN-01).
    fn provision(
        &self,
        kind: ChallengeType,
        name: &str,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), AcmeError>;
    /// The validation is over: stop serving it.
    fn clean(&self, kind: ChallengeType, name: &str, token: &str);
}

pub struct AcmeClient {
    http: Https,
    directory: Directory,
    key: AccountKey,
    kid: Option<String>,
    nonce: Option<String>,
}

impl AcmeClient {
    /// Reads the directory at `url`.
    pub async fn connect(http: Https, url: &str, key: AccountKey) -> Result<AcmeClient, AcmeError> {
        let r = http.request("GET", url, None).await?;
        if r.status != 200 {
            return Err(AcmeError::Protocol(format!(
                "the ACME directory {url} answered HTTP {}",
                r.status
            )));
        }
        let directory: Directory = serde_json::from_slice(&r.body).map_err(|e| {
            AcmeError::Protocol(format!("the ACME directory {url} is no directory: {e}"))
        })?;
        if directory.meta.external_account_required {
            return Err(AcmeError::Protocol(format!(
                "{url} requires external account binding, which Kurier does not do"
            )));
        }
        Ok(AcmeClient {
            http,
            directory,
            key,
            kid: None,
            nonce: None,
        })
    }

    /// Registers the key, or finds its existing account (§7.3: the same key answers 200 with
    /// the account URL); agrees to the terms of service, as `acme.enabled` means.
    pub async fn register(&mut self, contact: &[String]) -> Result<String, AcmeError> {
        let payload = serde_json::json!({
            "termsOfServiceAgreed": true,
            "contact": contact,
        });
        let url = self.directory.new_account.clone();
        let r = self.post(&url, Some(&payload)).await?;
        let kid = r
            .location
            .ok_or_else(|| AcmeError::Protocol("newAccount answered without a Location".into()))?;
        self.kid = Some(kid.clone());
        Ok(kid)
    }

    /// One order for `names`, signed over `cert_key`, until `deadline`; the chain (leaf first).
    /// Whatever happens, the challenge responses provisioned for it are withdrawn.
    pub async fn issue(
        &mut self,
        names: &[String],
        cert_key: &PKeyRef<Private>,
        responder: &dyn ChallengeResponder,
        preferred: &[ChallengeType],
        deadline: Duration,
    ) -> Result<Vec<X509>, AcmeError> {
        let mut provisioned = Vec::new();
        let until = Instant::now() + deadline;
        let result = self
            .run_order(
                names,
                cert_key,
                responder,
                preferred,
                until,
                &mut provisioned,
            )
            .await
            .map_err(|e| match e {
                AcmeError::Timeout(_) => AcmeError::Timeout(format!(
                    "the order for {} was not done within {} s",
                    names.join(", "),
                    deadline.as_secs()
                )),
                other => other,
            });
        for (kind, name, token) in provisioned {
            responder.clean(kind, &name, &token);
        }
        result
    }

    async fn run_order(
        &mut self,
        names: &[String],
        cert_key: &PKeyRef<Private>,
        responder: &dyn ChallengeResponder,
        preferred: &[ChallengeType],
        until: Instant,
        provisioned: &mut Vec<(ChallengeType, String, String)>,
    ) -> Result<Vec<X509>, AcmeError> {
        let identifiers: Vec<serde_json::Value> = names
            .iter()
            .map(|n| serde_json::json!({"type": "dns", "value": n}))
            .collect();
        let new_order = self.directory.new_order.clone();
        let r = self
            .post(
                &new_order,
                Some(&serde_json::json!({ "identifiers": identifiers })),
            )
            .await?;
        let order_url = r
            .location
            .clone()
            .ok_or_else(|| AcmeError::Protocol("newOrder answered without a Location".into()))?;
        let mut order: Order = json(&r, "order")?;
        loop {
            if Instant::now() > until {
                return Err(AcmeError::Timeout(String::new()));
            }
            let mut wait = None;
            match order_step(&order) {
                OrderStep::Authorize(urls) => {
                    for url in urls {
                        let r = self.post(&url, None).await?;
                        let authz: Authorization = json(&r, "authorization")?;
                        match authorization_step(&authz, preferred) {
                            AuthorizationStep::Respond(c) => {
                                let kind = if c.kind == ChallengeType::Http01.name() {
                                    ChallengeType::Http01
                                } else {
                                    ChallengeType::TlsAlpn01
                                };
                                let ka = self.key.key_authorization(&c.token)?;
                                let name = authz.identifier.value.clone();
                                // Cleaned up even if provisioning fails halfway.
                                provisioned.push((kind, name.clone(), c.token.clone()));
                                responder.provision(kind, &name, &c.token, &ka)?;
                                // §7.5.1: an empty object says "ready to be validated".
                                self.post(&c.url, Some(&serde_json::json!({}))).await?;
                            }
                            AuthorizationStep::Wait => wait = wait.or(r.retry_after),
                            AuthorizationStep::Done => {}
                            AuthorizationStep::Failed(why) => return Err(AcmeError::Failed(why)),
                        }
                    }
                }
                OrderStep::Finalize(url) => {
                    let csr = csr(names, cert_key)?;
                    let r = self
                        .post(&url, Some(&serde_json::json!({ "csr": b64u(&csr) })))
                        .await?;
                    order = json(&r, "order")?;
                    continue;
                }
                OrderStep::Wait => {}
                OrderStep::Download(url) => {
                    let r = self.post(&url, None).await?;
                    return chain(&r.body, names, cert_key);
                }
                OrderStep::Failed(why) => return Err(AcmeError::Failed(why)),
            }
            let pause = wait
                .map(Duration::from_secs)
                .unwrap_or(POLL_MIN)
                .clamp(POLL_MIN, POLL_MAX);
            tokio::time::sleep(pause).await;
            let r = self.post(&order_url, None).await?;
            order = json(&r, "order")?;
        }
    }

    async fn fresh_nonce(&mut self) -> Result<String, AcmeError> {
        if let Some(n) = self.nonce.take() {
            return Ok(n);
        }
        let url = self.directory.new_nonce.clone();
        let r = self.http.request("HEAD", &url, None).await?;
        r.nonce
            .ok_or_else(|| AcmeError::Protocol("newNonce answered without a Replay-Nonce".into()))
    }

    /// A signed POST (`payload: None` is POST-as-GET); an error status becomes the problem.
    async fn post(
        &mut self,
        url: &str,
        payload: Option<&serde_json::Value>,
    ) -> Result<HttpResponse, AcmeError> {
        let mut tries = 0;
        loop {
            let nonce = self.fresh_nonce().await?;
            let body = self.key.sign(url, &nonce, self.kid.as_deref(), payload)?;
            let r = self.http.request("POST", url, Some(body)).await?;
            // Every response carries the next nonce (§6.5).
            self.nonce = r.nonce.clone();
            if r.status < 400 {
                return Ok(r);
            }
            let problem: Problem = serde_json::from_slice(&r.body).unwrap_or_else(|_| Problem {
                kind: String::new(),
                detail: String::from_utf8_lossy(&r.body).chars().take(200).collect(),
            });
            tries += 1;
            if problem.is_bad_nonce() && tries <= NONCE_RETRIES {
                continue;
            }
            return Err(AcmeError::Problem {
                url: url.to_string(),
                status: r.status,
                problem,
            });
        }
    }
}

fn json<T: serde::de::DeserializeOwned>(r: &HttpResponse, what: &str) -> Result<T, AcmeError> {
    serde_json::from_slice(&r.body)
        .map_err(|e| AcmeError::Protocol(format!("the CA sent no valid {what}: {e}")))
}
