//! A small async Kafka client on glommio, used by `sluice-perf`, `sluicectl` and tests.
//!
//! It speaks only standard protocol features so that it works against any Kafka-compatible
//! broker: it negotiates versions with ApiVersions (with the v0 fallback), pipelines several
//! requests on one connection (responses come back in request order and are matched by
//! correlation id), and encodes/decodes messages with `kafka-protocol`'s structs.
//!
//! Start reading at [`Connection::connect`]. [`Connection::split`] gives a writer and a reader
//! half for open-loop load generators that send while responses are still outstanding;
//! [`batch`] builds and decodes RecordBatch v2 bytes; [`admin`] wraps the admin APIs;
//! [`group`] is a consumer group member (join, sync with a range assignment, heartbeats,
//! offset commits).
//!
//! Everything here runs on the glommio executor that created the connection; nothing is `Send`.

pub mod admin;
pub mod batch;
mod connection;
pub mod group;
mod versions;

pub use connection::{
    CallError, ConnectError, Connection, ConnectionConfig, ConnectionReader, ConnectionWriter,
    RecvError, ResponseFrame, SendError, Sent,
};
pub use versions::{ApiVersionTable, CLIENT_API_RANGES, VersionRange};
