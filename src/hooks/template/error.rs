//! The one error type of the template engine.

use std::fmt;

/// A parse or execution error, worded like Go's text/template errors:
/// `template: NAME:LINE: …` for parse errors and
/// `template: NAME:LINE:COL: executing "NAME" at <…>: …` for execution
/// errors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateError {
    message: String,
}

impl TemplateError {
    pub fn new(message: impl Into<String>) -> TemplateError {
        TemplateError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for TemplateError {}
