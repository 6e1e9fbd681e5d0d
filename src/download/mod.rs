//! Downloads of restored files: signed, expiring links (`token`), the
//! `GET /download/<token>/…` route (`handler`), path confinement to the
//! restore target (`resolve`) and directories streamed as `.tar.gz`
//! (`archive`); files and folders straight from a snapshot through `restic
//! dump` (`snapshot`). Links are issued by the `GetDownloadURL` RPC
//! (`api::download`).

pub mod archive;
pub mod handler;
pub mod resolve;
pub mod snapshot;
pub mod token;

pub use handler::routes;
pub use token::{Clock, LinkPayload, LinkSigner};
