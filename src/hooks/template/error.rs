//! The one error type of the template engine.

use std::fmt;

/// Whether a template failed to parse or to execute.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    Parse,
    Execute,
}

/// A parse or execution error, worded like Go's text/template errors:
/// `template: NAME:LINE: …` for parse errors and
/// `template: NAME:LINE:COL: executing "NAME" at <…>: …` for execution
/// errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    kind: ErrorKind,
    message: String,
}

impl TemplateError {
    pub fn parse(message: impl Into<String>) -> TemplateError {
        TemplateError {
            kind: ErrorKind::Parse,
            message: message.into(),
        }
    }

    pub fn execute(message: impl Into<String>) -> TemplateError {
        TemplateError {
            kind: ErrorKind::Execute,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// The same error with `prefix` in front of its message.
    pub fn prefixed(self, prefix: &str) -> TemplateError {
        TemplateError {
            kind: self.kind,
            message: format!("{prefix}{}", self.message),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}
