//! The one place where failures become Kafka error codes: cross-core call failures here,
//! engine append and read errors in `append_error` / `read_error`, group coordinator
//! errors in `group_error`.

use kafka_protocol::ResponseError;
use sluice_engine::{AppendError, FlushError, ReadError};

use crate::group::GroupError;
use crate::shard::CallError;

/// A cross-core call that got no answer means the owner is going away: retriable.
pub fn call_error(e: &CallError) -> ResponseError {
    match e {
        CallError::Unreachable(_) | CallError::Dropped(_) => ResponseError::NotLeaderOrFollower,
    }
}

/// Engine append failures.
pub fn append_error(e: &AppendError) -> ResponseError {
    match e {
        AppendError::CorruptMessage(_) => ResponseError::CorruptMessage,
        AppendError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::InvalidRecord(_) => ResponseError::InvalidRecord,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::LogFailed(_) => ResponseError::KafkaStorageError,
        AppendError::Closed => ResponseError::NotLeaderOrFollower,
    }
}

/// Engine flush failures (acks=all).
pub fn flush_error(e: &FlushError) -> ResponseError {
    match e {
        FlushError::LogFailed(_) => ResponseError::KafkaStorageError,
        FlushError::Closed => ResponseError::NotLeaderOrFollower,
    }
}

/// Engine read failures.
pub fn read_error(e: &ReadError) -> ResponseError {
    match e {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ReadError::Corrupt { .. } | ReadError::Io(_) => ResponseError::KafkaStorageError,
        ReadError::Closed => ResponseError::NotLeaderOrFollower,
    }
}

/// A failed append to `__consumer_offsets`, as Kafka's group coordinator reports it:
/// a failed or closed log means this broker no longer coordinates the group, a batch
/// too large is INVALID_COMMIT_OFFSET_SIZE.
pub fn group_append_error(e: &AppendError) -> GroupError {
    match e {
        AppendError::LogFailed(_) | AppendError::Closed => GroupError::NotCoordinator,
        AppendError::MessageTooLarge { .. } => GroupError::InvalidCommitOffsetSize,
        _ => GroupError::UnknownServerError,
    }
}

/// A failed wait for `__consumer_offsets` durability.
pub fn group_flush_error(e: &FlushError) -> GroupError {
    match e {
        FlushError::LogFailed(_) | FlushError::Closed => GroupError::NotCoordinator,
    }
}

/// Group coordinator failures.
pub fn group_error(e: &GroupError) -> ResponseError {
    match e {
        GroupError::InvalidGroupId => ResponseError::InvalidGroupId,
        GroupError::InvalidSessionTimeout(_) => ResponseError::InvalidSessionTimeout,
        GroupError::CoordinatorNotAvailable => ResponseError::CoordinatorNotAvailable,
        GroupError::MemberIdRequired(_) => ResponseError::MemberIdRequired,
        GroupError::UnknownMemberId => ResponseError::UnknownMemberId,
        GroupError::IllegalGeneration => ResponseError::IllegalGeneration,
        GroupError::RebalanceInProgress => ResponseError::RebalanceInProgress,
        GroupError::InconsistentGroupProtocol => ResponseError::InconsistentGroupProtocol,
        GroupError::FencedInstanceId => ResponseError::FencedInstanceId,
        GroupError::GroupIdNotFound => ResponseError::GroupIdNotFound,
        GroupError::NonEmptyGroup => ResponseError::NonEmptyGroup,
        GroupError::GroupMaxSizeReached => ResponseError::GroupMaxSizeReached,
        GroupError::OffsetMetadataTooLarge => ResponseError::OffsetMetadataTooLarge,
        GroupError::GroupSubscribedToTopic => ResponseError::GroupSubscribedToTopic,
        GroupError::CoordinatorLoadInProgress => ResponseError::CoordinatorLoadInProgress,
        GroupError::NotCoordinator => ResponseError::NotCoordinator,
        GroupError::InvalidCommitOffsetSize => ResponseError::InvalidCommitOffsetSize,
        GroupError::UnknownServerError => ResponseError::UnknownServerError,
    }
}
