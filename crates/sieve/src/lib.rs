//! # kurier-sieve — the Sieve mail filtering language (RFC 5228)
//!
//! Owns reading users' Sieve scripts: the lexical grammar (`lexer`: tokens with their line and
//! column) and the generic grammar (`grammar`: commands, arguments, tests and blocks, nesting
//! bounded). Meaning, checks and the interpreter follow (issue 25).
//!
//! Why our own: `sieve-rs`, the well-kept Rust implementation, is AGPL-3.0-only, which a
//! dependency of this Apache-2.0 project cannot be.
//!
//! RFCs: 5228 (Sieve).
//!
//! Must not: recurse without a bound on input, or accept a script it cannot point an error at.

#![forbid(unsafe_code)]

pub mod grammar;
pub mod lexer;

pub use grammar::{Argument, Command, Test, parse};
pub use lexer::SyntaxError;

/// Where in a script: line and column, both from 1 (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub line: u32,
    pub column: u32,
}
