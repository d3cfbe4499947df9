//! Loopback address blocks: each world owns 127.A.B.0/24, claimed by binding a marker port that
//! stays bound for the world's life, so parallel tests (threads or processes) never collide.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::WorldError;

/// The marker port that claims a block.
const CLAIM_PORT: u16 = 64999;

pub struct Net {
    a: u8,
    b: u8,
    _claim: TcpListener,
}

impl Net {
    /// Claims a free block in 127.200.0.0 – 127.254.255.0.
    pub fn allocate() -> Result<Net, WorldError> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let start = std::process::id().wrapping_mul(7919);
        for _ in 0..2000 {
            let n = start.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % (55 * 256);
            let (a, b) = (200 + (n / 256) as u8, (n % 256) as u8);
            if let Ok(claim) = TcpListener::bind((Ipv4Addr::new(127, a, b, 254), CLAIM_PORT)) {
                return Ok(Net {
                    a,
                    b,
                    _claim: claim,
                });
            }
        }
        Err(WorldError("no free loopback block for a test world".into()))
    }

    /// 127.A.B.`host`.
    pub fn ip(&self, host: u8) -> Ipv4Addr {
        Ipv4Addr::new(127, self.a, self.b, host)
    }

    pub fn addr(&self, host: u8, port: u16) -> SocketAddr {
        SocketAddr::from((self.ip(host), port))
    }
}

/// Well-known hosts of a block.
pub mod hosts {
    /// NSD, authoritative for the root, `test.` and every zone of the world.
    pub const AUTHORITATIVE: u8 = 1;
    /// unbound, validating with the world's root as the only trust anchor.
    pub const RESOLVER: u8 = 2;
    /// unbound, recursing without validation (bogus data passes through).
    pub const PLAIN_RESOLVER: u8 = 3;
    /// Postfix peer number i listens on `POSTFIX + i`.
    pub const POSTFIX: u8 = 10;
    /// Free for the test itself (e.g. Kurier) from here on.
    pub const FREE: u8 = 100;
}
