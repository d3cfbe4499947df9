//! Sieve's generic grammar (RFC 5228 §8.2): commands with arguments, tests and blocks, before
//! any meaning is given to their names. Nesting (blocks and tests together) is bounded, so a
//! script of ten thousand nested `if`s is an error, not a deep recursion.

use crate::Position;
use crate::lexer::{SyntaxError, Token, error, tokens};

/// How deep blocks and tests may nest (Pigeonhole's default nesting limit is 32).
pub const MAX_DEPTH: usize = 32;
/// Tokens in one script at most.
pub const MAX_TOKENS: usize = 200_000;

/// One argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Argument {
    /// A single string (`list: false`) or a string list.
    Strings {
        values: Vec<String>,
        list: bool,
    },
    Number(u64),
    Tag(String),
}

/// A test: `identifier arguments`, where the arguments may end in a test or a test list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Test {
    pub name: String,
    pub at: Position,
    pub arguments: Vec<(Argument, Position)>,
    pub tests: Vec<Test>,
}

/// A command: `identifier arguments` and `;` or a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub name: String,
    pub at: Position,
    pub arguments: Vec<(Argument, Position)>,
    pub tests: Vec<Test>,
    pub block: Option<Vec<Command>>,
}

/// The commands of `script`.
pub fn parse(script: &str) -> Result<Vec<Command>, SyntaxError> {
    let toks = tokens(script)?;
    if toks.len() > MAX_TOKENS {
        return Err(error(
            Position { line: 1, column: 1 },
            format!("the script has more than {MAX_TOKENS} tokens"),
        ));
    }
    let end = toks.last().map_or(Position { line: 1, column: 1 }, |t| t.1);
    let mut p = Parser { toks, i: 0, end };
    let mut commands = Vec::new();
    while p.peek().is_some() {
        commands.push(p.command(0)?);
    }
    Ok(commands)
}

/// A command's or test's arguments and the tests that end them.
type Arguments = (Vec<(Argument, Position)>, Vec<Test>);

struct Parser {
    toks: Vec<(Token, Position)>,
    i: usize,
    end: Position,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.toks.get(self.i).map(|t| &t.0)
    }

    fn at(&self) -> Position {
        self.toks.get(self.i).map_or(self.end, |t| t.1)
    }

    fn take(&mut self) -> Option<(Token, Position)> {
        let t = self.toks.get(self.i).cloned();
        self.i += 1;
        t
    }

    fn deeper(&self, depth: usize) -> Result<usize, SyntaxError> {
        if depth >= MAX_DEPTH {
            return Err(error(
                self.at(),
                format!("blocks and tests nest deeper than {MAX_DEPTH}"),
            ));
        }
        Ok(depth + 1)
    }

    fn command(&mut self, depth: usize) -> Result<Command, SyntaxError> {
        let (name, at) = match self.take() {
            Some((Token::Identifier(n), at)) => (n, at),
            Some((t, at)) => {
                return Err(error(at, format!("expected a command, found {}", what(&t))));
            }
            None => return Err(error(self.end, "expected a command")),
        };
        let (arguments, tests) = self.arguments(depth)?;
        let block = match self.take() {
            Some((Token::Semicolon, _)) => None,
            Some((Token::LeftBrace, _)) => {
                let depth = self.deeper(depth)?;
                let mut block = Vec::new();
                loop {
                    match self.peek() {
                        Some(Token::RightBrace) => {
                            self.take();
                            break;
                        }
                        None => {
                            return Err(error(at, format!("the block of {name} is never closed")));
                        }
                        _ => block.push(self.command(depth)?),
                    }
                }
                Some(block)
            }
            Some((t, pos)) => {
                return Err(error(
                    pos,
                    format!("expected ; or a block after {name}, found {}", what(&t)),
                ));
            }
            None => return Err(error(self.end, format!("{name} needs a ; at its end"))),
        };
        Ok(Command {
            name,
            at,
            arguments,
            tests,
            block,
        })
    }

    fn arguments(&mut self, depth: usize) -> Result<Arguments, SyntaxError> {
        let mut arguments = Vec::new();
        loop {
            let at = self.at();
            match self.peek() {
                Some(Token::String(_)) => {
                    if let Some((Token::String(s), _)) = self.take() {
                        arguments.push((
                            Argument::Strings {
                                values: vec![s],
                                list: false,
                            },
                            at,
                        ));
                    }
                }
                Some(Token::Number(_)) => {
                    if let Some((Token::Number(n), _)) = self.take() {
                        arguments.push((Argument::Number(n), at));
                    }
                }
                Some(Token::Tag(_)) => {
                    if let Some((Token::Tag(t), _)) = self.take() {
                        arguments.push((Argument::Tag(t), at));
                    }
                }
                Some(Token::LeftBracket) => {
                    self.take();
                    arguments.push((
                        Argument::Strings {
                            values: self.string_list(at)?,
                            list: true,
                        },
                        at,
                    ));
                }
                _ => break,
            }
        }
        let tests = match self.peek() {
            Some(Token::Identifier(_)) => vec![self.test(depth)?],
            Some(Token::LeftParen) => {
                let at = self.at();
                self.take();
                let mut tests = vec![self.test(depth)?];
                loop {
                    match self.take() {
                        Some((Token::Comma, _)) => tests.push(self.test(depth)?),
                        Some((Token::RightParen, _)) => break,
                        Some((t, pos)) => {
                            return Err(error(
                                pos,
                                format!("expected , or ) in a test list, found {}", what(&t)),
                            ));
                        }
                        None => return Err(error(at, "the test list is never closed")),
                    }
                }
                tests
            }
            _ => Vec::new(),
        };
        Ok((arguments, tests))
    }

    fn string_list(&mut self, at: Position) -> Result<Vec<String>, SyntaxError> {
        let mut values = Vec::new();
        loop {
            match self.take() {
                Some((Token::String(s), _)) => values.push(s),
                Some((t, pos)) => {
                    return Err(error(
                        pos,
                        format!("expected a string in the list, found {}", what(&t)),
                    ));
                }
                None => return Err(error(at, "the string list is never closed")),
            }
            match self.take() {
                Some((Token::Comma, _)) => {}
                Some((Token::RightBracket, _)) => return Ok(values),
                Some((t, pos)) => {
                    return Err(error(
                        pos,
                        format!("expected , or ] in a string list, found {}", what(&t)),
                    ));
                }
                None => return Err(error(at, "the string list is never closed")),
            }
        }
    }

    fn test(&mut self, depth: usize) -> Result<Test, SyntaxError> {
        let depth = self.deeper(depth)?;
        let (name, at) = match self.take() {
            Some((Token::Identifier(n), at)) => (n, at),
            Some((t, at)) => return Err(error(at, format!("expected a test, found {}", what(&t)))),
            None => return Err(error(self.end, "expected a test")),
        };
        let (arguments, tests) = self.arguments(depth)?;
        Ok(Test {
            name,
            at,
            arguments,
            tests,
        })
    }
}

