//! A Go `text/template` engine, so that hook templates written for Backrest
//! (command scripts, notification bodies) render byte for byte as Backrest
//! renders them.
//!
//! Supported: text and actions with `{{-`/`-}}` trimming, comments, fields
//! and methods (`.A.B`, `.Method arg`), variables (`$x := …`, `$x = …`),
//! pipelines, parentheses, `if`/`else if`/`with`/`else with`/`range` (with
//! `break`/`continue`, over slices, maps and integers), `define`/`template`/
//! `block`, Go literals, and the builtins `and or not len index slice print
//! printf println eq ne lt le gt ge html js urlquery call`. Values follow
//! Go's rules for truthiness, comparison, `fmt` printing and errors.
//!
//! Known differences from Go: complex-number literals are rejected; zone
//! abbreviations other than UTC print as numeric offsets; `time.Now()`'s
//! monotonic clock suffix is not printed; pointers nested inside printed
//! structs print as `&{…}` rather than an address; strings are UTF-8 (byte
//! escapes above `\x7f` become U+FFFD). Execution is bounded (nesting,
//! steps, output size) so no input can exhaust the stack or run unbounded.

mod ast;
mod builtins;
mod error;
mod exec;
mod gofmt;
pub mod gotime;
mod lexer;
mod literal;
mod parser;
pub mod value;

#[cfg(test)]
pub(crate) mod tests;

use std::collections::HashMap;

pub use error::{ErrorKind, TemplateError};
pub use value::{
    EnumType, FieldDef, FloatKind, IntKind, JsonName, List, Map, Method, MethodFn, MethodResult,
    Object, ObjectType, Param, StringerFn, UintKind, Value,
};

/// Go's `fmt.Sprint` and friends, for code building values and texts.
pub mod fmt {
    pub use super::gofmt::{format_float, quote, sprint, sprintf, sprintln};
}

/// A parsed template: the top-level template and every template it
/// `define`s.
pub struct Template {
    name: String,
    text: String,
    trees: HashMap<String, ast::List>,
}

impl Template {
    /// Parses `text`; `name` names the template in error messages (Go's
    /// `template.New(name).Parse(text)`).
    pub fn parse(name: &str, text: &str) -> Result<Template, TemplateError> {
        let trees = parser::parse(name, text)?;
        Ok(Template {
            name: name.to_string(),
            text: text.to_string(),
            trees,
        })
    }

    /// Executes the top-level template with `data` as dot.
    pub fn execute(&self, data: &Value) -> Result<String, TemplateError> {
        exec::execute(self, &self.name, data)
    }

    /// Executes the template `name` (defined in this template's text).
    pub fn execute_template(&self, name: &str, data: &Value) -> Result<String, TemplateError> {
        exec::execute(self, name, data)
    }
}

/// Parses and executes in one step.
pub fn render(name: &str, text: &str, data: &Value) -> Result<String, TemplateError> {
    Template::parse(name, text)?.execute(data)
}
