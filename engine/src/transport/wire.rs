//! A lean unary gRPC client for etcd's KV service (put, range, delete) on scen's own HTTP/2
//! connection ([`super::h2c`]): the stress hot path. Each call queues HEADERS and DATA frames
//! with header blocks encoded once per connection, and decodes only the response fields the
//! worker reads. Used for plaintext connections without auth; TLS and `--user` go through
//! etcd-client.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use etcd_client::Error;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;

use super::h2c::{grpc_request_headers, CallError, Channel};

/// etcd's response header: only the revision is read.
#[derive(Clone, PartialEq, Message)]
struct Header {
    /// The store revision when the request was applied.
    #[prost(int64, tag = "3")]
    revision: i64,
}

/// `PutResponse` and `RangeResponse` as far as the worker reads them: the header (field 1). The
/// key-values a range returns are skipped, not decoded.
#[derive(Clone, PartialEq, Message)]
struct Reply {
    #[prost(message, optional, tag = "1")]
    header: Option<Header>,
}

/// `DeleteRangeResponse`: the header and how many keys went.
#[derive(Clone, PartialEq, Message)]
struct DeleteReply {
    #[prost(message, optional, tag = "1")]
    header: Option<Header>,
    #[prost(int64, tag = "2")]
    deleted: i64,
}

/// What a call returned that the worker uses.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    /// The revision in the response header.
    pub revision: Option<i64>,
    /// Keys deleted (delete only).
    pub deleted: i64,
}

/// One HTTP/2 connection to one member; cheap to clone (workers share it).
#[derive(Clone)]
pub struct Wire {
    channel: Channel,
    /// The three methods' request header blocks, encoded once.
    headers: std::sync::Arc<[Vec<u8>; 3]>,
    timeout: Duration,
}

const PUT: usize = 0;
const RANGE: usize = 1;
const DELETE: usize = 2;

/// A range request's shape.
pub struct RangeArgs<'a> {
    /// End of the range (empty: one key).
    pub end: &'a [u8],
    /// Most keys returned (0: no limit).
    pub limit: i64,
    /// Served locally without a quorum read.
    pub serializable: bool,
}

fn bytes_field(tag: u32, v: &[u8], buf: &mut BytesMut) {
    if !v.is_empty() {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(v.len() as u64, buf);
        buf.put_slice(v);
    }
}

fn bytes_len(tag: u32, v: &[u8]) -> usize {
    if v.is_empty() {
        0
    } else {
        prost::encoding::key_len(tag) + encoded_len_varint(v.len() as u64) + v.len()
    }
}

fn varint_field(tag: u32, v: u64, buf: &mut BytesMut) {
    if v != 0 {
        encode_key(tag, WireType::Varint, buf);
        encode_varint(v, buf);
    }
}

/// A gRPC frame (uncompressed flag, length, message) with room for `len` message bytes.
fn frame(len: usize) -> BytesMut {
    let mut buf = BytesMut::with_capacity(5 + len);
    buf.put_u8(0);
    buf.put_u32(len as u32);
    buf
}

fn io(kind: std::io::ErrorKind, msg: impl Into<String>) -> Error {
    Error::IoError(std::io::Error::new(kind, msg.into()))
}

/// A failed HTTP/2 call as the gRPC status a gRPC client reports for it (gRPC's HTTP/2 mapping:
/// a lost or refused connection is `Unavailable`, a stream reset maps by its error code).
fn transport(e: CallError) -> Error {
    let code = match e {
        CallError::NotSent(_) | CallError::Closed(_) => tonic::Code::Unavailable,
        CallError::Reset(r) => match r {
            0x7 => tonic::Code::Unavailable,       // REFUSED_STREAM
            0x8 => tonic::Code::Cancelled,         // CANCEL
            0xb => tonic::Code::ResourceExhausted, // ENHANCE_YOUR_CALM
            0xc => tonic::Code::PermissionDenied,  // INADEQUATE_SECURITY
            _ => tonic::Code::Internal,
        },
    };
    Error::GRpcStatus(tonic::Status::new(code, e.to_string()))
}

/// The call's gRPC status: an error unless it is OK.
fn status(code: i32, message: Option<&str>) -> Result<(), Error> {
    if code == 0 {
        return Ok(());
    }
    Err(Error::GRpcStatus(tonic::Status::new(
        tonic::Code::from_i32(code),
        message.map(percent_decode).unwrap_or_default(),
    )))
}

