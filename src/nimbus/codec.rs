//! Thrift framing and a bounds-checked binary protocol reader.
//!
//! The generated client is used purely as a codec: a call is encoded into a buffer by running the
//! generated `NimbusSyncClient` against an in-memory output, and the reply is decoded by running the same
//! call against the received frame. All socket I/O happens in async code ([`read_frame`],
//! tokio `write_all`), so the tokio runtime never blocks and deadlines cancel cleanly.
//!
//! [`SliceInputProtocol`] is a binary-protocol reader over one complete frame. Unlike the `thrift` crate's
//! `TBinaryInputProtocol`, it refuses any string, binary or container length that cannot fit in the bytes
//! left in the frame *before* allocating, so a hostile length prefix cannot cause a huge allocation.

use std::convert::TryFrom;

use thrift::protocol::{
    TBinaryOutputProtocol, TFieldIdentifier, TInputProtocol, TListIdentifier, TMapIdentifier,
    TMessageIdentifier, TMessageType, TSetIdentifier, TStructIdentifier, TType,
};
use thrift::{ProtocolError, ProtocolErrorKind};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::error::NimbusError;
use super::generated::storm::{NimbusSyncClient, TNimbusSyncClient};

/// Nimbus's default `nimbus.thrift.max_buffer_size`: larger request frames make it drop the connection.
pub const MAX_REQUEST_FRAME: usize = 1_048_576;
/// Nesting limit for structs/containers while decoding.
const MAX_DEPTH: usize = 64;
const VERSION_1: u32 = 0x8001_0000;
const VERSION_MASK: u32 = 0xffff_0000;

/// A Thrift binary-protocol reader over a complete in-memory frame, with every length checked against the
/// bytes that remain.
pub struct SliceInputProtocol<'a> {
    buf: &'a [u8],
    pos: usize,
    depth: usize,
}

fn proto_err(kind: ProtocolErrorKind, message: impl Into<String>) -> thrift::Error {
    thrift::Error::Protocol(ProtocolError::new(kind, message.into()))
}

fn ttype(b: u8) -> thrift::Result<TType> {
    Ok(match b {
        0x00 => TType::Stop,
        0x01 => TType::Void,
        0x02 => TType::Bool,
        0x03 => TType::I08,
        0x04 => TType::Double,
        0x06 => TType::I16,
        0x08 => TType::I32,
        0x0A => TType::I64,
        0x0B => TType::String,
        0x0C => TType::Struct,
        0x0D => TType::Map,
        0x0E => TType::Set,
        0x0F => TType::List,
        0x10 => TType::Uuid,
        other => {
            return Err(proto_err(
                ProtocolErrorKind::InvalidData,
                format!("unknown field type {other:#x}"),
            ));
        }
    })
}

/// Smallest number of bytes one value of `t` occupies in the binary protocol.
fn min_size(t: TType) -> usize {
    match t {
        TType::Bool | TType::I08 | TType::Struct | TType::Stop | TType::Void => 1,
        TType::I16 => 2,
        TType::I32 | TType::String | TType::Utf7 => 4,
        TType::I64 | TType::Double => 8,
        TType::Map => 6,
        TType::Set | TType::List => 5,
        TType::Uuid => 16,
    }
}

impl<'a> SliceInputProtocol<'a> {
    /// Reads from `buf`, which holds exactly one frame payload.
    pub fn new(buf: &'a [u8]) -> Self {
        Self {
            buf,
            pos: 0,
            depth: 0,
        }
    }

    /// Bytes not consumed yet.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize) -> thrift::Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(proto_err(
                ProtocolErrorKind::InvalidData,
                format!(
                    "need {n} bytes but only {} remain in the frame",
                    self.remaining()
                ),
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> thrift::Result<[u8; N]> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn length(&mut self, what: &str, per_item: usize) -> thrift::Result<i32> {
        let n = self.read_i32()?;
        if n < 0 {
            return Err(proto_err(
                ProtocolErrorKind::NegativeSize,
                format!("negative {what} length {n}"),
            ));
        }
        let need = (n as usize).saturating_mul(per_item);
        if need > self.remaining() {
            return Err(proto_err(
                ProtocolErrorKind::SizeLimit,
                format!(
                    "{what} length {n} needs at least {need} bytes but only {} remain in the frame",
                    self.remaining()
                ),
            ));
        }
        Ok(n)
    }

    fn enter(&mut self) -> thrift::Result<()> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(proto_err(ProtocolErrorKind::DepthLimit, "nesting too deep"));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }
}

