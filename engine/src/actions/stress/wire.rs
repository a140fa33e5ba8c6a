//! A lean unary gRPC client for etcd's KV service (put, range, delete) straight on one HTTP/2
//! connection: the stress hot path. Each call writes HEADERS and one DATA frame that ends the
//! stream, and decodes only the response fields the worker reads; there is no tower buffer, no
//! per-call body stream and no per-call allocation of the key or value. Used for plaintext
//! connections without auth; TLS and `--user` go through etcd-client.

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use etcd_client::Error;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, WireType};
use prost::Message;

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
    send: h2::client::SendRequest<Bytes>,
    /// The three methods' URIs, parsed once (cloning one is a reference count).
    uris: [http::Uri; 3],
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

fn transport(e: h2::Error) -> Error {
    if let Some(reason) = e.reason() {
        return io(
            std::io::ErrorKind::ConnectionReset,
            format!("HTTP/2: {reason:?}"),
        );
    }
    io(std::io::ErrorKind::BrokenPipe, e.to_string())
}

/// The gRPC status in `headers`, if any; an error unless it is OK.
fn status(headers: &http::HeaderMap) -> Option<Result<(), Error>> {
    let code = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<i32>()
        .ok()?;
    if code == 0 {
        return Some(Ok(()));
    }
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some(Err(Error::GRpcStatus(tonic::Status::new(
        tonic::Code::from_i32(code),
        message,
    ))))
}

/// gRPC percent-encodes `grpc-message`.
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
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
        let (send, conn) = h2::client::Builder::new()
            .initial_window_size(4 << 20)
            .initial_connection_window_size(64 << 20)
            .max_frame_size(1 << 20)
            .handshake::<_, Bytes>(tcp)
            .await
            .map_err(transport)?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let uri = |path: &str| {
            format!("http://{host}{path}")
                .parse::<http::Uri>()
                .map_err(|e| io(std::io::ErrorKind::InvalidInput, e.to_string()))
        };
        Ok(Wire {
            send,
            uris: [
                uri("/etcdserverpb.KV/Put")?,
                uri("/etcdserverpb.KV/Range")?,
                uri("/etcdserverpb.KV/DeleteRange")?,
            ],
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
        match tokio::time::timeout(self.timeout, self.exchange(method, buf.freeze())).await {
            Ok(r) => r,
            Err(_) => Err(Error::GRpcStatus(tonic::Status::deadline_exceeded(
                "request timed out",
            ))),
        }
    }

    async fn exchange<R: Message + Default>(&self, method: usize, body: Bytes) -> Result<R, Error> {
        let mut send = self.send.clone().ready().await.map_err(transport)?;
        let req = http::Request::post(self.uris[method].clone())
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(())
            .map_err(|e| io(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let (response, mut stream) = send.send_request(req, false).map_err(transport)?;
        stream.send_data(body, true).map_err(transport)?;
        let response = response.await.map_err(transport)?;
        if response.status() != http::StatusCode::OK {
            return Err(io(
                std::io::ErrorKind::InvalidData,
                format!("HTTP status {}", response.status()),
            ));
        }
        // A trailers-only answer carries the status in the headers.
        if let Some(s) = status(response.headers()) {
            s?;
        }
        let mut body = response.into_body();
        let mut data = BytesMut::new();
        while let Some(chunk) = body.data().await {
            let chunk = chunk.map_err(transport)?;
            let _ = body.flow_control().release_capacity(chunk.len());
            data.extend_from_slice(&chunk);
        }
        if let Some(trailers) = body.trailers().await.map_err(transport)? {
            if let Some(s) = status(&trailers) {
                s?;
            }
        }
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
