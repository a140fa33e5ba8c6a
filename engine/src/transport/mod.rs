//! scen's own client transport: a minimal HTTP/2 client for unary gRPC calls ([`h2c`]) and the
//! lean etcd KV client on it ([`wire`]) that the stress hot path uses on plaintext connections
//! without auth. Fuzzed (the frame decoder) and checked against etcd-client by a differential test.

pub mod h2c;
pub mod wire;
