//! # kurier-pop3 — mail access over POP3
//!
//! Owns POP3 (RFC 1939) with CAPA and response codes (RFC 2449), UIDL and TOP, STLS
//! (RFC 2595) and SASL PLAIN (RFC 5034): the command parser (`command`), the maildrop of one
//! session with its deletion marks and dot-stuffing (`maildrop`), and the async server
//! (`server`) on port 995 with implicit TLS (RFC 8314) and 110 with STLS.
//!
//! Requirements (docs/requirements.md): MUA-1 (implicit TLS), MUA-2 (USER/PASS and AUTH only
//! after TLS), TLS-8 through the `tls` crate's strict profile.
//!
//! Must not: delete anything before QUIT (RFC 1939 §6: DELE marks, the UPDATE state removes);
//! know about outbound delivery; panic on input.

#![forbid(unsafe_code)]

pub mod command;
#[cfg(feature = "server")]
pub mod maildrop;
#[cfg(feature = "server")]
pub mod server;

#[cfg(feature = "server")]
pub use server::{Pop3Listener, Pop3Server, serve};
