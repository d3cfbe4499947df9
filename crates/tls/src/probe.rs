//! A TLS probe: connect with exactly the parameters asked for and report what the server did.
//!
//! Used by the tests that prove the server profiles, and by the audit (`kurier check`) to look at
//! other servers. It records the handshake messages the server sends (through OpenSSL's message
//! callback, so TLS 1.3's encrypted ones too) and reads the ServerHello extensions itself.

use std::net::TcpStream;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use openssl::ex_data::Index;
use openssl::ssl::{Ssl, SslContextBuilder, SslMethod, SslRef, SslVerifyMode, SslVersion};
use openssl::x509::X509;

use crate::TlsError;
use crate::ffi;

/// What the probing client offers. `None` leaves OpenSSL's default in place.
#[derive(Debug, Clone, Default)]
pub struct ClientOffer {
    pub min_version: Option<SslVersion>,
    pub max_version: Option<SslVersion>,
    /// OpenSSL cipher string for TLS ≤ 1.2, e.g. `ECDHE-ECDSA-AES128-SHA256`.
    pub tls12_ciphers: Option<String>,
    /// TLS 1.3 suites, e.g. `TLS_CHACHA20_POLY1305_SHA256`.
    pub tls13_suites: Option<String>,
    /// e.g. `X25519` or `P-256:brainpoolP256r1`.
    pub groups: Option<String>,
    pub sigalgs: Option<String>,
    /// SNI to send; `None` sends none.
    pub server_name: Option<String>,
    /// PEM file of CAs to verify the server against; `None` does not verify.
    pub ca_file: Option<std::path::PathBuf>,
    /// After the handshake, ask for a TLS 1.2 renegotiation and report whether it happened.
    pub try_renegotiation: bool,
    /// Lowest OpenSSL security level, so that legacy offers are possible at all.
    pub security_level: Option<u32>,
    /// Leave out the encrypt_then_mac extension (RFC 7366), as `openssl s_client -no_etm`.
    pub no_encrypt_then_mac: bool,
    /// After the handshake, read for a moment, so that TLS 1.3 session tickets the server sends
    /// (post-handshake NewSessionTicket messages) show in `server_messages`.
    pub await_tickets: bool,
    /// ALPN protocols to offer, in wire form (each name after its 1-byte length, RFC 7301).
    pub alpn: Option<Vec<u8>>,
}

/// How a client-initiated renegotiation went (TLS-6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Renegotiation {
    NotTried,
    Refused,
    Accepted,
}

/// What the server chose and sent.
#[derive(Debug, Clone)]
pub struct HandshakeFacts {
    /// e.g. `TLSv1.3`.
    pub version: String,
    /// RFC name of the suite.
    pub cipher: String,
    /// e.g. `brainpoolP256r1tls13`.
    pub group: Option<String>,
    /// The server's chain as sent, leaf first.
    pub peer_chain: Vec<X509>,
    /// Extension types in the ServerHello (e.g. 22 = encrypt_then_mac, 23 = extended_master_secret).
    pub server_hello_extensions: Vec<u16>,
    /// Handshake message types the server sent, in order (13 = CertificateRequest).
    pub server_messages: Vec<u8>,
    pub renegotiation: Renegotiation,
    /// The protocol the server selected by ALPN.
    pub alpn: Option<Vec<u8>>,
}

/// TLS extension code points we look for (IANA "TLS ExtensionType Values").
pub const EXT_ENCRYPT_THEN_MAC: u16 = 22;
pub const EXT_EXTENDED_MASTER_SECRET: u16 = 23;
/// Handshake type of CertificateRequest (RFC 8446 §4).
pub const HS_CERTIFICATE_REQUEST: u8 = 13;
/// Handshake type of NewSessionTicket (RFC 8446 §4.6.1, RFC 5077 §3.3).
pub const HS_NEW_SESSION_TICKET: u8 = 4;

/// Handshake messages the server sent on one connection (reached through the SSL's ex_data).
#[derive(Default)]
struct Recorder {
    server_messages: Mutex<Vec<Vec<u8>>>,
}

fn recorder_index() -> Result<Index<Ssl, Recorder>, TlsError> {
    static INDEX: OnceLock<Index<Ssl, Recorder>> = OnceLock::new();
    if let Some(i) = INDEX.get() {
        return Ok(*i);
    }
    let i = Ssl::new_ex_index::<Recorder>().map_err(TlsError::openssl("allocate ex_data index"))?;
    Ok(*INDEX.get_or_init(|| i))
}