impl TInputProtocol for SliceInputProtocol<'_> {
    fn read_message_begin(&mut self) -> thrift::Result<TMessageIdentifier> {
        let first = self.read_i32()?;
        let (name, kind) = if first < 0 {
            let v = first as u32;
            if v & VERSION_MASK != VERSION_1 {
                return Err(proto_err(
                    ProtocolErrorKind::BadVersion,
                    format!("bad binary protocol version {v:#x}"),
                ));
            }
            let kind = TMessageType::try_from((v & 0xff) as u8)?;
            (self.read_string()?, kind)
        } else {
            // Old non-strict header: name length, name, type byte.
            if first as usize > self.remaining() {
                return Err(proto_err(
                    ProtocolErrorKind::SizeLimit,
                    "message name longer than the frame",
                ));
            }
            let name = String::from_utf8(self.take(first as usize)?.to_vec())?;
            let kind = TMessageType::try_from(self.read_byte()?)?;
            (name, kind)
        };
        let seq = self.read_i32()?;
        Ok(TMessageIdentifier::new(name, kind, seq))
    }

    fn read_message_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_struct_begin(&mut self) -> thrift::Result<Option<TStructIdentifier>> {
        self.enter()?;
        Ok(None)
    }

    fn read_struct_end(&mut self) -> thrift::Result<()> {
        self.leave();
        Ok(())
    }

    fn read_field_begin(&mut self) -> thrift::Result<TFieldIdentifier> {
        let t = ttype(self.read_byte()?)?;
        let id = if t == TType::Stop {
            0
        } else {
            self.read_i16()?
        };
        Ok(TFieldIdentifier::new::<Option<String>, String, i16>(
            None, t, id,
        ))
    }

    fn read_field_end(&mut self) -> thrift::Result<()> {
        Ok(())
    }

    fn read_bool(&mut self) -> thrift::Result<bool> {
        Ok(self.read_byte()? != 0)
    }

    fn read_bytes(&mut self) -> thrift::Result<Vec<u8>> {
        let n = self.length("binary", 1)?;
        Ok(self.take(n as usize)?.to_vec())
    }

    fn read_i8(&mut self) -> thrift::Result<i8> {
        Ok(i8::from_be_bytes(self.array()?))
    }

    fn read_i16(&mut self) -> thrift::Result<i16> {
        Ok(i16::from_be_bytes(self.array()?))
    }

    fn read_i32(&mut self) -> thrift::Result<i32> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn read_i64(&mut self) -> thrift::Result<i64> {
        Ok(i64::from_be_bytes(self.array()?))
    }

    fn read_double(&mut self) -> thrift::Result<f64> {
        Ok(f64::from_be_bytes(self.array()?))
    }

    fn read_uuid(&mut self) -> thrift::Result<uuid::Uuid> {
        Ok(uuid::Uuid::from_bytes(self.array()?))
    }

    fn read_string(&mut self) -> thrift::Result<String> {
        let n = self.length("string", 1)?;
        Ok(String::from_utf8(self.take(n as usize)?.to_vec())?)
    }

    fn read_list_begin(&mut self) -> thrift::Result<TListIdentifier> {
        let t = ttype(self.read_byte()?)?;
        let n = self.length("list", min_size(t))?;
        self.enter()?;
        Ok(TListIdentifier::new(t, n))
    }

    fn read_list_end(&mut self) -> thrift::Result<()> {
        self.leave();
        Ok(())
    }

    fn read_set_begin(&mut self) -> thrift::Result<TSetIdentifier> {
        let t = ttype(self.read_byte()?)?;
        let n = self.length("set", min_size(t))?;
        self.enter()?;
        Ok(TSetIdentifier::new(t, n))
    }

    fn read_set_end(&mut self) -> thrift::Result<()> {
        self.leave();
        Ok(())
    }

    fn read_map_begin(&mut self) -> thrift::Result<TMapIdentifier> {
        let k = ttype(self.read_byte()?)?;
        let v = ttype(self.read_byte()?)?;
        let n = self.length("map", min_size(k) + min_size(v))?;
        self.enter()?;
        Ok(TMapIdentifier::new(k, v, n))
    }

    fn read_map_end(&mut self) -> thrift::Result<()> {
        self.leave();
        Ok(())
    }

    fn read_byte(&mut self) -> thrift::Result<u8> {
        Ok(self.array::<1>()?[0])
    }

    fn min_serialized_size(&self, field_type: TType) -> usize {
        min_size(field_type)
    }
}

/// The generated client type used as a codec.
pub type CodecClient<'a, W> = NimbusSyncClient<SliceInputProtocol<'a>, TBinaryOutputProtocol<W>>;

