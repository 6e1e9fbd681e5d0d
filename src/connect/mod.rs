//! A small, hand-written Connect protocol server (connectrpc.com/docs/protocol):
//! unary calls in JSON and binary protobuf, server streaming with envelopes,
//! gzip, timeouts, and the Connect error model. Split by concern like tonic:
//! codec, envelope, compression, error, unary, stream, and the service macro.

pub mod codec;
pub mod compression;
pub mod context;
pub mod envelope;
pub mod error;
pub mod reply;
pub mod service;
pub mod stream;
pub mod transcode;
pub mod unary;

#[cfg(test)]
mod tests;

pub use codec::{Codec, RpcMessage};
pub use context::{RequestContext, ShutdownSignal};
pub use error::{Code, ConnectError};
pub use reply::UnaryReply;
pub use stream::ServerStream;

/// Largest request or response message accepted, after decompression.
pub const MAX_MESSAGE_BYTES: usize = 32 * 1024 * 1024;
