//! The libunbound C API (`unbound.h`, libunbound 1.17+), loaded at run time and wrapped safely.
//! Every `unsafe` block of the crate lives here.
//!
//! Why `dlopen` and not link-time linking: Kurier carries its own OpenSSL (vendored, ≥ 3.5),
//! libunbound is built against the system's libcrypto. Linked at build time, the linker would
//! export our OpenSSL's symbols from the executable and libunbound would bind to them — two
//! OpenSSL versions mixed in one call path. Loaded with `RTLD_LOCAL`, libunbound and its own
//! libcrypto stay a closed set (the executable exports no OpenSSL symbol; see the test below).
//! It also keeps the build free of `libunbound-dev`: the library is needed only to run.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::OnceLock;

/// The file names tried, newest ABI first (Debian 12/13: `libunbound.so.8`).
const LIBRARY_NAMES: [&str; 2] = ["libunbound.so.8", "libunbound.so"];

#[repr(C)]
struct UbCtx {
    _private: [u8; 0],
}

/// `struct ub_result` of unbound.h, field for field.
#[repr(C)]
struct UbResult {
    qname: *mut c_char,
    qtype: c_int,
    qclass: c_int,
    data: *mut *mut c_char,
    len: *mut c_int,
    canonname: *mut c_char,
    rcode: c_int,
    answer_packet: *mut c_void,
    answer_len: c_int,
    havedata: c_int,
    nxdomain: c_int,
    secure: c_int,
    bogus: c_int,
    why_bogus: *mut c_char,
    was_ratelimited: c_int,
    ttl: c_int,
}

/// `void (*)(void* mydata, int err, struct ub_result* result)`
type Callback = unsafe extern "C" fn(*mut c_void, c_int, *mut UbResult);

/// The entry points Kurier uses, resolved once.
struct Api {
    ctx_create: unsafe extern "C" fn() -> *mut UbCtx,
    ctx_delete: unsafe extern "C" fn(*mut UbCtx),
    ctx_set_option: unsafe extern "C" fn(*mut UbCtx, *const c_char, *const c_char) -> c_int,
    ctx_set_fwd: unsafe extern "C" fn(*mut UbCtx, *const c_char) -> c_int,
    ctx_add_ta: unsafe extern "C" fn(*mut UbCtx, *const c_char) -> c_int,
    ctx_add_ta_file: unsafe extern "C" fn(*mut UbCtx, *const c_char) -> c_int,
    ctx_add_ta_autr: unsafe extern "C" fn(*mut UbCtx, *const c_char) -> c_int,
    ctx_async: unsafe extern "C" fn(*mut UbCtx, c_int) -> c_int,
    ctx_zone_add: unsafe extern "C" fn(*mut UbCtx, *const c_char, *const c_char) -> c_int,
    fd: unsafe extern "C" fn(*mut UbCtx) -> c_int,
    process: unsafe extern "C" fn(*mut UbCtx) -> c_int,
    resolve:
        unsafe extern "C" fn(*mut UbCtx, *const c_char, c_int, c_int, *mut *mut UbResult) -> c_int,
    resolve_async: unsafe extern "C" fn(
        *mut UbCtx,
        *const c_char,
        c_int,
        c_int,
        *mut c_void,
        Callback,
        *mut c_int,
    ) -> c_int,
    cancel: unsafe extern "C" fn(*mut UbCtx, c_int) -> c_int,
    resolve_free: unsafe extern "C" fn(*mut UbResult),
    strerror: unsafe extern "C" fn(c_int) -> *const c_char,
    version: unsafe extern "C" fn() -> *const c_char,
}

// SAFETY: plain function pointers into a library that stays loaded for the process's life.
unsafe impl Send for Api {}
unsafe impl Sync for Api {}

/// Loads libunbound once; the error names the package to install.
fn api() -> Result<&'static Api, String> {
    static API: OnceLock<Result<Api, String>> = OnceLock::new();
    API.get_or_init(load).as_ref().map_err(Clone::clone)
}

// The target type of each transmute is the `Api` field the symbol is assigned to.
#[allow(clippy::missing_transmute_annotations)]
fn load() -> Result<Api, String> {
    let mut handle = std::ptr::null_mut();
    for name in LIBRARY_NAMES {
        let Ok(c) = CString::new(name) else { continue };
        // SAFETY: a valid C string; the handle is never closed, so every symbol stays valid.
        handle = unsafe { libc::dlopen(c.as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL) };
        if !handle.is_null() {
            break;
        }
    }
    if handle.is_null() {
        return Err("libunbound is not installed (fix: apt install libunbound8)".into());
    }
    macro_rules! sym {
        ($name:literal) => {{
            // SAFETY: `handle` is a loaded library and the name a NUL-terminated literal.
            let p = unsafe { libc::dlsym(handle, concat!($name, "\0").as_ptr().cast()) };
            if p.is_null() {
                return Err(format!(
                    "libunbound lacks {} (fix: libunbound 1.17 or newer)",
                    $name
                ));
            }
            // SAFETY: the symbol is the function of that name in unbound.h, whose C
            // signature the field's type spells out.
            unsafe { std::mem::transmute::<*mut c_void, _>(p) }
        }};
    }
    Ok(Api {
        ctx_create: sym!("ub_ctx_create"),
        ctx_delete: sym!("ub_ctx_delete"),
        ctx_set_option: sym!("ub_ctx_set_option"),
        ctx_set_fwd: sym!("ub_ctx_set_fwd"),
        ctx_add_ta: sym!("ub_ctx_add_ta"),
        ctx_add_ta_file: sym!("ub_ctx_add_ta_file"),
        ctx_add_ta_autr: sym!("ub_ctx_add_ta_autr"),
        ctx_async: sym!("ub_ctx_async"),
        ctx_zone_add: sym!("ub_ctx_zone_add"),
        fd: sym!("ub_fd"),
        process: sym!("ub_process"),
        resolve: sym!("ub_resolve"),
        resolve_async: sym!("ub_resolve_async"),
        cancel: sym!("ub_cancel"),
        resolve_free: sym!("ub_resolve_free"),
        strerror: sym!("ub_strerror"),
        version: sym!("ub_version"),
    })
}

