//! The one place where failures become Kafka error codes: cross-core call failures here,
//! engine append and read errors in `append_error` / `read_error`.

use kafka_protocol::ResponseError;

use crate::shard::CallError;

/// A cross-core call that got no answer means the owner is going away: retriable.
pub fn call_error(e: &CallError) -> ResponseError {
    match e {
        CallError::Unreachable(_) | CallError::Dropped(_) => ResponseError::NotLeaderOrFollower,
    }
}
