//! Hooks: actions run when a task event fires (see `actions`); `template` is
//! the Go text/template engine hook texts are written in, `vars` the data
//! (`HookVars`) they see and the entry point that renders them.

pub mod actions;
pub mod template;
pub mod vars;