const SSL3_RT_HANDSHAKE: i32 = 22;

unsafe extern "C" fn record_message(
    write_p: i32,
    _version: i32,
    content_type: i32,
    buf: *const std::ffi::c_void,
    len: usize,
    ssl: *mut openssl_sys::SSL,
    _arg: *mut std::ffi::c_void,
) {
    if write_p != 0 || content_type != SSL3_RT_HANDSHAKE || buf.is_null() || ssl.is_null() {
        return;
    }
    // SAFETY: OpenSSL hands us a valid SSL and `len` readable bytes for the call's duration.
    let (ssl, bytes) = unsafe {
        (
            <SslRef as foreign_types::ForeignTypeRef>::from_ptr(ssl),
            std::slice::from_raw_parts(buf as *const u8, len),
        )
    };
    let Ok(index) = recorder_index() else { return };
    if let Some(rec) = ssl.ex_data(index)
        && let Ok(mut m) = rec.server_messages.lock()
    {
        m.push(bytes.to_vec());
    }
}

/// Connects to `addr` and runs a handshake with `offer`.
pub fn probe(addr: std::net::SocketAddr, offer: &ClientOffer) -> Result<HandshakeFacts, TlsError> {
    let tcp = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .map_err(|e| TlsError::Handshake(format!("connect to {addr}: {e}")))?;
    probe_stream(tcp, offer)
}

/// Runs a handshake with `offer` on an already connected stream (e.g. after STARTTLS).
pub fn probe_stream(tcp: TcpStream, offer: &ClientOffer) -> Result<HandshakeFacts, TlsError> {
    let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
    let _ = tcp.set_write_timeout(Some(Duration::from_secs(10)));
    let mut b = SslContextBuilder::new(SslMethod::tls_client())
        .map_err(TlsError::openssl("create probe context"))?;
    configure(&mut b, offer)?;
    let ctx = b.build();
    let mut ssl = Ssl::new(&ctx).map_err(TlsError::openssl("create probe connection"))?;
    ssl.set_ex_data(recorder_index()?, Recorder::default());
    ffi::set_msg_callback(&mut ssl, record_message);
    if let Some(name) = &offer.server_name {
        ssl.set_hostname(name)
            .map_err(TlsError::openssl("set SNI"))?;
        if offer.ca_file.is_some() {
            ssl.param_mut()
                .set_host(name)
                .map_err(TlsError::openssl("set host name to verify"))?;
        }
    }
    let mut stream = ssl
        .connect(tcp)
        .map_err(|e| TlsError::Handshake(e.to_string()))?;
    if offer.await_tickets {
        let _ = stream
            .get_ref()
            .set_read_timeout(Some(Duration::from_millis(500)));
        let _ = stream.ssl_read(&mut [0u8; 1]);
    }
    let mut renegotiation = Renegotiation::NotTried;
    if offer.try_renegotiation {
        renegotiation = try_renegotiate(&mut stream);
    }
    let ssl = stream.ssl();
    let messages = recorder_index()
        .ok()
        .and_then(|i| ssl.ex_data(i))
        .and_then(|r| r.server_messages.lock().ok().map(|m| m.clone()))
        .unwrap_or_default();
    let facts = HandshakeFacts {
        version: ssl.version_str().to_string(),
        cipher: ssl
            .current_cipher()
            .map(|c| c.standard_name().unwrap_or(c.name()).to_string())
            .unwrap_or_default(),
        group: ffi::negotiated_group(ssl),
        peer_chain: ssl
            .peer_cert_chain()
            .map(|s| s.iter().map(|c| c.to_owned()).collect())
            .unwrap_or_default(),
        server_hello_extensions: messages
            .iter()
            .find(|m| m.first() == Some(&2))
            .and_then(|m| server_hello_extensions(m))
            .unwrap_or_default(),
        server_messages: messages.iter().filter_map(|m| m.first().copied()).collect(),
        renegotiation,
        alpn: ssl.selected_alpn_protocol().map(<[u8]>::to_vec),
    };
    let _ = stream.shutdown();
    Ok(facts)
}

