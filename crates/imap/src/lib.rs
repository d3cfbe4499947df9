//! # kurier-imap — mail access over IMAP
//!
//! Owns the IMAP protocol: command framing with literals (`reader`, RFC 9051 §4.3, RFC 7888),
//! the command parser (`command`, `search`), the writer of IMAP data (`response`), the MIME
//! structure behind FETCH (`mime`: BODYSTRUCTURE, ENVELOPE, sections, BINARY), the selected
//! mailbox and its change announcements (`view`), mailbox names in modified UTF-7 (`mutf7`),
//! and the async server (`server`, `session`): port 993 with implicit TLS (RFC 8314) and 143
//! with STARTTLS and LOGINDISABLED until TLS is up (RFC 9051 §6.2.1).
//!
//! IMAP4rev2 (RFC 9051) and IMAP4rev1 (RFC 3501) with IDLE, UIDPLUS, MOVE, NAMESPACE, ID,
//! ENABLE, LITERAL+, SPECIAL-USE, LIST-EXTENDED, LIST-STATUS, ESEARCH, SASL-IR, CONDSTORE,
//! QRESYNC, UNSELECT, APPENDLIMIT, QUOTA, BINARY, CHILDREN.
//!
//! Requirements (docs/requirements.md): MUA-1 (implicit TLS), MUA-2 (no login before TLS),
//! TLS-8 (no session time cap: an IDLE connection may stay for days).
//!
//! Must not: know about outbound delivery; acknowledge an APPEND before the store says it is
//! durable; panic on anything a client sends.

#![forbid(unsafe_code)]

#[cfg(feature = "server")]
pub mod cache;
pub mod command;
pub mod date;
pub mod mime;
pub mod mutf7;
pub mod reader;
pub mod response;
pub mod search;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
mod session;
#[cfg(feature = "server")]
pub mod view;

#[cfg(feature = "server")]
pub use server::{ImapListener, ImapServer, JunkTraining, serve};
