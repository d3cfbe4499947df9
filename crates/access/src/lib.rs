//! # kurier-access — what every client-facing listener of Kurier shares
//!
//! SASL decoding for submission (RFC 4954), IMAP (RFC 9051 §6.2.2) and POP3 (RFC 5034): base64
//! (RFC 4648 §4), PLAIN (RFC 4616) and the common LOGIN; and one failure throttle with an
//! injected clock that every protocol consults, so that switching from port 465 to 993 gains an
//! attacker nothing (TR-03108 MUA-2); the per-address connection limit and the accept loop with
//! graceful shutdown of every listener; connection and recipient rates per address and
//! network (`rate`); a floor under answer times that must not tell what exists (`reply_floor`).
//!
//! Must not: log or keep a password; know any protocol's syntax.

#![forbid(unsafe_code)]

pub mod rate;
pub mod reply_floor;

pub use rate::{RateLimit, RateVerdict};
pub use reply_floor::ReplyFloor;

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

/// Failed logins, and attempts under way: an attempt takes one of the `block_after − failures`
/// places left *when it starts*, and attempts past those wait until one ends (so 100 parallel
/// guesses are not all checked before the first failure is known, while 100 parallel correct
/// logins from one office all get through, a few at a time). Three keys:
/// - the source (an IPv4 address, an IPv6 /64): `block_after` failures within `window` block
///   every further attempt from it;
/// - the account from one network (IPv4 /24, IPv6 /64): the same limit, so an attacker
///   guessing one password locks only their own network out, not the account's owner;
/// - the account from anywhere: `4 × block_after` block it for networks that have not logged
///   in successfully within `KNOWN_GOOD` (a distributed guess cannot lock out the owner, whose
///   network is known good — what Dovecot's auth penalty gives by resetting per address).
///
/// Each failure doubles the delay before the next answer (from 250 ms, at most 8 s).
pub struct AuthThrottle {
    window: Duration,
    block_after: u32,
    by_source: HashMap<IpAddr, Count>,
    by_account_net: HashMap<(String, IpAddr), Count>,
    by_account: HashMap<String, Count>,
    known_good: HashMap<(String, IpAddr), Instant>,
}

/// How long a network where an account logged in stays known good for it.
pub const KNOWN_GOOD: Duration = Duration::from_secs(30 * 24 * 3600);

/// Entries a throttle map may hold before stale ones are dropped (a spray of addresses).
const MAX_ENTRIES: usize = 100_000;

#[derive(Debug, Clone, Copy)]
struct Count {
    failures: u32,
    in_flight: u32,
    last: Instant,
}

impl Count {
    /// Failures within the window.
    fn failures(&self, now: Instant, window: Duration) -> u32 {
        if now.duration_since(self.last) < window {
            self.failures
        } else {
            0
        }
    }
}

/// What the throttle says before a login attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleVerdict {
    /// Go ahead, after waiting this long.
    Proceed(Duration),
    /// Every place is taken by attempts under way: ask again when one has ended.
    Wait,
    /// Too many failures: refuse with a temporary error.
    Blocked,
}

/// The source key: IPv4 addresses alone, IPv6 by /64 (one host usually has a whole /64).
fn source(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => IpAddr::V6((u128::from(v6) & !((1u128 << 64) - 1)).into()),
    }
}

/// The network key: IPv4 /24, IPv6 /64.
fn network(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4((u32::from(v4) & 0xffff_ff00).into()),
        IpAddr::V6(_) => source(ip),
    }
}

impl AuthThrottle {
    pub fn new(window: Duration, block_after: u32) -> Self {
        AuthThrottle {
            window,
            block_after,
            by_source: HashMap::new(),
            by_account_net: HashMap::new(),
            by_account: HashMap::new(),
            known_good: HashMap::new(),
        }
    }

