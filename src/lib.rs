//! backrest-rs: a drop-in, wire-compatible server for Backrest's API.
//!
//! Layout: `connect` (the protocol), `api` (handlers per area), `config`
//! (config.json), `oplog` (operation log), `logstore` (task output), `web`
//! (static UI), `server` (wiring and lifecycle), `cli` (flags).

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod connect;
pub mod datadir;
pub mod docs;
pub mod download;
pub mod hooks;
pub mod logstore;
pub mod metrics;
pub mod oplog;
pub mod orchestrator;
pub mod restic;
pub mod server;
pub mod sync_ext;
pub mod web;

pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Generated protobuf messages (prost), their proto3 JSON (pbjson), and one
/// `connect_service!` invocation per service (see `connect::service`).
#[allow(clippy::all, unused_doc_comments)]
pub mod pb {
    pub mod types {
        include!(concat!(env!("OUT_DIR"), "/types.rs"));
        include!(concat!(env!("OUT_DIR"), "/types.serde.rs"));
    }
    pub mod v1 {
        include!(concat!(env!("OUT_DIR"), "/v1.rs"));
        include!(concat!(env!("OUT_DIR"), "/v1.serde.rs"));
    }
    pub mod v1sync {
        include!(concat!(env!("OUT_DIR"), "/v1sync.rs"));
        include!(concat!(env!("OUT_DIR"), "/v1sync.serde.rs"));
    }

    /// The compiled descriptor set of `proto/` (for docs and reflection).
    pub const DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));
}