fn configure(b: &mut SslContextBuilder, offer: &ClientOffer) -> Result<(), TlsError> {
    if let Some(level) = offer.security_level {
        b.set_security_level(level);
    }
    if offer.no_encrypt_then_mac {
        b.set_options(crate::profile::OP_NO_ENCRYPT_THEN_MAC);
    }
    if let Some(alpn) = &offer.alpn {
        b.set_alpn_protos(alpn)
            .map_err(TlsError::openssl("set probe ALPN"))?;
    }
    b.set_min_proto_version(offer.min_version)
        .map_err(TlsError::openssl("set probe minimum version"))?;
    b.set_max_proto_version(offer.max_version)
        .map_err(TlsError::openssl("set probe maximum version"))?;
    if let Some(c) = &offer.tls12_ciphers {
        b.set_cipher_list(c)
            .map_err(TlsError::openssl("set probe TLS 1.2 ciphers"))?;
    }
    if let Some(c) = &offer.tls13_suites {
        b.set_ciphersuites(c)
            .map_err(TlsError::openssl("set probe TLS 1.3 suites"))?;
    }
    if let Some(g) = &offer.groups {
        b.set_groups_list(g)
            .map_err(TlsError::openssl("set probe groups"))?;
    }
    if let Some(s) = &offer.sigalgs {
        b.set_sigalgs_list(s)
            .map_err(TlsError::openssl("set probe signature algorithms"))?;
    }
    match &offer.ca_file {
        Some(path) => {
            b.set_ca_file(path)
                .map_err(TlsError::openssl("load probe CA file"))?;
            b.set_verify(SslVerifyMode::PEER);
        }
        None => b.set_verify(SslVerifyMode::NONE),
    }
    Ok(())
}

/// Sends a renegotiation request (a new ClientHello) and runs the handshake it starts. A server
/// that refuses answers with a `no_renegotiation` alert, which fails the handshake; one that
/// ignores it runs into the read timeout. Either way the renegotiation did not happen.
fn try_renegotiate(stream: &mut openssl::ssl::SslStream<TcpStream>) -> Renegotiation {
    if !ffi::request_renegotiation(stream.ssl()) {
        return Renegotiation::Refused;
    }
    match stream.do_handshake() {
        Ok(()) => Renegotiation::Accepted,
        Err(_) => Renegotiation::Refused,
    }
}

/// The extension types of a ServerHello handshake message (type byte included), or `None` if
/// it is malformed. Never panics, whatever the bytes.
pub fn server_hello_extensions(msg: &[u8]) -> Option<Vec<u16>> {
    let mut r = Reader(msg);
    if r.u8()? != 2 {
        return None;
    }
    let body_len = r.u24()? as usize;
    let mut body = Reader(r.take(body_len)?);
    body.take(2 + 32)?; // legacy_version, random
    let sid_len = body.u8()? as usize;
    body.take(sid_len)?;
    body.take(2 + 1)?; // cipher_suite, compression_method
    if body.0.is_empty() {
        return Some(Vec::new());
    }
    let ext_len = body.u16()? as usize;
    let mut exts = Reader(body.take(ext_len)?);
    let mut out = Vec::new();
    while !exts.0.is_empty() {
        out.push(exts.u16()?);
        let len = exts.u16()? as usize;
        exts.take(len)?;
    }
    Some(out)
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn u16(&mut self) -> Option<u16> {
        self.take(2).map(|b| u16::from_be_bytes([b[0], b[1]]))
    }
    fn u24(&mut self) -> Option<u32> {
        self.take(3)
            .map(|b| u32::from_be_bytes([0, b[0], b[1], b[2]]))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(exts: &[u8]) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7u8; 32]);
        body.push(0); // empty session id
        body.extend_from_slice(&[0xC0, 0x23, 0]);
        body.extend_from_slice(&(exts.len() as u16).to_be_bytes());
        body.extend_from_slice(exts);
        let mut m = vec![2];
        m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn server_hello_extensions_are_listed() {
        let m = hello(&[0, 22, 0, 0, 0, 23, 0, 0, 0xff, 1, 0, 1, 0]);
        assert_eq!(server_hello_extensions(&m), Some(vec![22, 23, 0xff01]));
    }

    #[test]
    fn truncated_server_hello_is_none_never_a_panic() {
        let m = hello(&[0, 22, 0, 5, 1]);
        assert_eq!(server_hello_extensions(&m), None);
        for n in 0..m.len() {
            let _ = server_hello_extensions(&m[..n]);
        }
        assert_eq!(server_hello_extensions(&[1, 0, 0, 0]), None);
    }
}
