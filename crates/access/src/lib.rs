//! # kurier-access — what every client-facing listener of Kurier shares
//!
//! SASL decoding for submission (RFC 4954), IMAP (RFC 9051 §6.2.2) and POP3 (RFC 5034): base64
//! (RFC 4648 §4), PLAIN (RFC 4616) and the common LOGIN; and one failure throttle with an
//! injected clock that every protocol consults, so that switching from port 465 to 993 gains an
//! attacker nothing (TR-03108 MUA-2); the per-address connection limit and the accept loop with
//! graceful shutdown of every listener.
//!
//! Must not: log or keep a password; know any protocol's syntax.

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Decodes standard base64 (RFC 4648 §4), padding optional; `None` for anything else.
pub fn base64_decode(s: &str) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let s = s.trim().trim_end_matches('=').as_bytes();
    if s.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    for chunk in s.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= val(c)? << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    Some(out)
}

/// Encodes standard base64 with padding (RFC 4648 §4), for SASL challenges.
pub fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i)) as usize & 63]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Credentials from a PLAIN response: `authzid NUL authcid NUL passwd`. An authorization
/// identity other than the user itself is refused (no proxy authentication).
pub fn plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let (authz, user, pass) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || user.is_empty() || pass.is_empty() {
        return None;
    }
    if !authz.is_empty() && authz != user {
        return None;
    }
    Some((
        String::from_utf8(user.to_vec()).ok()?,
        String::from_utf8(pass.to_vec()).ok()?,
    ))
}

/// Failed logins, per client address and per account: each failure doubles the delay before
/// the next answer (from 250 ms, at most 8 s); `block_after` failures within `window` block
/// further attempts until the window has passed. Success clears the account's record.
pub struct AuthThrottle {
    window: Duration,
    block_after: u32,
    by_ip: HashMap<IpAddr, (u32, Instant)>,
    by_account: HashMap<String, (u32, Instant)>,
}

/// What the throttle says before a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    /// Go ahead, after waiting this long.
    Proceed(Duration),
    /// Too many failures: refuse with a temporary error.
    Blocked,
}

impl AuthThrottle {
    pub fn new(window: Duration, block_after: u32) -> Self {
        AuthThrottle {
            window,
            block_after,
            by_ip: HashMap::new(),
            by_account: HashMap::new(),
        }
    }

    fn count<K: std::hash::Hash + Eq>(
        map: &HashMap<K, (u32, Instant)>,
        key: &K,
        now: Instant,
        window: Duration,
    ) -> u32 {
        map.get(key)
            .filter(|(_, last)| now.duration_since(*last) < window)
            .map(|(n, _)| *n)
            .unwrap_or(0)
    }

    pub fn check(&self, ip: IpAddr, account: &str, now: Instant) -> ThrottleVerdict {
        let n = Self::count(&self.by_ip, &ip, now, self.window).max(Self::count(
            &self.by_account,
            &account.to_lowercase(),
            now,
            self.window,
        ));
        if n >= self.block_after {
            return ThrottleVerdict::Blocked;
        }
        let delay = if n == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(250 << (n - 1).min(5))
        };
        ThrottleVerdict::Proceed(delay)
    }

    pub fn failed(&mut self, ip: IpAddr, account: &str, now: Instant) {
        let window = self.window;
        // A failure after a quiet window starts the count afresh.
        let bump = |e: &mut (u32, Instant)| {
            *e = (
                if now.duration_since(e.1) >= window {
                    1
                } else {
                    e.0 + 1
                },
                now,
            )
        };
        bump(self.by_ip.entry(ip).or_insert((0, now)));
        bump(
            self.by_account
                .entry(account.to_lowercase())
                .or_insert((0, now)),
        );
        // Keep the maps from growing without bound under a spray of addresses.
        if self.by_ip.len() > 100_000 {
            self.by_ip
                .retain(|_, (_, last)| now.duration_since(*last) < window);
        }
        if self.by_account.len() > 100_000 {
            self.by_account
                .retain(|_, (_, last)| now.duration_since(*last) < window);
        }
    }

    pub fn succeeded(&mut self, account: &str) {
        self.by_account.remove(&account.to_lowercase());
    }
}

/// How one login attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginOutcome<T> {
    Ok(T),
    /// Wrong user or password (the same answer for both).
    Invalid,
    /// Too many failures from this address or for this account: answer with a temporary error.
    Blocked,
    /// The credentials cannot be checked now (store unavailable).
    Unavailable,
}

/// One login through the throttle: waits the delay the throttle asks for, runs `check`
/// (`Ok(Some)` valid, `Ok(None)` invalid, `Err` unavailable), and records the outcome.
pub async fn throttled_login<T, F>(
    throttle: &Mutex<AuthThrottle>,
    ip: IpAddr,
    user: &str,
    check: F,
) -> LoginOutcome<T>
where
    F: Future<Output = Result<Option<T>, ()>>,
{
    let lock = || throttle.lock().unwrap_or_else(|p| p.into_inner());
    let verdict = lock().check(ip, user, Instant::now());
    match verdict {
        ThrottleVerdict::Blocked => return LoginOutcome::Blocked,
        ThrottleVerdict::Proceed(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
        ThrottleVerdict::Proceed(_) => {}
    }
    match check.await {
        Ok(Some(v)) => {
            lock().succeeded(user);
            LoginOutcome::Ok(v)
        }
        Ok(None) => {
            lock().failed(ip, user, Instant::now());
            LoginOutcome::Invalid
        }
        Err(()) => LoginOutcome::Unavailable,
    }
}

/// Accepts on `listener` and runs `handle` for each connection until `shutdown`; returns the
/// connections still open.
pub async fn accept_until<F: Future<Output = ()> + Send + 'static>(
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    what: &'static str,
    mut handle: impl FnMut(TcpStream, SocketAddr) -> F,
) -> JoinSet<()> {
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    connections.spawn(handle(tcp, peer));
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment instead of spinning.
                    tracing::warn!(error = %e, "{what} accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    connections
}

/// Serves `listener` until `shutdown`: each connection runs `session(tcp, peer, stop)`; at
/// shutdown no more are accepted, `stop` turns true for the open ones, and this returns when
/// they have ended (the caller bounds the wait).
pub async fn serve_connections<F: Future<Output = ()> + Send + 'static>(
    listener: TcpListener,
    what: &'static str,
    shutdown: impl Future<Output = ()>,
    mut session: impl FnMut(TcpStream, SocketAddr, watch::Receiver<bool>) -> F,
) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut open = accept_until(listener, shutdown, what, |tcp, peer| {
        session(tcp, peer, stop_rx.clone())
    })
    .await;
    let _ = stop_tx.send(true);
    while open.join_next().await.is_some() {}
}

