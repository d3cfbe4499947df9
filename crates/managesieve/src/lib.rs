//! # kurier-managesieve — users' Sieve scripts from their mail clients
//!
//! Owns ManageSieve (RFC 5804): the command reader and parser (`command`: atoms, quoted
//! strings and literals under a size limit) and the async server (`server`) on port 4190 with
//! STARTTLS, SASL PLAIN only after TLS and the login throttle every listener shares, over the
//! store's scripts; every uploaded script is checked by kurier-sieve first.
//!
//! Requirements (docs/requirements.md): MUA-2 (no credentials before TLS), TLS-8 through the
//! `tls` crate's strict profile.
//!
//! Must not: store a script the checker refuses, accept credentials in plain text, or read an
//! unbounded command.

#![forbid(unsafe_code)]

pub mod command;
pub mod server;

pub use server::{ManageSieveServer, serve};