/// gRPC percent-encodes `grpc-message`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            // On bytes: the two after `%` may be part of a multibyte character.
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).ok();
            if let Some(v) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Wire {
    /// Whether the connection is gone (a member died, the server closed it): its calls can only
    /// fail from now on.
    pub fn is_closed(&self) -> bool {
        self.channel.is_closed()
    }

    /// Dials `url` (`http://host:port`) and completes the HTTP/2 handshake; the connection is driven
    /// by a task on the current runtime until every clone is dropped.
    pub async fn connect(url: &str, timeout: Duration) -> Result<Wire, Error> {
        let host = url
            .strip_prefix("http://")
            .ok_or_else(|| {
                io(
                    std::io::ErrorKind::InvalidInput,
                    format!("{url}: not http://"),
                )
            })?
            .trim_end_matches('/');
        let tcp =
            tokio::time::timeout(Duration::from_secs(5), tokio::net::TcpStream::connect(host))
                .await
                .map_err(|_| {
                    io(
                        std::io::ErrorKind::TimedOut,
                        format!("dialling {host} timed out"),
                    )
                })?
                .map_err(Error::IoError)?;
        tcp.set_nodelay(true).map_err(Error::IoError)?;
        let channel = Channel::start(tcp).await.map_err(Error::IoError)?;
        let headers = [
            "/etcdserverpb.KV/Put",
            "/etcdserverpb.KV/Range",
            "/etcdserverpb.KV/DeleteRange",
        ]
        .map(|path| grpc_request_headers(host, path));
        Ok(Wire {
            channel,
            headers: std::sync::Arc::new(headers),
            timeout,
        })
    }

    /// `KV/Put` of `key` = `value`.
    pub async fn put(&self, key: &[u8], value: &[u8]) -> Result<Answer, Error> {
        let mut buf = frame(bytes_len(1, key) + bytes_len(2, value));
        bytes_field(1, key, &mut buf);
        bytes_field(2, value, &mut buf);
        let r: Reply = self.call(PUT, buf).await?;
        Ok(Answer {
            revision: r.header.map(|h| h.revision),
            deleted: 0,
        })
    }

    /// `KV/Range` from `key`.
    pub async fn range(&self, key: &[u8], args: &RangeArgs<'_>) -> Result<Answer, Error> {
        let mut buf = frame(bytes_len(1, key) + bytes_len(2, args.end) + 24);
        bytes_field(1, key, &mut buf);
        bytes_field(2, args.end, &mut buf);
        varint_field(3, args.limit as u64, &mut buf);
        varint_field(7, u64::from(args.serializable), &mut buf);
        let r: Reply = self.call(RANGE, buf).await?;
        Ok(Answer {
            revision: r.header.map(|h| h.revision),
            deleted: 0,
        })
    }

    /// `KV/DeleteRange` of one key.
    pub async fn delete(&self, key: &[u8]) -> Result<Answer, Error> {
        let mut buf = frame(bytes_len(1, key));
        bytes_field(1, key, &mut buf);
        let r: DeleteReply = self.call(DELETE, buf).await?;
        Ok(Answer {
            revision: r.header.map(|h| h.revision),
            deleted: r.deleted,
        })
    }

    async fn call<R: Message + Default>(
        &self,
        method: usize,
        mut buf: BytesMut,
    ) -> Result<R, Error> {
        let len = (buf.len() - 5) as u32;
        buf[1..5].copy_from_slice(&len.to_be_bytes());
        let call = self.channel.unary(&self.headers[method], &buf);
        let reply = match tokio::time::timeout(self.timeout, call).await {
            Ok(r) => r.map_err(transport)?,
            Err(_) => {
                return Err(Error::GRpcStatus(tonic::Status::deadline_exceeded(
                    "request timed out",
                )))
            }
        };
        if reply.status != Some(200) {
            return Err(io(
                std::io::ErrorKind::InvalidData,
                format!("HTTP status {:?}", reply.status),
            ));
        }
        let Some(code) = reply.grpc_status else {
            return Err(io(
                std::io::ErrorKind::InvalidData,
                "a gRPC reply without grpc-status",
            ));
        };
        status(code, reply.grpc_message.as_deref())?;
        let data = &reply.data;
        if data.len() < 5 || data[0] != 0 {
            return Err(io(
                std::io::ErrorKind::InvalidData,
                "a gRPC reply without an uncompressed message",
            ));
        }
        R::decode(&data[5..]).map_err(|e| io(std::io::ErrorKind::InvalidData, e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grpc_messages_are_percent_decoded() {
        assert_eq!(
            percent_decode("etcdserver: mvcc%3A required revision"),
            "etcdserver: mvcc: required revision"
        );
        assert_eq!(percent_decode("100%"), "100%");
        // A `%` before a multibyte character is kept as it is, not sliced through.
        assert_eq!(percent_decode("%é!"), "%é!");
        assert_eq!(percent_decode("a%4é"), "a%4é");
        assert_eq!(percent_decode("é%41"), "éA");
    }

    #[test]
    fn a_put_is_encoded_as_prost_would() {
        #[derive(Clone, PartialEq, Message)]
        struct PutRequest {
            #[prost(bytes = "vec", tag = "1")]
            key: Vec<u8>,
            #[prost(bytes = "vec", tag = "2")]
            value: Vec<u8>,
        }
        let mut buf = frame(0);
        bytes_field(1, b"k1", &mut buf);
        bytes_field(2, &[7u8; 300], &mut buf);
        let expected = PutRequest {
            key: b"k1".to_vec(),
            value: vec![7; 300],
        }
        .encode_to_vec();
        assert_eq!(&buf[5..], &expected[..]);
        assert_eq!(
            bytes_len(1, b"k1") + bytes_len(2, &[7u8; 300]),
            expected.len()
        );
    }
}
