//! sluice-net owns the Kafka wire protocol: frames, request and response headers,
//! bounded request decoders that produce `kafka-protocol`'s structs, and a small client.
//!
//! Start reading at `request.rs` (`decode_request`), then `frame.rs` (`split_frame`)
//! and `response.rs` (`encode_response`, and `encode_response_vectored` for Fetch
//! responses whose records should not be copied). `reader.rs` is the bounded cursor every
//! decoder reads through; `wire.rs` maps field types to encodings and generates the
//! decoders; `schema.rs` holds one `wire_struct!` table per request struct, which also
//! drives the random values of the property tests (`random.rs`, test builds only).
//! `consumer_protocol.rs` reads the subscription and assignment embedded in classic
//! consumer groups' JoinGroup and SyncGroup bytes.
//! Request structs are never decoded with `kafka-protocol`'s own decoders, which
//! size allocations from untrusted counts.

pub mod client;
pub mod consumer_protocol;
pub mod frame;
#[cfg(any(test, feature = "testing"))]
mod random;
pub mod reader;
pub mod request;
pub mod response;
mod schema;
#[cfg(test)]
mod tests;
pub mod topic_partitions;
mod wire;

pub use frame::{FrameError, REQUEST_BYTES_MAX_DEFAULT, frame_size, split_frame};
pub use reader::{ReadError, Reader};
#[cfg(any(test, feature = "testing"))]
pub use request::random_request_body;
pub use request::{
    DECODABLE_API_KEYS, DecodeError, Request, RequestBody, decodable_versions, decode_request,
};
pub use response::{
    EncodeError, LegacyVersions, SHARED_BYTES_MIN, encode_response, encode_response_vectored,
    legacy_versions,
};

/// The `kafka-protocol` crate whose message structs this crate decodes into
/// and encodes from; re-exported so callers use the same version.
pub use kafka_protocol;
