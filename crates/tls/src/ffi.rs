//! The few OpenSSL 3 functions that the `openssl` crate does not bind, declared once and wrapped
//! safely. Every `unsafe` block of the crate lives here.

use std::ffi::{CStr, c_char, c_int, c_void};

use foreign_types::ForeignTypeRef;

use openssl::ssl::{SslCipherRef, SslContextRef, SslRef};
use openssl::x509::X509Ref;
use openssl_sys::{SSL, SSL_CIPHER, SSL_CTX, X509};

// `stack_st_SSL_CIPHER` is opaque here: we read it only through OPENSSL_sk_* calls.
#[repr(C)]
struct CipherStack {
    _private: [u8; 0],
}

/// `void (*)(int write_p, int version, int content_type, const void *buf, size_t len, SSL *, void *)`
pub(crate) type MsgCallback =
    unsafe extern "C" fn(c_int, c_int, c_int, *const c_void, usize, *mut SSL, *mut c_void);

unsafe extern "C" {
    fn SSL_CTX_get_ciphers(ctx: *const SSL_CTX) -> *mut CipherStack;
    fn OPENSSL_sk_num(st: *const CipherStack) -> c_int;
    fn OPENSSL_sk_value(st: *const CipherStack, i: c_int) -> *mut c_void;
    fn SSL_set_msg_callback(ssl: *mut SSL, cb: Option<MsgCallback>);
    fn SSL_renegotiate(ssl: *mut SSL) -> c_int;
    fn SSL_get0_group_name(ssl: *mut SSL) -> *const c_char;
    fn X509_get_ext_by_NID(x: *const X509, nid: c_int, lastpos: c_int) -> c_int;
    fn X509_get_ext(x: *const X509, loc: c_int) -> *mut c_void;
    fn X509_EXTENSION_get_critical(ex: *const c_void) -> c_int;
}

/// The cipher suites a context will offer or accept, TLS 1.3 ones included, in preference order.
pub(crate) fn context_ciphers(ctx: &SslContextRef) -> Vec<&SslCipherRef> {
    // SAFETY: the stack and its entries are owned by `ctx` and live as long as the borrow of it.
    unsafe {
        let stack = SSL_CTX_get_ciphers(ctx.as_ptr());
        if stack.is_null() {
            return Vec::new();
        }
        let n = OPENSSL_sk_num(stack).max(0);
        (0..n)
            .filter_map(|i| {
                let p = OPENSSL_sk_value(stack, i) as *mut SSL_CIPHER;
                (!p.is_null()).then(|| SslCipherRef::from_ptr(p))
            })
            .collect()
    }
}

/// The key-exchange group of the finished handshake, e.g. `brainpoolP256r1tls13`.
pub(crate) fn negotiated_group(ssl: &SslRef) -> Option<String> {
    // SAFETY: returns a static string or NULL; `ssl` is valid for the call.
    unsafe {
        let p = SSL_get0_group_name(ssl.as_ptr());
        (!p.is_null()).then(|| CStr::from_ptr(p).to_string_lossy().into_owned())
    }
}

/// Installs `cb` as the message callback of one connection (it sees every handshake message).
pub(crate) fn set_msg_callback(ssl: &mut SslRef, cb: MsgCallback) {
    // SAFETY: `cb` is a plain function; what it reads is reached through the SSL's ex_data.
    unsafe { SSL_set_msg_callback(ssl.as_ptr(), Some(cb)) }
}

/// Asks for a renegotiation (TLS 1.2); the next handshake step sends the new ClientHello.
pub(crate) fn request_renegotiation(ssl: &SslRef) -> bool {
    // SAFETY: `ssl` is a valid connection object.
    unsafe { SSL_renegotiate(ssl.as_ptr()) == 1 }
}

/// Whether the certificate carries the extension `nid`, and whether it is marked critical.
pub(crate) fn extension_criticality(cert: &X509Ref, nid: openssl::nid::Nid) -> Option<bool> {
    // SAFETY: read-only look-ups on a valid certificate; the extension is owned by it.
    unsafe {
        let idx = X509_get_ext_by_NID(cert.as_ptr(), nid.as_raw(), -1);
        if idx < 0 {
            return None;
        }
        let ext = X509_get_ext(cert.as_ptr(), idx);
        (!ext.is_null()).then(|| X509_EXTENSION_get_critical(ext) == 1)
    }
}

