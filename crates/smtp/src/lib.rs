//! # kurier-smtp — SMTP for the MX, submission and the outbound client
//!
//! Owns the SMTP protocol: an I/O-free codec (`command`: RFC 5321 commands with the parameters
//! of RFC 1870, 6152, 6531, 3461, 3030, 8689; `reply`: RFC 3463 enhanced codes; `data`: DATA
//! framing with the smuggling defence; `spool`: bodies in memory, then on disk, within one
//! budget), the inbound session state machine (`session`), the
//! Received header (`received`, RFC 8314 §4.3) and the async server that drives it over TCP and
//! STARTTLS (`server`, RFC 3207) and hands messages to the store; the outbound client's
//! protocol (`client`, I/O-free) and its async driver (`client_driver`).
//!
//! Requirements (docs/requirements.md): SMTP-1 (STARTTLS offered, never required on port 25),
//! MUA-3 (no plaintext survives STARTTLS), TLS-1..10 through the `tls` crate's strict profile.
//!
//! Must not: touch the store's internals (it goes through the `Store` trait), or acknowledge a
//! message before the store says it is durable (250 only after `deliver` returned).

#![forbid(unsafe_code)]

pub mod client;
#[cfg(feature = "client")]
pub mod client_driver;
pub mod command;
pub mod data;
pub mod headers;
pub mod received;
pub mod reply;
pub mod sasl;
#[cfg(feature = "server")]
pub mod server;
pub mod session;
pub mod spool;
pub mod transaction;

#[cfg(any(feature = "server", feature = "client"))]
mod tls_info;
#[cfg(any(feature = "server", feature = "client"))]
pub use tls_info::tls_info;

#[cfg(feature = "client")]
pub use client_driver::{ClientError, SmtpClient, TransactionResult};
pub use data::BareLineEnding;
pub use reply::Reply;
#[cfg(feature = "server")]
pub use server::{MailDrop, SmtpServer, serve};
pub use session::{
    ConnectionFacts, Delivery, Event, Message, PeerInfo, Session, SessionConfig, TlsInfo, Verdict,
};
