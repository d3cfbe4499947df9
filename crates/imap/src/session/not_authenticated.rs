//! The not-authenticated state (RFC 9051 §3.1, §6.2): STARTTLS, LOGIN and AUTHENTICATE
//! (PLAIN and LOGIN, with SASL-IR), none of them before TLS (TR-03108 MUA-2). A login that
//! works yields the `User` of the authenticated state.

use kurier_access::{LoginOutcome, base64_decode, plain, throttled_login};
use tokio::io::{AsyncRead, AsyncWrite};

use super::authenticated::User;
use super::{Connection, Done, Flow, Res, bad, no, ok};
use crate::command::Command;
use crate::server::{Io, ReadEnd};

/// A login that worked: the user and the tagged OK.
type LoggedIn = Result<(User, Done), Done>;

impl Connection {
    /// STARTTLS (RFC 9051 §6.2.1): only on port 143, once.
    pub(super) fn start_tls(&self) -> Res {
        if self.tls || !self.starttls {
            return Err(bad("TLS is already active"));
        }
        Ok(Done {
            flow: Flow::StartTls,
            ..ok("Begin TLS negotiation now")
        })
    }

    /// LOGIN or AUTHENTICATE; anything else needs a login first.
    pub(super) async fn log_in<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        cmd: Command,
        io: &mut Io<S>,
    ) -> LoggedIn {
        match cmd {
            Command::Login { user, password } => self.login_command(&user, &password).await,
            Command::Authenticate { mechanism, initial } => {
                self.authenticate(&mechanism, initial, io).await
            }
            _ => Err(bad("[CLIENTBUG] Log in first")),
        }
    }

    async fn login_command(&self, user: &[u8], password: &[u8]) -> LoggedIn {
        if !self.tls {
            return Err(no("[PRIVACYREQUIRED] LOGIN is disabled before STARTTLS"));
        }
        let (Ok(user), Ok(password)) = (std::str::from_utf8(user), std::str::from_utf8(password))
        else {
            return Err(no("[AUTHENTICATIONFAILED] Invalid credentials"));
        };
        self.login(user, password).await
    }

    async fn authenticate<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mechanism: &str,
        initial: Option<String>,
        io: &mut Io<S>,
    ) -> LoggedIn {
        if !self.tls {
            return Err(no(
                "[PRIVACYREQUIRED] AUTHENTICATE is disabled before STARTTLS",
            ));
        }
        let limit = self.server.login_timeout;
        let ask = async |io: &mut Io<S>, challenge: &str| -> Result<Vec<u8>, Done> {
            io.out
                .extend_from_slice(format!("+ {challenge}\r\n").as_bytes());
            let line = io.line(limit).await.map_err(|e| match e {
                ReadEnd::TooLong => bad("[CLIENTBUG] Response too long"),
                _ => Done {
                    flow: Flow::Close,
                    ..bad("Connection closed during AUTHENTICATE")
                },
            })?;
            if line == b"*" {
                return Err(bad("AUTHENTICATE cancelled"));
            }
            let text = String::from_utf8_lossy(&line).into_owned();
            base64_decode(&text).ok_or_else(|| bad("[CLIENTBUG] Response is not base64"))
        };
        let (user, password) = match mechanism {
            "PLAIN" => {
                let response = match initial {
                    Some(i) => base64_decode(&i)
                        .ok_or_else(|| bad("[CLIENTBUG] Response is not base64"))?,
                    None => ask(io, "").await?,
                };
                plain(&response).ok_or_else(|| no("[AUTHENTICATIONFAILED] Invalid credentials"))?
            }
            "LOGIN" => {
                let user = match initial {
                    Some(i) => base64_decode(&i)
                        .ok_or_else(|| bad("[CLIENTBUG] Response is not base64"))?,
                    None => ask(io, "VXNlcm5hbWU6").await?,
                };
                let password = ask(io, "UGFzc3dvcmQ6").await?;
                match (String::from_utf8(user), String::from_utf8(password)) {
                    (Ok(u), Ok(p)) => (u, p),
                    _ => return Err(no("[AUTHENTICATIONFAILED] Invalid credentials")),
                }
            }
            _ => {
                return Err(no(format!(
                    "[CANNOT] Mechanism {mechanism} is not supported; use PLAIN"
                )));
            }
        };
        self.login(&user, &password).await
    }

    /// Checks credentials through the shared throttle; logs the user, never the password.
    async fn login(&self, user: &str, password: &str) -> LoggedIn {
        let store = self.server.store.clone();
        let check = async {
            match store.authenticate_client(user, password).await {
                Ok(account) => Ok(account),
                Err(e) => {
                    tracing::error!(error = %e, "IMAP: cannot check credentials");
                    Err(())
                }
            }
        };
        match throttled_login(&self.server.throttle, self.peer.ip(), user, check).await {
            LoginOutcome::Ok(account) => {
                tracing::info!(peer = %self.peer, account = %account.address, "IMAP login");
                let done = ok(format!(
                    "[CAPABILITY {}] Logged in",
                    self.capabilities(true)
                ));
                Ok((User::new(account, self.server.store.subscribe()), done))
            }
            LoginOutcome::Invalid => {
                tracing::warn!(peer = %self.peer, user, "IMAP authentication failed");
                Err(no("[AUTHENTICATIONFAILED] Invalid credentials"))
            }
            LoginOutcome::Blocked => {
                tracing::warn!(peer = %self.peer, user, "IMAP authentication blocked after repeated failures");
                Err(no("[UNAVAILABLE] Too many failed logins; try again later"))
            }
            LoginOutcome::Unavailable => Err(no(
                "[UNAVAILABLE] Cannot check credentials now; try again later",
            )),
        }
    }
}