/// A Nimbus call expressed against the generated client; run once to encode and once to decode.
pub trait Call<T>: Fn(&mut dyn TNimbusSyncClient) -> thrift::Result<T> + Send + Sync {}
impl<T, F: Fn(&mut dyn TNimbusSyncClient) -> thrift::Result<T> + Send + Sync> Call<T> for F {}

/// Encodes the request of `call` as one frame (4-byte big-endian length + strict binary message).
pub fn encode_request<T>(method: &str, call: &dyn Call<T>) -> Result<Vec<u8>, NimbusError> {
    let mut buf = vec![0u8; 4];
    {
        let empty: &[u8] = &[];
        let mut client: CodecClient<'_, &mut Vec<u8>> = NimbusSyncClient::new(
            SliceInputProtocol::new(empty),
            TBinaryOutputProtocol::new(&mut buf, true),
        );
        // The write half succeeds; reading the (absent) reply then fails, which is expected here.
        let _ = call(&mut client);
    }
    let len = buf.len() - 4;
    if len == 0 {
        return Err(NimbusError::Protocol(format!(
            "{method}: could not encode the request"
        )));
    }
    if len > MAX_REQUEST_FRAME {
        return Err(NimbusError::RequestTooLarge {
            size: len as u64,
            limit: MAX_REQUEST_FRAME as u64,
        });
    }
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    Ok(buf)
}

/// Decodes the reply `frame` (payload without the length prefix) of `call`.
pub fn decode_reply<T>(method: &str, frame: &[u8], call: &dyn Call<T>) -> Result<T, NimbusError> {
    let mut sink = std::io::sink();
    let mut client: CodecClient<'_, &mut std::io::Sink> = NimbusSyncClient::new(
        SliceInputProtocol::new(frame),
        TBinaryOutputProtocol::new(&mut sink, true),
    );
    call(&mut client).map_err(|e| NimbusError::from_thrift(method, e))
}

/// Reads the method name of a request or reply frame without decoding the rest.
pub fn peek_message(frame: &[u8]) -> Option<TMessageIdentifier> {
    SliceInputProtocol::new(frame).read_message_begin().ok()
}