    fn keys(ip: IpAddr, account: &str) -> (IpAddr, (String, IpAddr), String) {
        let account = account.to_lowercase();
        (source(ip), (account.clone(), network(ip)), account)
    }

    /// Whether an attempt may start now, and after what delay. Counts nothing.
    pub fn check(&self, ip: IpAddr, account: &str, now: Instant) -> ThrottleVerdict {
        let (src, acc_net, acc) = Self::keys(ip, account);
        let w = self.window;
        // (failures, failures + attempts under way) of one key.
        let n = |c: Option<&Count>| {
            c.map_or((0, 0), |c| {
                (c.failures(now, w), c.failures(now, w) + c.in_flight)
            })
        };
        let (src_failed, src_taken) = n(self.by_source.get(&src));
        let (net_failed, net_taken) = n(self.by_account_net.get(&acc_net));
        let known = self
            .known_good
            .get(&acc_net)
            .is_some_and(|t| now.duration_since(*t) < KNOWN_GOOD);
        let (all_failed, all_taken) = if known {
            (0, 0)
        } else {
            n(self.by_account.get(&acc))
        };
        let (near, everywhere) = (self.block_after, self.block_after.saturating_mul(4));
        if src_failed >= near || net_failed >= near || all_failed >= everywhere {
            return ThrottleVerdict::Blocked;
        }
        if src_taken >= near || net_taken >= near || all_taken >= everywhere {
            return ThrottleVerdict::Wait;
        }
        let failed = src_failed.max(net_failed);
        let delay = if failed == 0 {
            Duration::ZERO
        } else {
            Duration::from_millis(250 << (failed - 1).min(5))
        };
        ThrottleVerdict::Proceed(delay)
    }

    /// `check`, and if the attempt may go ahead, counts it as under way at once.
    pub fn begin(&mut self, ip: IpAddr, account: &str, now: Instant) -> ThrottleVerdict {
        let verdict = self.check(ip, account, now);
        if let ThrottleVerdict::Proceed(_) = verdict {
            let (src, acc_net, acc) = Self::keys(ip, account);
            let fresh = Count {
                failures: 0,
                in_flight: 0,
                last: now,
            };
            self.by_source.entry(src).or_insert(fresh).in_flight += 1;
            self.by_account_net
                .entry(acc_net)
                .or_insert(fresh)
                .in_flight += 1;
            self.by_account.entry(acc).or_insert(fresh).in_flight += 1;
            self.prune(now);
        }
        verdict
    }

    /// Ends an attempt that `begin` let through: `Some(true)` valid, `Some(false)` invalid,
    /// `None` not decided (store unavailable, client gone).
    pub fn end(&mut self, ip: IpAddr, account: &str, valid: Option<bool>, now: Instant) {
        let (src, acc_net, acc) = Self::keys(ip, account);
        let window = self.window;
        let settle = |c: &mut Count| {
            c.in_flight = c.in_flight.saturating_sub(1);
            if valid == Some(false) {
                c.failures = if now.duration_since(c.last) >= window {
                    1
                } else {
                    c.failures + 1
                };
                c.last = now;
            }
        };
        for c in [
            self.by_source.get_mut(&src),
            self.by_account_net.get_mut(&acc_net),
            self.by_account.get_mut(&acc),
        ]
        .into_iter()
        .flatten()
        {
            settle(c);
        }
        if valid == Some(true) {
            // The owner's own network starts afresh and stays known good.
            if let Some(c) = self.by_account_net.get_mut(&acc_net) {
                c.failures = 0;
            }
            if let Some(c) = self.by_source.get_mut(&src) {
                c.failures = 0;
            }
            self.known_good.insert(acc_net, now);
        }
    }

