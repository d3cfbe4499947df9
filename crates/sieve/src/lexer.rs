//! Sieve's lexical grammar (RFC 5228 §8.1): identifiers, tags, numbers with K/M/G
//! quantifiers, quoted strings (only `\"` and `\\` are escapes, §2.4.2), multi-line strings
//! (`text:` … a line with a single dot, dot-stuffed), `#` and `/* */` comments, and the
//! punctuation `[ ] ( ) { } , ;`. Every token carries the line and column it starts at, so
//! that an error names where (ManageSieve's PUTSCRIPT answers with it).

use crate::Position;

/// One token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// A command or test name, lower case (Sieve identifiers are case-insensitive).
    Identifier(String),
    /// `:name`, lower case, without the colon.
    Tag(String),
    Number(u64),
    /// A quoted or multi-line string, escapes resolved.
    String(String),
    LeftBracket,
    RightBracket,
    LeftParen,
    RightParen,
    LeftBrace,
    RightBrace,
    Comma,
    Semicolon,
}

/// Why a script is no Sieve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {}, column {}: {message}", at.line, at.column)]
pub struct SyntaxError {
    pub at: Position,
    pub message: String,
}

pub(crate) fn error(at: Position, message: impl Into<String>) -> SyntaxError {
    SyntaxError {
        at,
        message: message.into(),
    }
}

/// The tokens of `script`, each with its position.
pub fn tokens(script: &str) -> Result<Vec<(Token, Position)>, SyntaxError> {
    let mut lexer = Lexer {
        chars: script.chars().collect(),
        i: 0,
        line: 1,
        column: 1,
    };
    let mut out = Vec::new();
    while let Some(t) = lexer.next_token()? {
        out.push(t);
    }
    Ok(out)
}

struct Lexer {
    chars: Vec<char>,
    i: usize,
    line: u32,
    column: u32,
}