/// Reads one frame whose announced length must not exceed `limit`; the length is checked before any
/// buffer is reserved, and the buffer grows only as bytes actually arrive.
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
    endpoint: &str,
) -> Result<Vec<u8>, NimbusError> {
    let mut header = [0u8; 4];
    r.read_exact(&mut header)
        .await
        .map_err(|e| NimbusError::transport(endpoint, format!("reading frame header: {e}")))?;
    let size = i32::from_be_bytes(header);
    if size < 0 {
        return Err(NimbusError::Protocol(format!(
            "negative frame length {size} from {endpoint}"
        )));
    }
    let size = size as usize;
    if size > limit {
        return Err(NimbusError::FrameTooLarge {
            size: size as u64,
            limit: limit as u64,
        });
    }
    let mut body = Vec::with_capacity(size.min(64 * 1024));
    (&mut *r)
        .take(size as u64)
        .read_to_end(&mut body)
        .await
        .map_err(|e| NimbusError::transport(endpoint, format!("reading frame body: {e}")))?;
    if body.len() < size {
        return Err(NimbusError::transport(
            endpoint,
            format!(
                "peer closed the connection mid-frame ({} of {size} bytes)",
                body.len()
            ),
        ));
    }
    Ok(body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use thrift::protocol::TOutputProtocol;

    fn list_header(elem: u8, len: i32) -> Vec<u8> {
        let mut v = vec![elem];
        v.extend_from_slice(&len.to_be_bytes());
        v
    }

    #[test]
    fn hostile_string_length_is_refused_before_allocation() {
        let mut frame = i32::MAX.to_be_bytes().to_vec();
        frame.extend_from_slice(b"abc");
        match SliceInputProtocol::new(&frame).read_string().unwrap_err() {
            thrift::Error::Protocol(e) => {
                assert_eq!(e.kind, ProtocolErrorKind::SizeLimit);
                assert!(e.message.contains("only 3 remain"), "{}", e.message);
            }
            other => panic!("unexpected error {other:?}"),
        }
    }

    #[test]
    fn hostile_list_length_is_refused() {
        // 1000 i64 elements claimed, 16 bytes present.
        let mut frame = list_header(0x0A, 1000);
        frame.extend_from_slice(&[0u8; 16]);
        assert!(SliceInputProtocol::new(&frame).read_list_begin().is_err());
        let mut ok = list_header(0x0A, 2);
        ok.extend_from_slice(&[0u8; 16]);
        assert_eq!(
            SliceInputProtocol::new(&ok).read_list_begin().unwrap().size,
            2
        );
    }

    #[test]
    fn negative_lengths_are_refused() {
        let frame = (-5i32).to_be_bytes();
        assert!(SliceInputProtocol::new(&frame).read_bytes().is_err());
    }

    #[test]
    fn reads_what_the_binary_writer_wrote() {
        let mut buf = Vec::new();
        {
            let mut o = TBinaryOutputProtocol::new(&mut buf, true);
            o.write_message_begin(&TMessageIdentifier::new(
                "getLeader",
                TMessageType::Reply,
                7,
            ))
            .unwrap();
            o.write_string("héllo").unwrap();
            o.write_i64(-3).unwrap();
            o.write_double(2.5).unwrap();
            o.write_bool(true).unwrap();
        }
        let mut i = SliceInputProtocol::new(&buf);
        let m = i.read_message_begin().unwrap();
        assert_eq!((m.name.as_str(), m.sequence_number), ("getLeader", 7));
        assert_eq!(m.message_type, TMessageType::Reply);
        assert_eq!(i.read_string().unwrap(), "héllo");
        assert_eq!(i.read_i64().unwrap(), -3);
        assert_eq!(i.read_double().unwrap(), 2.5);
        assert!(i.read_bool().unwrap());
        assert_eq!(i.remaining(), 0);
        assert!(i.read_byte().is_err());
    }

    #[test]
    fn request_is_framed_and_names_the_method() {
        let f = encode_request("getTopologyConf", &|c: &mut dyn TNimbusSyncClient| {
            c.get_topology_conf("t-1-1".into())
        })
        .unwrap();
        let len = u32::from_be_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(len, f.len() - 4);
        let m = peek_message(&f[4..]).unwrap();
        assert_eq!(m.name, "getTopologyConf");
        assert_eq!(m.message_type, TMessageType::Call);
    }

    #[test]
    fn page_info_request_bytes_match_storms_field_ids() {
        let f = encode_request("getTopologyPageInfo", &|c: &mut dyn TNimbusSyncClient| {
            c.get_topology_page_info("t-1-1".into(), "600".into(), false)
        })
        .unwrap();
        let mut want: Vec<u8> = vec![0x80, 0x01, 0x00, 0x01]; // strict binary, CALL
        want.extend_from_slice(&19u32.to_be_bytes());
        want.extend_from_slice(b"getTopologyPageInfo");
        want.extend_from_slice(&1u32.to_be_bytes()); // sequence id
        want.extend_from_slice(&[0x0B, 0x00, 0x01, 0, 0, 0, 5]); // 1: string id
        want.extend_from_slice(b"t-1-1");
        want.extend_from_slice(&[0x0B, 0x00, 0x02, 0, 0, 0, 3]); // 2: string window
        want.extend_from_slice(b"600");
        want.extend_from_slice(&[0x02, 0x00, 0x03, 0x00]); // 3: bool is_include_sys
        want.push(0x00); // stop
        assert_eq!(&f[4..], want.as_slice());
        assert_eq!(&f[..4], &(want.len() as u32).to_be_bytes());
    }

    #[test]
    fn declared_exception_reply_maps_to_a_typed_error() {
        // getTopologyInfo_result { 1: NotAliveException e { 1: string msg } }, as Nimbus writes it.
        let mut reply: Vec<u8> = vec![0x80, 0x01, 0x00, 0x02]; // REPLY
        reply.extend_from_slice(&15u32.to_be_bytes());
        reply.extend_from_slice(b"getTopologyInfo");
        reply.extend_from_slice(&1u32.to_be_bytes());
        reply.extend_from_slice(&[0x0C, 0x00, 0x01]); // field 1: struct
        reply.extend_from_slice(&[0x0B, 0x00, 0x01, 0, 0, 0, 6]);
        reply.extend_from_slice(b"t-1-99");
        reply.extend_from_slice(&[0x00, 0x00]); // stop (exception), stop (result)
        let call = |c: &mut dyn TNimbusSyncClient| c.get_topology_info("t-1-99".into());
        assert_eq!(
            decode_reply("getTopologyInfo", &reply, &call),
            Err(NimbusError::NotAlive("t-1-99".into()))
        );
        // Truncated: a Protocol error, never a panic.
        assert!(matches!(
            decode_reply("getTopologyInfo", &reply[..reply.len() - 5], &call),
            Err(NimbusError::Protocol(_))
        ));
    }

    #[test]
    fn oversized_request_is_refused() {
        let chunk = vec![0u8; MAX_REQUEST_FRAME];
        let err = encode_request("uploadChunk", &|c: &mut dyn TNimbusSyncClient| {
            c.upload_chunk("loc".into(), chunk.clone())
        })
        .unwrap_err();
        assert!(matches!(err, NimbusError::RequestTooLarge { .. }), "{err}");
    }
}