    /// Keeps the maps from growing without bound under a spray of addresses or names.
    fn prune(&mut self, now: Instant) {
        let window = self.window;
        let live = |c: &Count| c.in_flight > 0 || now.duration_since(c.last) < window;
        if self.by_source.len() > MAX_ENTRIES {
            self.by_source.retain(|_, c| live(c));
        }
        if self.by_account_net.len() > MAX_ENTRIES {
            self.by_account_net.retain(|_, c| live(c));
        }
        if self.by_account.len() > MAX_ENTRIES {
            self.by_account.retain(|_, c| live(c));
        }
        if self.known_good.len() > MAX_ENTRIES {
            self.known_good
                .retain(|_, t| now.duration_since(*t) < KNOWN_GOOD);
        }
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

/// An attempt counted by `begin`; if it is dropped undecided (the client went away during the
/// check) it is uncounted, so nothing stays "in flight" for ever.
struct Attempt<'a> {
    throttle: &'a Mutex<AuthThrottle>,
    ip: IpAddr,
    user: &'a str,
    done: bool,
}

impl Attempt<'_> {
    fn end(mut self, valid: Option<bool>) {
        self.done = true;
        lock(self.throttle).end(self.ip, self.user, valid, Instant::now());
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.done {
            lock(self.throttle).end(self.ip, self.user, None, Instant::now());
        }
    }
}

