//! # kurier-dnsupdate — publishing our own records on the operator's primary server
//!
//! Owns the DNS UPDATE message (RFC 2136 §2–3: zone, no prerequisites, adds and deletions),
//! its TSIG signature and the check of the signed answer (RFC 8945, HMAC-SHA256/384/512),
//! the TSIG key files operators already have (BIND's `tsig-keygen`, Knot's `keymgr -t`), the
//! few record types Kurier publishes in presentation form (`record`), the `nsupdate`-style
//! text of a dry run, and the exchange over TCP (`client`).
//!
//! RFCs: 2136 (UPDATE), 8945 (TSIG), 1035 §4.2.2 (TCP framing), 6698 (TLSA), 2782 (SRV).
//!
//! Must not: decide what to publish or when (the binary does: the DANE rollover order of
//! RFC 7671 §8.1 is `kurier_policy::rollover`), or treat the server's "done" as proof: what
//! counts is what the validating resolver sees afterwards.

#![forbid(unsafe_code)]

pub mod client;
pub mod key_file;
pub mod message;
pub mod record;
pub mod tsig;

pub use client::send;
pub use hickory_proto::rr::RecordType;
pub use key_file::TsigKey;
pub use message::{Change, Update};
pub use record::{DnsRecord, RecordData};

#[derive(Debug, thiserror::Error)]
pub enum UpdateError {
    /// A record, name or key file that cannot be used.
    #[error("{0}")]
    Input(String),
    /// The server could not be reached or sent no usable answer.
    #[error("{0}")]
    Transport(String),
    /// The server answered, but refused (RFC 2136 §2.2 RCODE, RFC 8945 §5.3 TSIG error).
    #[error("{0}")]
    Refused(String),
}
