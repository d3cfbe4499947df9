//! A DNS relay for fault tests: UDP questions are passed to a target server (switchable while
//! running) and the answers back; questions of chosen types are dropped (a server that times
//! out on AAAA, say), or answered REFUSED. It runs on its own thread until dropped.

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::WorldError;

#[derive(Default)]
struct Rules {
    target: Option<SocketAddr>,
    /// Query types (numbers) never answered.
    drop: HashSet<u16>,
    refuse: bool,
}

pub struct DnsRelay {
    pub addr: SocketAddr,
    rules: Arc<Mutex<Rules>>,
    stop: Arc<AtomicBool>,
}

impl DnsRelay {
    /// Listens on `addr` (UDP) and relays to `target`.
    pub fn start(addr: SocketAddr, target: SocketAddr) -> Result<DnsRelay, WorldError> {
        let socket =
            UdpSocket::bind(addr).map_err(|e| WorldError(format!("DNS relay on {addr}: {e}")))?;
        socket.set_read_timeout(Some(Duration::from_millis(10)))?;
        let rules = Arc::new(Mutex::new(Rules {
            target: Some(target),
            ..Rules::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (r, s) = (rules.clone(), stop.clone());
        std::thread::spawn(move || serve(socket, r, s));
        Ok(DnsRelay { addr, rules, stop })
    }

    /// Relays to another server from now on.
    pub fn switch_to(&self, target: SocketAddr) {
        if let Ok(mut r) = self.rules.lock() {
            r.target = Some(target);
        }
    }

    /// Never answers questions of this type (e.g. 28, AAAA).
    pub fn drop_type(&self, qtype: u16) {
        if let Ok(mut r) = self.rules.lock() {
            r.drop.insert(qtype);
        }
    }

    /// Answers every question REFUSED (RFC 1035 §4.1.1, rcode 5).
    pub fn refuse(&self, on: bool) {
        if let Ok(mut r) = self.rules.lock() {
            r.refuse = on;
        }
    }
}

impl Drop for DnsRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The question type of a DNS message: after the 12-byte header, the QNAME's labels, then
/// QTYPE (RFC 1035 §4.1.2).
fn qtype(m: &[u8]) -> Option<u16> {
    let mut i = 12;
    loop {
        let len = usize::from(*m.get(i)?);
        if len == 0 {
            break;
        }
        i += len + 1;
    }
    Some(u16::from_be_bytes([*m.get(i + 1)?, *m.get(i + 2)?]))
}

fn serve(socket: UdpSocket, rules: Arc<Mutex<Rules>>, stop: Arc<AtomicBool>) {
    let mut buf = vec![0u8; 65535];
    let mut back = vec![0u8; 65535];
    let mut pending: Vec<(u16, SocketAddr, UdpSocket)> = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        if let Ok((n, client)) = socket.recv_from(&mut buf) {
            let question = buf[..n].to_vec();
            let (target, drop, refuse) = match rules.lock() {
                Ok(r) => (
                    r.target,
                    qtype(&question).is_some_and(|t| r.drop.contains(&t)),
                    r.refuse,
                ),
                Err(_) => continue,
            };
            if refuse && question.len() >= 12 {
                let mut answer = question.clone();
                answer[2] |= 0x80; // QR
                answer[3] = (answer[3] & 0xf0) | 5;
                let _ = socket.send_to(&answer, client);
                continue;
            }
            if drop || question.len() < 12 {
                continue;
            }
            let Some(target) = target else { continue };
            let bind = if target.is_ipv4() {
                "0.0.0.0:0"
            } else {
                "[::]:0"
            };
            if let Ok(up) = UdpSocket::bind(bind)
                && up.set_nonblocking(true).is_ok()
                && up.send_to(&question, target).is_ok()
            {
                let id = u16::from_be_bytes([question[0], question[1]]);
                pending.push((id, client, up));
            }
        }
        // Answers that came back; questions older than a few rounds are given up.
        pending.retain(|(id, client, up)| {
            let b = &mut back;
            match up.recv(b) {
                Ok(n) if n >= 2 && u16::from_be_bytes([b[0], b[1]]) == *id => {
                    let _ = socket.send_to(&b[..n], client);
                    false
                }
                Ok(_) => true,
                Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
            }
        });
        if pending.len() > 1000 {
            pending.drain(..500);
        }
    }
}