/// libunbound's version, e.g. "1.17.1".
pub(crate) fn version() -> Result<String, String> {
    let api = api()?;
    // SAFETY: returns a static string.
    Ok(unsafe { text((api.version)()) }.unwrap_or_default())
}

/// A copy of `struct ub_result`, owned by Rust.
#[derive(Debug, Clone)]
pub(crate) struct Outcome {
    pub rcode: u16,
    /// The answer message in wire format, DNSSEC records included.
    pub packet: Vec<u8>,
    pub havedata: bool,
    pub nxdomain: bool,
    pub secure: bool,
    pub bogus: bool,
    pub why_bogus: Option<String>,
}

/// One resolving and validating context (`struct ub_ctx`).
pub(crate) struct Context {
    api: &'static Api,
    ctx: *mut UbCtx,
}

// SAFETY: libunbound contexts are thread-safe (unbound.h: "the context is thread-safe"; it
// locks internally), and this wrapper hands out no interior pointers.
unsafe impl Send for Context {}
unsafe impl Sync for Context {}

impl Context {
    pub(crate) fn new() -> Result<Context, String> {
        let api = api()?;
        // SAFETY: no arguments; NULL means out of memory.
        let ctx = unsafe { (api.ctx_create)() };
        if ctx.is_null() {
            return Err("libunbound could not create a context".into());
        }
        Ok(Context { api, ctx })
    }

    fn check(&self, code: c_int, what: &str) -> Result<(), String> {
        if code == 0 {
            return Ok(());
        }
        // SAFETY: ub_strerror returns a static string for any code.
        let why = unsafe { text((self.api.strerror)(code)) }.unwrap_or_default();
        Err(format!("{what}: {why}"))
    }

    /// `ub_ctx_set_option(ctx, "name:", value)`.
    pub(crate) fn set_option(&self, name: &str, value: &str) -> Result<(), String> {
        let (n, v) = (c_string(&format!("{name}:"))?, c_string(value)?);
        // SAFETY: valid context and C strings; libunbound copies them.
        let code = unsafe { (self.api.ctx_set_option)(self.ctx, n.as_ptr(), v.as_ptr()) };
        self.check(code, &format!("option {name}: {value}"))
    }

    /// A local zone, e.g. (`test.`, `nodefault`) to lift a built-in one.
    pub(crate) fn add_local_zone(&self, zone: &str, kind: &str) -> Result<(), String> {
        let (z, k) = (c_string(zone)?, c_string(kind)?);
        // SAFETY: valid context and C strings; libunbound copies them.
        let code = unsafe { (self.api.ctx_zone_add)(self.ctx, z.as_ptr(), k.as_ptr()) };
        self.check(code, &format!("local zone {zone} {kind}"))
    }

    /// Forwards all questions to `addr` (`ip@port`).
    pub(crate) fn set_forwarder(&self, addr: &str) -> Result<(), String> {
        let a = c_string(addr)?;
        // SAFETY: valid context and C string.
        let code = unsafe { (self.api.ctx_set_fwd)(self.ctx, a.as_ptr()) };
        self.check(code, &format!("forwarder {addr}"))
    }

    /// A trust anchor in zone-file form (one DS or DNSKEY record).
    pub(crate) fn add_anchor(&self, record: &str) -> Result<(), String> {
        let r = c_string(record)?;
        // SAFETY: valid context and C string.
        let code = unsafe { (self.api.ctx_add_ta)(self.ctx, r.as_ptr()) };
        self.check(code, "trust anchor")
    }

    /// Trust anchors read from a file; `rfc5011`: kept up to date in that file (RFC 5011).
    pub(crate) fn add_anchor_file(&self, path: &str, rfc5011: bool) -> Result<(), String> {
        let p = c_string(path)?;
        // SAFETY: valid context and C string.
        let code = unsafe {
            if rfc5011 {
                (self.api.ctx_add_ta_autr)(self.ctx, p.as_ptr())
            } else {
                (self.api.ctx_add_ta_file)(self.ctx, p.as_ptr())
            }
        };
        self.check(code, &format!("trust anchor file {path}"))
    }

