//! What a unary handler answers with. Usually the response message itself,
//! which the call's codec encodes; a handler that already holds its response
//! in encoded form (GetOperations: operations as stored in the log) can answer
//! with its own [`UnaryReply`] and skip building the message.

use bytes::Bytes;

use super::{Codec, ConnectError, RpcMessage};

/// A unary response of message type `M`, ready to be encoded.
pub trait UnaryReply<M>: Send + 'static {
    /// The response body in `codec`'s encoding: exactly what encoding the
    /// equivalent `M` would give (for JSON: the same JSON value).
    fn encode(self, codec: Codec) -> Result<Bytes, ConnectError>;
}

/// Encoded responses at least this big free their message on a blocking
/// thread instead of before the response goes out.
const FREE_LATER_BYTES: usize = 1 << 20;

impl<M: RpcMessage> UnaryReply<M> for M {
    fn encode(self, codec: Codec) -> Result<Bytes, ConnectError> {
        let body = codec.encode(&self)?;
        // Freeing a big message (10,000 operations: ~150,000 allocations,
        // ~7 ms) would delay the response it was encoded into; the client
        // needn't wait.
        if body.len() >= FREE_LATER_BYTES {
            tokio::task::spawn_blocking(move || drop(self));
        }
        Ok(body)
    }
}