unsafe extern "C" {
    fn SSL_CTX_dane_enable(ctx: *mut SSL_CTX) -> c_int;
    fn SSL_dane_enable(ssl: *mut SSL, basedomain: *const c_char) -> c_int;
    fn SSL_dane_set_flags(ssl: *mut SSL, flags: std::ffi::c_ulong) -> std::ffi::c_ulong;
    fn SSL_dane_tlsa_add(
        ssl: *mut SSL,
        usage: u8,
        selector: u8,
        mtype: u8,
        data: *const u8,
        dlen: usize,
    ) -> c_int;
    fn SSL_get0_dane_authority(
        ssl: *mut SSL,
        mcert: *mut *mut X509,
        mspki: *mut *mut c_void,
    ) -> c_int;
    fn SSL_get0_dane_tlsa(
        ssl: *mut SSL,
        usage: *mut u8,
        selector: *mut u8,
        mtype: *mut u8,
        data: *mut *const u8,
        dlen: *mut usize,
    ) -> c_int;
    fn SSL_add1_host(ssl: *mut SSL, hostname: *const c_char) -> c_int;
}

/// `DANE_FLAG_NO_DANE_EE_NAMECHECKS` (ssl.h): DANE-EE(3) ignores names (RFC 7672 §3.1.1).
const DANE_FLAG_NO_DANE_EE_NAMECHECKS: std::ffi::c_ulong = 1;

/// Turns on OpenSSL's DANE verifier for connections of this context.
pub(crate) fn enable_dane(ctx: &mut openssl::ssl::SslContextBuilder) -> bool {
    // SAFETY: `ctx` is a valid context under construction.
    unsafe { SSL_CTX_dane_enable(ctx.as_ptr()) > 0 }
}

/// Makes `ssl` verify its peer against TLSA records with `base` as the TLSA base domain and
/// reference name (RFC 7671 §7); DANE-EE(3) matches skip the name checks.
pub(crate) fn dane_enable(ssl: &mut SslRef, base: &str) -> bool {
    let Ok(base) = std::ffi::CString::new(base) else {
        return false;
    };
    // SAFETY: `ssl` is valid; OpenSSL copies the string.
    unsafe {
        if SSL_dane_enable(ssl.as_ptr(), base.as_ptr()) <= 0 {
            return false;
        }
        SSL_dane_set_flags(ssl.as_ptr(), DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    }
    true
}

/// Adds one TLSA record; false if OpenSSL finds it malformed (it then counts as unusable).
pub(crate) fn dane_tlsa_add(
    ssl: &mut SslRef,
    usage: u8,
    selector: u8,
    mtype: u8,
    data: &[u8],
) -> bool {
    // SAFETY: `ssl` is valid; OpenSSL copies `data`.
    unsafe {
        SSL_dane_tlsa_add(
            ssl.as_ptr(),
            usage,
            selector,
            mtype,
            data.as_ptr(),
            data.len(),
        ) > 0
    }
}

/// Adds a name the peer certificate may match (besides the DANE base domain or the first one).
pub(crate) fn add_host(ssl: &mut SslRef, name: &str) -> bool {
    let Ok(name) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: `ssl` is valid; OpenSSL copies the string.
    unsafe { SSL_add1_host(ssl.as_ptr(), name.as_ptr()) == 1 }
}

/// After a verified handshake: the chain depth at which a TLSA record matched and that record's
/// (usage, selector, matching type), or `None` if DANE did not authenticate the peer.
pub(crate) fn dane_match(ssl: &SslRef) -> Option<(i32, u8, u8, u8)> {
    // SAFETY: read-only queries on a valid connection; the out-pointers point to locals and
    // the returned data pointer (unused) is owned by `ssl`.
    unsafe {
        let depth =
            SSL_get0_dane_authority(ssl.as_ptr(), std::ptr::null_mut(), std::ptr::null_mut());
        if depth < 0 {
            return None;
        }
        let (mut u, mut s, mut m) = (0u8, 0u8, 0u8);
        let mut data: *const u8 = std::ptr::null();
        let mut len = 0usize;
        SSL_get0_dane_tlsa(ssl.as_ptr(), &mut u, &mut s, &mut m, &mut data, &mut len);
        Some((depth, u, s, m))
    }
}

/// The payload of extension `ext_type` in the ClientHello being processed (only inside the
/// client-hello callback).
pub(crate) fn client_hello_extension(ssl: &SslRef, ext_type: u32) -> Option<Vec<u8>> {
    let mut out: *const u8 = std::ptr::null();
    let mut len = 0usize;
    // SAFETY: valid during the client-hello callback; the data is owned by `ssl` and copied
    // before the borrow ends.
    unsafe {
        if openssl_sys::SSL_client_hello_get0_ext(ssl.as_ptr(), ext_type, &mut out, &mut len) != 1
            || out.is_null()
        {
            return None;
        }
        Some(std::slice::from_raw_parts(out, len).to_vec())
    }
}