/// Connections per client address, counted while their `ConnectionSlot` lives.
#[derive(Debug)]
pub struct ConnectionLimit {
    max_per_ip: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One counted connection; uncounted on drop.
#[derive(Debug)]
pub struct ConnectionSlot {
    limit: Arc<ConnectionLimit>,
    ip: IpAddr,
}

impl ConnectionLimit {
    pub fn new(max_per_ip: usize) -> Arc<Self> {
        Arc::new(ConnectionLimit {
            max_per_ip,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// Counts a connection from `ip`; `None` when the address has its maximum open.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Option<ConnectionSlot> {
        let mut m = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= self.max_per_ip {
            return None;
        }
        *n += 1;
        Some(ConnectionSlot {
            limit: self.clone(),
            ip,
        })
    }
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        let mut m = self.limit.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64() {
        assert_eq!(
            base64_decode("AGFsaWNlAHNlY3JldA==").unwrap(),
            b"\0alice\0secret"
        );
        assert_eq!(base64_decode("VXNlcm5hbWU6").unwrap(), b"Username:");
        assert_eq!(base64_decode("").unwrap(), b"");
        assert!(base64_decode("A").is_none());
        assert!(base64_decode("ab$d").is_none());
    }

    #[test]
    fn connection_limit_counts_per_address() {
        let limit = ConnectionLimit::new(2);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let s1 = limit.admit(a).unwrap();
        let _s2 = limit.admit(a).unwrap();
        assert!(limit.admit(a).is_none());
        assert!(limit.admit(b).is_some());
        drop(s1);
        assert!(limit.admit(a).is_some());
    }

    #[tokio::test]
    async fn throttled_login_records_failures() {
        let t = Mutex::new(AuthThrottle::new(Duration::from_secs(60), 2));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let bad = throttled_login::<u8, _>(&t, ip, "u", async { Ok(None) }).await;
        assert_eq!(bad, LoginOutcome::Invalid);
        let good = throttled_login(&t, ip, "u", async { Ok(Some(1)) }).await;
        assert_eq!(good, LoginOutcome::Ok(1));
        let _ = throttled_login::<u8, _>(&t, ip, "v", async { Ok(None) }).await;
        let blocked = throttled_login(&t, ip, "w", async { Ok(Some(1)) }).await;
        assert_eq!(
            blocked,
            LoginOutcome::Blocked,
            "two failures from the address"
        );
        let down = throttled_login::<u8, _>(
            &Mutex::new(AuthThrottle::new(Duration::from_secs(1), 5)),
            ip,
            "u",
            async { Err(()) },
        )
        .await;
        assert_eq!(down, LoginOutcome::Unavailable);
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(base64_encode(b"Username:"), "VXNlcm5hbWU6");
        assert_eq!(base64_encode(b"\0alice\0secret"), "AGFsaWNlAHNlY3JldA==");
        assert_eq!(base64_encode(b""), "");
        for n in 0..40u8 {
            let data: Vec<u8> = (0..n).map(|i| i.wrapping_mul(37)).collect();
            assert_eq!(base64_decode(&base64_encode(&data)).unwrap(), data);
        }
    }

    #[test]
    fn plain_responses() {
        assert_eq!(
            plain(b"\0alice\0secret"),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            plain(b"alice\0alice\0secret"),
            Some(("alice".into(), "secret".into()))
        );
        assert_eq!(
            plain(b"admin\0alice\0secret"),
            None,
            "no proxy authentication"
        );
        assert_eq!(plain(b"\0alice\0"), None);
        assert_eq!(plain(b"alice"), None);
        assert_eq!(plain(b"\0a\0b\0c"), None);
    }

    #[test]
    fn throttle_grows_blocks_and_forgets() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(Duration::from_secs(900), 5);
        assert_eq!(
            t.check(ip, "a@x.test", t0),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
        t.failed(ip, "a@x.test", t0);
        assert_eq!(
            t.check(ip, "a@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(250))
        );
        t.failed(ip, "a@x.test", t0);
        assert_eq!(
            t.check(ip, "b@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(500)),
            "per IP"
        );
        let other: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            t.check(other, "A@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(500)),
            "per account"
        );
        for _ in 0..3 {
            t.failed(ip, "a@x.test", t0);
        }
        assert_eq!(t.check(ip, "c@x.test", t0), ThrottleVerdict::Blocked);
        assert_eq!(
            t.check(ip, "c@x.test", t0 + Duration::from_secs(901)),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
        t.succeeded("a@x.test");
        assert_eq!(
            t.check(other, "a@x.test", t0),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
    }
}
