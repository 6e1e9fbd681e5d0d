//! Connect streaming envelopes: `flags (1 byte) | length (u32 BE) | payload`.

use bytes::{BufMut, Bytes, BytesMut};

use super::ConnectError;

pub const FLAG_COMPRESSED: u8 = 0x01;
pub const FLAG_END_STREAM: u8 = 0x02;

pub fn encode(flags: u8, payload: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(5 + payload.len());
    buf.put_u8(flags);
    buf.put_u32(payload.len() as u32);
    buf.put_slice(payload);
    buf.freeze()
}

#[derive(Debug, PartialEq, Eq)]
pub struct Envelope {
    pub flags: u8,
    pub payload: Bytes,
}

/// Splits a complete body into envelopes. `max_len` bounds each payload.
pub fn decode_all(mut body: Bytes, max_len: usize) -> Result<Vec<Envelope>, ConnectError> {
    let mut out = Vec::new();
    while !body.is_empty() {
        if body.len() < 5 {
            return Err(ConnectError::invalid_argument(format!(
                "truncated envelope: {} bytes left, a header needs 5",
                body.len()
            )));
        }
        let flags = body[0];
        let len = u32::from_be_bytes([body[1], body[2], body[3], body[4]]) as usize;
        if len > max_len {
            return Err(ConnectError::resource_exhausted(format!(
                "message of {len} bytes exceeds the limit of {max_len} bytes"
            )));
        }
        if body.len() < 5 + len {
            return Err(ConnectError::invalid_argument(format!(
                "truncated envelope: header announces {len} bytes, {} present",
                body.len() - 5
            )));
        }
        let _ = body.split_to(5);
        let payload = body.split_to(len);
        out.push(Envelope { flags, payload });
    }
    Ok(out)
}

/// Incremental decoder for reading a response stream (used by tests and the
/// benchmark client).
#[derive(Default)]
pub struct StreamDecoder {
    buf: BytesMut,
}

impl StreamDecoder {
    pub fn push(&mut self, chunk: &[u8]) {
        self.buf.extend_from_slice(chunk);
    }
}

/// Yields the envelopes complete so far. `None` means "need more bytes", not
/// the end: after another `push` the decoder yields again (it is not fused).
impl Iterator for StreamDecoder {
    type Item = Envelope;

    fn next(&mut self) -> Option<Envelope> {
        if self.buf.len() < 5 {
            return None;
        }
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if self.buf.len() < 5 + len {
            return None;
        }
        let head = self.buf.split_to(5);
        let payload = self.buf.split_to(len).freeze();
        Some(Envelope {
            flags: head[0],
            payload,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut body = BytesMut::new();
        body.extend_from_slice(&encode(0, b"hello"));
        body.extend_from_slice(&encode(FLAG_END_STREAM, b"{}"));
        let envs = decode_all(body.freeze(), 100).unwrap();
        assert_eq!(envs.len(), 2);
        assert_eq!(
            envs[0],
            Envelope {
                flags: 0,
                payload: Bytes::from_static(b"hello")
            }
        );
        assert_eq!(envs[1].flags, FLAG_END_STREAM);
    }

    #[test]
    fn truncated_and_oversized() {
        let e = encode(0, b"hello");
        assert!(decode_all(e.slice(0..3), 100).is_err());
        assert!(decode_all(e.slice(0..7), 100).is_err());
        let err = decode_all(e.clone(), 2).unwrap_err();
        assert_eq!(err.code, crate::connect::Code::ResourceExhausted);
        assert!(decode_all(Bytes::new(), 10).unwrap().is_empty());
    }

    #[test]
    fn incremental() {
        let mut d = StreamDecoder::default();
        let e = encode(1, b"abc");
        d.push(&e[..4]);
        assert!(d.next().is_none());
        d.push(&e[4..]);
        assert_eq!(d.next().unwrap().payload, Bytes::from_static(b"abc"));
        assert!(d.next().is_none());
    }
}
