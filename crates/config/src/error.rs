//! Configuration errors: one line each, with the key, the value and the fix.

use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: cannot read the configuration file: {source} (fix: check the path given to --config)", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: TOML syntax error: {message}", path.display())]
    Syntax {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{}{}: {key}: {problem} (fix: {fix})", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    Key {
        path: PathBuf,
        line: Option<usize>,
        key: String,
        problem: String,
        fix: String,
    },
    #[error("{}: {key} = {value}: {problem} (fix: {fix})", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        value: String,
        problem: String,
        fix: String,
    },
}

impl ConfigError {
    pub(crate) fn syntax(path: &Path, text: &str, e: &toml::de::Error) -> Self {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
        ConfigError::Syntax {
            path: path.to_owned(),
            line,
            column,
            message: one_line(e.message()),
        }
    }

    pub(crate) fn from_serde(path: &Path, text: &str, key: String, e: toml::de::Error) -> Self {
        let line = e.span().map(|s| line_col(text, s.start).0);
        let message = one_line(e.message());
        let key = if key == "." || key.is_empty() {
            "(top level)".to_string()
        } else {
            key
        };
        let (problem, fix) = if let Some(rest) = message.strip_prefix("unknown field ") {
            // serde: "unknown field `x`, expected one of `a`, `b`"
            let (field, expected) = rest.split_once(", expected").unwrap_or((rest, ""));
            let expected = expected.trim_start_matches(" one of").trim();
            (
                format!("unknown key {field}"),
                if expected.is_empty() {
                    "remove it; this table takes no keys".to_string()
                } else {
                    format!("remove it or correct the spelling; allowed here: {expected}")
                },
            )
        } else if message.starts_with("missing field ") {
            (
                message.replace("missing field", "missing key"),
                "add it; see kurier.example.toml".into(),
            )
        } else if let Some((problem, fix)) = message.split_once(" (fix: ") {
            // Our own deserializers carry their fix already.
            (problem.to_string(), fix.trim_end_matches(')').to_string())
        } else {
            (
                message,
                "see kurier.example.toml for the expected type and an example".into(),
            )
        };
        ConfigError::Key {
            path: path.to_owned(),
            line,
            key,
            problem,
            fix,
        }
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..text.floor_char_boundary(offset.min(text.len()))];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, column)
}