    /// Resolves in a background thread of libunbound's own; results arrive through `fd()`.
    pub(crate) fn use_thread(&self) -> Result<(), String> {
        // SAFETY: valid context, before the first question.
        let code = unsafe { (self.api.ctx_async)(self.ctx, 1) };
        self.check(code, "background thread")
    }

    /// Applies the configuration (libunbound does so on the first question): asks for
    /// `localhost.`, which its built-in local zone answers without the network. Errors in
    /// options or trust anchors show here.
    pub(crate) fn finalize(&self) -> Result<(), String> {
        let name = c_string("localhost.")?;
        let mut result: *mut UbResult = std::ptr::null_mut();
        // SAFETY: valid context, C string and out-pointer; the result is freed below.
        let code = unsafe { (self.api.resolve)(self.ctx, name.as_ptr(), 1, 1, &mut result) };
        if !result.is_null() {
            // SAFETY: allocated by ub_resolve, freed once.
            unsafe { (self.api.resolve_free)(result) };
        }
        self.check(code, "libunbound refused the configuration")
    }

    /// Waits up to `millis` for results to wait for `process()`; true if they do.
    pub(crate) fn wait_readable(&self, millis: i32) -> bool {
        // SAFETY: valid context; the descriptor is libunbound's and stays open while it lives.
        let fd = unsafe { (self.api.fd)(self.ctx) };
        if fd < 0 {
            std::thread::sleep(std::time::Duration::from_millis(millis.max(0) as u64));
            return false;
        }
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd for the duration of the call.
        let n = unsafe { libc::poll(&mut p, 1, millis) };
        n > 0 && p.revents & libc::POLLIN != 0
    }

    /// Delivers waiting results to `super::deliver(token, outcome)`, in this thread.
    pub(crate) fn process(&self) -> Result<(), String> {
        // SAFETY: valid context; callbacks run inside this call.
        let code = unsafe { (self.api.process)(self.ctx) };
        self.check(code, "processing results")
    }

    /// Starts a question; its outcome goes to `super::deliver(token, …)` from a later
    /// `process()`. Returns the id for `cancel`.
    pub(crate) fn resolve_async(&self, name: &str, rtype: u16, token: u64) -> Result<i32, String> {
        let n = c_string(name)?;
        let mut id: c_int = 0;
        // SAFETY: valid context and C string; `mydata` is a number, never dereferenced.
        let code = unsafe {
            (self.api.resolve_async)(
                self.ctx,
                n.as_ptr(),
                c_int::from(rtype),
                1,
                token as usize as *mut c_void,
                on_result,
                &mut id,
            )
        };
        self.check(code, "question")?;
        Ok(id)
    }

    /// Forgets a question; its callback will not run (or has run already — either is fine).
    pub(crate) fn cancel(&self, id: i32) {
        // SAFETY: valid context; an unknown id is an error code, nothing else.
        let _ = unsafe { (self.api.cancel)(self.ctx, id) };
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        // SAFETY: created by ub_ctx_create, deleted once; this stops its background thread.
        unsafe { (self.api.ctx_delete)(self.ctx) };
    }
}

/// The callback of every question: copies the result, frees it, hands the copy on.
unsafe extern "C" fn on_result(mydata: *mut c_void, err: c_int, result: *mut UbResult) {
    let token = mydata as usize as u64;
    let outcome = if result.is_null() {
        let api = api();
        let why = api
            .ok()
            // SAFETY: ub_strerror returns a static string for any code.
            .and_then(|a| unsafe { text((a.strerror)(err)) })
            .unwrap_or_default();
        Err(format!("libunbound: {why}"))
    } else {
        // SAFETY: libunbound hands us a valid result, ours to read and to free.
        let copy = unsafe { copy_result(&*result) };
        if let Ok(a) = api() {
            // SAFETY: freed once, after the copy.
            unsafe { (a.resolve_free)(result) };
        }
        Ok(copy)
    };
    super::deliver(token, outcome);
}

/// # Safety
/// `r` must be a valid `ub_result` from libunbound.
unsafe fn copy_result(r: &UbResult) -> Outcome {
    let len = usize::try_from(r.answer_len).unwrap_or(0);
    let packet = if r.answer_packet.is_null() || len == 0 {
        Vec::new()
    } else {
        // SAFETY: libunbound guarantees `answer_len` bytes at `answer_packet`.
        unsafe { std::slice::from_raw_parts(r.answer_packet.cast::<u8>(), len) }.to_vec()
    };
    Outcome {
        rcode: u16::try_from(r.rcode).unwrap_or(2),
        packet,
        havedata: r.havedata != 0,
        nxdomain: r.nxdomain != 0,
        secure: r.secure != 0,
        bogus: r.bogus != 0,
        // SAFETY: NULL or a NUL-terminated string owned by the result.
        why_bogus: unsafe { text(r.why_bogus) },
    }
}

/// # Safety
/// `p` must be NULL or point to a NUL-terminated string.
unsafe fn text(p: *const c_char) -> Option<String> {
    // SAFETY: as the caller promises.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned())
}

fn c_string(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"))
}
