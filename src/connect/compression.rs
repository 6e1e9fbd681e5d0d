//! gzip support. Connect negotiates compression with `Content-Encoding` /
//! `Accept-Encoding` for unary calls and `Connect-Content-Encoding` /
//! `Connect-Accept-Encoding` for streams; we support `gzip` and `identity`.

use std::io::{Read, Write};

use flate2::{Compression, read::GzDecoder, write::GzEncoder};

use super::ConnectError;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    Identity,
    Gzip,
}

impl Encoding {
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Identity => "identity",
            Encoding::Gzip => "gzip",
        }
    }
}

/// Parses a request's content encoding. An unsupported one is the Connect
/// error `unimplemented`, naming what we do support.
pub fn parse_content_encoding(value: Option<&str>) -> Result<Encoding, ConnectError> {
    match value.map(|v| v.trim().to_ascii_lowercase()) {
        None => Ok(Encoding::Identity),
        Some(v) if v.is_empty() || v == "identity" => Ok(Encoding::Identity),
        Some(v) if v == "gzip" => Ok(Encoding::Gzip),
        Some(v) => Err(ConnectError::unimplemented(format!(
            "unsupported compression \"{v}\": this server supports gzip and identity"
        ))),
    }
}

/// Picks the response encoding: gzip when the client lists it.
pub fn negotiate(accept: Option<&str>) -> Encoding {
    let Some(accept) = accept else {
        return Encoding::Identity;
    };
    for item in accept.split(',') {
        let name = item
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let refused = item.split(';').skip(1).any(|p| p.replace(' ', "") == "q=0");
        if name == "gzip" && !refused {
            return Encoding::Gzip;
        }
    }
    Encoding::Identity
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::with_capacity(data.len() / 2 + 64), Compression::fast());
    enc.write_all(data).expect("in-memory write");
    enc.finish().expect("in-memory write")
}

/// Decompresses gzip data, refusing output larger than `limit` bytes.
pub fn gunzip(data: &[u8], limit: usize) -> Result<Vec<u8>, ConnectError> {
    if data.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    let mut dec = GzDecoder::new(data).take(limit as u64 + 1);
    dec.read_to_end(&mut out)
        .map_err(|e| ConnectError::invalid_argument(format!("invalid gzip data: {e}")))?;
    if out.len() > limit {
        return Err(ConnectError::resource_exhausted(format!(
            "decompressed message exceeds the limit of {limit} bytes"
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        assert_eq!(negotiate(None), Encoding::Identity);
        assert_eq!(negotiate(Some("gzip, deflate, br")), Encoding::Gzip);
        assert_eq!(negotiate(Some("br, GZIP")), Encoding::Gzip);
        assert_eq!(negotiate(Some("gzip;q=0")), Encoding::Identity);
        assert_eq!(negotiate(Some("identity")), Encoding::Identity);
    }

    #[test]
    fn content_encoding() {
        assert_eq!(parse_content_encoding(None).unwrap(), Encoding::Identity);
        assert_eq!(
            parse_content_encoding(Some("gzip")).unwrap(),
            Encoding::Gzip
        );
        let e = parse_content_encoding(Some("br")).unwrap_err();
        assert_eq!(e.code, crate::connect::Code::Unimplemented);
        assert!(e.message.contains("gzip"));
    }

    #[test]
    fn gzip_round_trip_and_limit() {
        let data = vec![b'a'; 10_000];
        let z = gzip(&data);
        assert!(z.len() < 200);
        assert_eq!(gunzip(&z, 10_000).unwrap(), data);
        assert_eq!(
            gunzip(&z, 9_999).unwrap_err().code,
            crate::connect::Code::ResourceExhausted
        );
        assert_eq!(
            gunzip(b"not gzip", 100).unwrap_err().code,
            crate::connect::Code::InvalidArgument
        );
        assert!(gunzip(&[], 10).unwrap().is_empty());
    }
}