/// A token as an error message names it.
fn what(t: &Token) -> String {
    match t {
        Token::Identifier(n) => format!("{n:?}"),
        Token::Tag(t) => format!(":{t}"),
        Token::Number(n) => n.to_string(),
        Token::String(_) => "a string".into(),
        Token::LeftBracket => "[".into(),
        Token::RightBracket => "]".into(),
        Token::LeftParen => "(".into(),
        Token::RightParen => ")".into(),
        Token::LeftBrace => "{".into(),
        Token::RightBrace => "}".into(),
        Token::Comma => ",".into(),
        Token::Semicolon => ";".into(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // tests fail loudly by design
    use super::*;

    #[test]
    fn commands_tests_and_blocks() {
        let c = parse(
            "require [\"fileinto\", \"copy\"];\n\
             if anyof (header :contains \"subject\" \"[list]\", address :is \"from\" \"a@b.c\") {\n\
               fileinto :copy \"Lists\";\n\
             } elsif not exists \"x\" { stop; } else { keep; }\n",
        )
        .unwrap();
        assert_eq!(c.len(), 4);
        assert_eq!(c[0].name, "require");
        assert_eq!(
            c[0].arguments[0].0,
            Argument::Strings {
                values: vec!["fileinto".into(), "copy".into()],
                list: true
            }
        );
        assert_eq!(c[1].name, "if");
        assert_eq!(c[1].tests[0].name, "anyof");
        assert_eq!(c[1].tests[0].tests.len(), 2);
        assert_eq!(
            c[1].tests[0].tests[1].arguments[0].0,
            Argument::Tag("is".into())
        );
        let block = c[1].block.as_ref().unwrap();
        assert_eq!(block[0].name, "fileinto");
        assert_eq!(block[0].at, Position { line: 3, column: 1 });
        assert_eq!(c[2].name, "elsif");
        assert_eq!(c[2].tests[0].tests[0].name, "exists");
        assert_eq!(c[3].name, "else");
    }

    #[test]
    fn syntax_errors_with_their_place() {
        for (script, line, column, says) in [
            ("keep", 1, 1, "needs a ;"),
            ("if true { keep;", 1, 1, "never closed"),
            ("fileinto [\"a\" \"b\"];", 1, 15, "expected , or ]"),
            ("if anyof (true, ) { }", 1, 17, "expected a test"),
            ("if anyof (true ] { }", 1, 16, "expected , or )"),
            ("keep;\n\"x\";", 2, 1, "expected a command"),
            ("stop ]", 1, 6, "expected ; or a block"),
        ] {
            let e = parse(script).unwrap_err();
            assert_eq!((e.at.line, e.at.column), (line, column), "{script}: {e}");
            assert!(e.message.contains(says), "{script}: {e}");
        }
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep = "if true {".repeat(10_000) + &"}".repeat(10_000);
        assert!(parse(&deep).unwrap_err().message.contains("nest deeper"));
        let deep_tests = format!("if {} true {{ }}", "not ".repeat(10_000));
        assert!(
            parse(&deep_tests)
                .unwrap_err()
                .message
                .contains("nest deeper")
        );
        let ok = "if true {".repeat(MAX_DEPTH - 1) + &"}".repeat(MAX_DEPTH - 1);
        assert!(parse(&ok).is_ok());
    }
}
