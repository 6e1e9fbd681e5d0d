//! Hooks (reference §10): user-configured actions run on task events.
//! `engine` decides which hooks an event fires and runs them inside the
//! task; `actions` performs each action (command, HTTP notifications,
//! shoutrrr); `template` is the Go text/template engine hook texts are
//! written in; `vars` is the data (`HookVars`) those templates see and the
//! one entry point that renders them.

pub mod actions;
pub mod engine;
pub mod template;
pub mod vars;