impl Lexer {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.i).copied()
    }

    fn peek_at(&self, n: usize) -> Option<char> {
        self.chars.get(self.i + n).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.i += 1;
        if c == '\n' {
            self.line += 1;
            self.column = 1;
        } else {
            self.column += 1;
        }
        Some(c)
    }

    fn position(&self) -> Position {
        Position {
            line: self.line,
            column: self.column,
        }
    }

    fn next_token(&mut self) -> Result<Option<(Token, Position)>, SyntaxError> {
        self.skip_white()?;
        let at = self.position();
        let Some(c) = self.peek() else {
            return Ok(None);
        };
        let single = match c {
            '[' => Some(Token::LeftBracket),
            ']' => Some(Token::RightBracket),
            '(' => Some(Token::LeftParen),
            ')' => Some(Token::RightParen),
            '{' => Some(Token::LeftBrace),
            '}' => Some(Token::RightBrace),
            ',' => Some(Token::Comma),
            ';' => Some(Token::Semicolon),
            _ => None,
        };
        if let Some(t) = single {
            self.bump();
            return Ok(Some((t, at)));
        }
        let token = match c {
            '"' => Token::String(self.quoted(at)?),
            ':' => {
                self.bump();
                match self.word() {
                    Some(w) => Token::Tag(w),
                    None => return Err(error(at, "a tag needs a name after the colon")),
                }
            }
            '0'..='9' => Token::Number(self.number(at)?),
            c if c.is_ascii_alphabetic() || c == '_' => {
                let w = self.word().unwrap_or_default();
                if w == "text" && self.peek() == Some(':') {
                    self.bump();
                    Token::String(self.multiline(at)?)
                } else {
                    Token::Identifier(w)
                }
            }
            other => return Err(error(at, format!("unexpected character {other:?}"))),
        };
        Ok(Some((token, at)))
    }

    fn skip_white(&mut self) -> Result<(), SyntaxError> {
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r' | '\n') => {
                    self.bump();
                }
                Some('#') => {
                    while let Some(c) = self.bump() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                Some('/') if self.peek_at(1) == Some('*') => {
                    let at = self.position();
                    self.bump();
                    self.bump();
                    loop {
                        match self.bump() {
                            Some('*') if self.peek() == Some('/') => {
                                self.bump();
                                break;
                            }
                            Some(_) => {}
                            None => return Err(error(at, "a comment /* is never closed")),
                        }
                    }
                }
                _ => return Ok(()),
            }
        }
    }

    /// An identifier: ALPHA / "_" then ALPHA / DIGIT / "_" (§8.1), lower-cased.
    fn word(&mut self) -> Option<String> {
        let first = self.peek()?;
        if !(first.is_ascii_alphabetic() || first == '_') {
            return None;
        }
        let mut w = String::new();
        while let Some(c) = self.peek() {
            if c.is_ascii_alphanumeric() || c == '_' {
                w.push(c.to_ascii_lowercase());
                self.bump();
            } else {
                break;
            }
        }
        Some(w)
    }

    /// A number with an optional K, M or G quantifier (§2.4.1); it must fit 64 bits.
    fn number(&mut self, at: Position) -> Result<u64, SyntaxError> {
        let mut n: u64 = 0;
        while let Some(c) = self.peek() {
            let Some(d) = c.to_digit(10) else { break };
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(d)))
                .ok_or_else(|| error(at, "the number is too large"))?;
            self.bump();
        }
        let shift = match self.peek().map(|c| c.to_ascii_uppercase()) {
            Some('K') => 10,
            Some('M') => 20,
            Some('G') => 30,
            _ => 0,
        };
        if shift > 0 {
            self.bump();
            n = n
                .checked_mul(1 << shift)
                .ok_or_else(|| error(at, "the number is too large"))?;
        }
        Ok(n)
    }

    /// `"…"`: `\"` and `\\` stand for themselves, any other `\x` for `x` (§2.4.2).
    fn quoted(&mut self, at: Position) -> Result<String, SyntaxError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(s),
                Some('\\') => match self.bump() {
                    Some(c) => s.push(c),
                    None => return Err(error(at, "the string is never closed")),
                },
                Some(c) => s.push(c),
                None => return Err(error(at, "the string is never closed")),
            }
        }
    }

    /// `text:` to the end of the line, then lines up to one that is a single `.`; a line
    /// starting with `..` loses one dot (§2.4.2).
    fn multiline(&mut self, at: Position) -> Result<String, SyntaxError> {
        // The rest of the `text:` line: white space or a hash comment.
        loop {
            match self.peek() {
                Some(' ' | '\t' | '\r') => {
                    self.bump();
                }
                Some('#') => {
                    while let Some(c) = self.peek() {
                        if c == '\n' {
                            break;
                        }
                        self.bump();
                    }
                }
                Some('\n') => {
                    self.bump();
                    break;
                }
                _ => return Err(error(at, "text: must end its line")),
            }
        }
        let mut s = String::new();
        loop {
            let mut line = String::new();
            let mut ended = false;
            while let Some(c) = self.bump() {
                if c == '\n' {
                    ended = true;
                    break;
                }
                line.push(c);
            }
            let bare = line.strip_suffix('\r').unwrap_or(&line);
            if bare == "." {
                return Ok(s);
            }
            if !ended {
                return Err(error(
                    at,
                    "a text: string needs a line with a single dot at its end",
                ));
            }
            let bare = bare.strip_prefix("..").map(|r| format!(".{r}"));
            s.push_str(
                bare.as_deref()
                    .unwrap_or(line.strip_suffix('\r').unwrap_or(&line)),
            );
            s.push_str("\r\n");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    fn kinds(s: &str) -> Vec<Token> {
        tokens(s).unwrap().into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn tokens_of_a_script() {
        assert_eq!(
            kinds("require [\"fileinto\"];\nif size :over 100K { fileinto \"Big\"; } # c\n"),
            [
                Token::Identifier("require".into()),
                Token::LeftBracket,
                Token::String("fileinto".into()),
                Token::RightBracket,
                Token::Semicolon,
                Token::Identifier("if".into()),
                Token::Identifier("size".into()),
                Token::Tag("over".into()),
                Token::Number(100 * 1024),
                Token::LeftBrace,
                Token::Identifier("fileinto".into()),
                Token::String("Big".into()),
                Token::Semicolon,
                Token::RightBrace,
            ]
        );
        assert_eq!(
            kinds("IF /* x\ny */ TRUE"),
            [
                Token::Identifier("if".into()),
                Token::Identifier("true".into())
            ]
        );
    }

    #[test]
    fn strings_quoted_and_multi_line() {
        assert_eq!(kinds(r#""a\"b\\c\d""#), [Token::String(r#"a"b\cd"#.into())]);
        assert_eq!(
            kinds("text: # note\r\nline one\r\n..dot\r\n.\r\n;"),
            [
                Token::String("line one\r\n.dot\r\n".into()),
                Token::Semicolon
            ]
        );
    }

    #[test]
    fn errors_name_line_and_column() {
        let e = tokens("keep;\n  \"open").unwrap_err();
        assert_eq!((e.at.line, e.at.column), (2, 3));
        assert!(e.to_string().contains("never closed"), "{e}");
        assert_eq!(tokens("a /* b").unwrap_err().at.column, 3);
        assert!(tokens("x 99999999999999999999").is_err());
        assert!(tokens("x 17179869184G").is_err());
        assert!(tokens("x @").unwrap_err().message.contains("unexpected"));
        assert!(tokens("x text: y\n.\n").is_err());
        assert!(tokens("x text:\nno end").is_err());
        assert!(tokens("x :").is_err());
    }
}
