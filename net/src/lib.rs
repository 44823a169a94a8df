//! sluice-net owns the Kafka wire protocol: frames, request and response headers,
//! bounded request decoders that produce `kafka-protocol`'s structs, and a small client.

pub mod client;