fn lock(t: &Mutex<AuthThrottle>) -> std::sync::MutexGuard<'_, AuthThrottle> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// One login through the throttle: counts the attempt, waits the delay the throttle asks for,
/// runs `check` (`Ok(Some)` valid, `Ok(None)` invalid, `Err` unavailable), and records the
/// outcome.
pub async fn throttled_login<T, F>(
    throttle: &Mutex<AuthThrottle>,
    ip: IpAddr,
    user: &str,
    check: F,
) -> LoginOutcome<T>
where
    F: Future<Output = Result<Option<T>, ()>>,
{
    // Waiting for a place is bounded too: past it the answer is the temporary refusal.
    let give_up = Instant::now() + Duration::from_secs(60);
    let delay = loop {
        // The guard must not live across the sleep below.
        let verdict = lock(throttle).begin(ip, user, Instant::now());
        match verdict {
            ThrottleVerdict::Blocked => return LoginOutcome::Blocked,
            ThrottleVerdict::Proceed(delay) => break delay,
            ThrottleVerdict::Wait if Instant::now() >= give_up => return LoginOutcome::Blocked,
            ThrottleVerdict::Wait => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let attempt = Attempt {
        throttle,
        ip,
        user,
        done: false,
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match check.await {
        Ok(Some(v)) => {
            attempt.end(Some(true));
            LoginOutcome::Ok(v)
        }
        Ok(None) => {
            attempt.end(Some(false));
            LoginOutcome::Invalid
        }
        Err(()) => {
            attempt.end(None);
            LoginOutcome::Unavailable
        }
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

/// A number of bytes all sessions together may hold (RAM for message bodies: SMTP DATA/BDAT
/// and IMAP APPEND literals), taken and given back without a lock.
#[derive(Debug)]
pub struct ByteBudget {
    limit: u64,
    used: std::sync::atomic::AtomicU64,
}

impl ByteBudget {
    pub fn new(limit: u64) -> Arc<Self> {
        Arc::new(ByteBudget {
            limit,
            used: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// No limit (tests, fuzzing).
    pub fn unlimited() -> Arc<Self> {
        Self::new(u64::MAX)
    }

    /// Bytes taken now.
    pub fn in_use(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Takes `n` bytes if they fit; `false` leaves the budget as it was.
    pub fn take(&self, n: u64) -> bool {
        use std::sync::atomic::Ordering;
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(n).filter(|&after| after <= self.limit)
            })
            .is_ok()
    }

    /// Gives back `n` bytes taken before.
    pub fn give(&self, n: u64) {
        use std::sync::atomic::Ordering;
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(n))
            });
    }
}

/// Bytes held of a `ByteBudget`, given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<ByteBudget>,
    bytes: u64,
}

impl Reservation {
    /// Holds nothing yet.
    pub fn empty(budget: &Arc<ByteBudget>) -> Self {
        Reservation {
            budget: budget.clone(),
            bytes: 0,
        }
    }

    /// Holds `n` more bytes if they fit.
    pub fn grow(&mut self, n: u64) -> bool {
        let ok = self.budget.take(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// Gives everything back now (the reservation can grow again).
    pub fn clear(&mut self) {
        self.budget.give(self.bytes);
        self.bytes = 0;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Moves what this holds into a new reservation; this one holds nothing after.
    pub fn split_off(&mut self) -> Reservation {
        Reservation {
            budget: self.budget.clone(),
            bytes: std::mem::take(&mut self.bytes),
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.clear();
    }
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

    #[tokio::test(start_paused = true)]
    async fn throttled_login_records_failures() {
        let t = Mutex::new(AuthThrottle::new(Duration::from_secs(60), 2));
        let ip: IpAddr = "192.0.2.9".parse().unwrap();
        let bad = throttled_login::<u8, _>(&t, ip, "u", async { Ok(None) }).await;
        assert_eq!(bad, LoginOutcome::Invalid);
        let good = throttled_login(&t, ip, "u", async { Ok(Some(1)) }).await;
        assert_eq!(good, LoginOutcome::Ok(1));
        let _ = throttled_login::<u8, _>(&t, ip, "v", async { Ok(None) }).await;
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

    /// Issue 16 item 6: 100 parallel wrong logins from one address — at most `block_after`
    /// reach the password check; the rest are blocked before it.
    #[tokio::test(start_paused = true)]
    async fn parallel_attempts_are_counted_when_they_start() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let t = Arc::new(Mutex::new(AuthThrottle::new(Duration::from_secs(900), 10)));
        let checked = Arc::new(AtomicU32::new(0));
        let ip: IpAddr = "192.0.2.50".parse().unwrap();
        let mut set = JoinSet::new();
        for i in 0..100 {
            let (t, checked) = (t.clone(), checked.clone());
            set.spawn(async move {
                let user = format!("user{}@x.test", i % 7);
                throttled_login::<u8, _>(&t, ip, &user, async {
                    checked.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(None)
                })
                .await
            });
        }
        let mut blocked = 0;
        while let Some(r) = set.join_next().await {
            if r.unwrap() == LoginOutcome::Blocked {
                blocked += 1;
            }
        }
        assert!(
            checked.load(Ordering::SeqCst) <= 10,
            "checked {}",
            checked.load(Ordering::SeqCst)
        );
        assert_eq!(blocked, 100 - checked.load(Ordering::SeqCst));
    }

    /// …while 100 parallel *correct* logins from one address (an office behind one NAT) all
    /// get through: attempts past the free places wait for one, they are not refused.
    #[tokio::test(start_paused = true)]
    async fn parallel_correct_logins_all_get_through() {
        let t = Arc::new(Mutex::new(AuthThrottle::new(Duration::from_secs(900), 10)));
        let ip: IpAddr = "192.0.2.52".parse().unwrap();
        let mut set = JoinSet::new();
        for i in 0..100 {
            let t = t.clone();
            set.spawn(async move {
                let user = format!("user{}@x.test", i % 7);
                throttled_login(&t, ip, &user, async {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    Ok(Some(i))
                })
                .await
            });
        }
        let mut ok = 0;
        while let Some(r) = set.join_next().await {
            if matches!(r.unwrap(), LoginOutcome::Ok(_)) {
                ok += 1;
            }
        }
        assert_eq!(ok, 100);
    }

    #[tokio::test(start_paused = true)]
    async fn an_abandoned_attempt_is_uncounted() {
        let t = Mutex::new(AuthThrottle::new(Duration::from_secs(900), 1));
        let ip: IpAddr = "192.0.2.51".parse().unwrap();
        let attempt = throttled_login::<u8, _>(&t, ip, "a", std::future::pending());
        let _ = tokio::time::timeout(Duration::from_millis(10), attempt).await;
        let ok = throttled_login(&t, ip, "a", async { Ok(Some(1)) }).await;
        assert_eq!(
            ok,
            LoginOutcome::Ok(1),
            "the dropped attempt left nothing in flight"
        );
    }

    #[test]
    fn byte_budget_reservations_give_back_on_drop() {
        let budget = ByteBudget::new(100);
        let mut a = Reservation::empty(&budget);
        assert!(a.grow(60));
        let mut b = Reservation::empty(&budget);
        assert!(!b.grow(41), "past the limit");
        assert!(b.grow(40));
        assert_eq!(budget.in_use(), 100);
        a.clear();
        assert_eq!(budget.in_use(), 40);
        drop(b);
        assert_eq!(budget.in_use(), 0);
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

    fn fail(t: &mut AuthThrottle, ip: IpAddr, account: &str, now: Instant) {
        assert_ne!(t.begin(ip, account, now), ThrottleVerdict::Blocked);
        t.end(ip, account, Some(false), now);
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
        fail(&mut t, ip, "a@x.test", t0);
        assert_eq!(
            t.check(ip, "a@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(250))
        );
        fail(&mut t, ip, "a@x.test", t0);
        assert_eq!(
            t.check(ip, "b@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(500)),
            "per source"
        );
        let neighbour: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(
            t.check(neighbour, "A@x.test", t0),
            ThrottleVerdict::Proceed(Duration::from_millis(500)),
            "per account and network"
        );
        for _ in 0..3 {
            fail(&mut t, ip, "a@x.test", t0);
        }
        assert_eq!(t.check(ip, "c@x.test", t0), ThrottleVerdict::Blocked);
        assert_eq!(t.check(neighbour, "a@x.test", t0), ThrottleVerdict::Blocked);
        assert_eq!(
            t.check(ip, "c@x.test", t0 + Duration::from_secs(901)),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
    }

    /// Issue 16 item 6: failures from elsewhere never lock the owner out of a network where
    /// the account logged in before; an attacker locks only their own network.
    #[test]
    fn attackers_cannot_lock_out_the_owner() {
        let t0 = Instant::now();
        let mut t = AuthThrottle::new(Duration::from_secs(900), 10);
        let home: IpAddr = "198.51.100.7".parse().unwrap();
        assert_ne!(t.begin(home, "alice@x.test", t0), ThrottleVerdict::Blocked);
        t.end(home, "alice@x.test", Some(true), t0);
        // 10 failures from one attacker network: that network is blocked for alice…
        let attacker: IpAddr = "203.0.113.9".parse().unwrap();
        for _ in 0..10 {
            fail(&mut t, attacker, "alice@x.test", t0);
        }
        assert_eq!(
            t.check(attacker, "alice@x.test", t0),
            ThrottleVerdict::Blocked
        );
        // …but not for her at home, nor from a new network, yet.
        assert_eq!(
            t.check(home, "alice@x.test", t0),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
        let cafe: IpAddr = "192.0.2.77".parse().unwrap();
        assert_eq!(
            t.check(cafe, "alice@x.test", t0),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
        // A distributed guess (many networks, 40 failures): unknown networks are blocked for
        // the account, the known-good home network is not.
        for i in 0..30u32 {
            let ip = IpAddr::V4((0x0a00_0000 + (i << 8)).into());
            fail(&mut t, ip, "alice@x.test", t0);
        }
        assert_eq!(t.check(cafe, "alice@x.test", t0), ThrottleVerdict::Blocked);
        assert_eq!(
            t.check(home, "alice@x.test", t0),
            ThrottleVerdict::Proceed(Duration::ZERO)
        );
        // IPv6: one /64 is one source.
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        for _ in 0..10 {
            fail(&mut t, a, "bob@x.test", t0);
        }
        assert_eq!(t.check(b, "carol@x.test", t0), ThrottleVerdict::Blocked);
    }
}
