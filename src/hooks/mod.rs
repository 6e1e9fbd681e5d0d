//! Hooks: actions run when a task event fires (see `actions`).

pub mod actions;
