//! The one place where failures become Kafka error codes: cross-core call failures here,
//! what a partition's owner could not do in `partition_error`, what the controller
//! refused in `topic_error`, engine append and read errors in `append_error` /
//! `read_error`, group coordinator errors in `group_error` and `commit_refused` (a
//! failed store to `__consumer_offsets` reaches them as the `GroupError` Kafka's
//! coordinator reports: `group::store`).

use kafka_protocol::ResponseError;
use sluice_engine::{AppendError, DeleteRecordsError, FlushError, LogIoError, ReadError};

use crate::group::GroupError;
use crate::mesh::group::CommitRefused;
use crate::mesh::{CallError, PartitionError, TopicError};

/// A cross-core call that got no answer means the owner is going away or too busy to
/// take it: retriable, and the client looks up the leader again.
pub fn call_error(e: &CallError) -> ResponseError {
    match e {
        CallError::Unreachable(_) | CallError::Dropped(_) | CallError::Busy(_) => {
            ResponseError::NotLeaderOrFollower
        }
    }
}

/// What a partition's owner could not do, as the client sees it.
pub fn partition_error(e: &PartitionError) -> ResponseError {
    match e {
        PartitionError::NotOwner(_) => ResponseError::NotLeaderOrFollower,
        PartitionError::Offline { .. } => ResponseError::KafkaStorageError,
        PartitionError::NotWholeBatches => ResponseError::CorruptMessage,
        PartitionError::UnknownLeaderEpoch(_) => ResponseError::UnknownLeaderEpoch,
        PartitionError::InvalidTimestamp(_) => ResponseError::InvalidRequest,
        PartitionError::OffsetOutOfRange(_) => ResponseError::OffsetOutOfRange,
        PartitionError::Append(e) => append_error(e),
        PartitionError::Flush(e) => flush_error(e),
        PartitionError::Read(e) => read_error(e),
        PartitionError::DeleteRecords(e) => delete_records_error(e),
        PartitionError::Unreachable(e) => call_error(e),
    }
}

/// What the controller refused or failed for one topic.
pub fn topic_error(e: &TopicError) -> ResponseError {
    match e {
        TopicError::NamedTwice
        | TopicError::InternalNotDeletable
        | TopicError::InternalPartitionCountFixed => ResponseError::InvalidRequest,
        TopicError::InvalidName => ResponseError::InvalidTopicException,
        TopicError::AlreadyExists => ResponseError::TopicAlreadyExists,
        TopicError::PartitionCountOutOfRange
        | TopicError::PartitionCountCannotShrink(_)
        | TopicError::PartitionCountTooLarge => ResponseError::InvalidPartitions,
        TopicError::InvalidConfig(_) => ResponseError::InvalidConfig,
        TopicError::Unknown => ResponseError::UnknownTopicOrPartition,
        TopicError::NotPersisted(_) | TopicError::NotOpened(_) => ResponseError::KafkaStorageError,
    }
}

/// Engine append failures.
pub fn append_error(e: &AppendError) -> ResponseError {
    match e {
        AppendError::CorruptMessage(_) => ResponseError::CorruptMessage,
        AppendError::MessageTooLarge { .. } => ResponseError::MessageTooLarge,
        AppendError::InvalidRecord(_) | AppendError::RecordsRejected(_) => {
            ResponseError::InvalidRecord
        }
        AppendError::CorruptRecords(_) => ResponseError::CorruptMessage,
        AppendError::OutOfOrderSequence { .. } => ResponseError::OutOfOrderSequenceNumber,
        AppendError::InvalidProducerEpoch { .. } => ResponseError::InvalidProducerEpoch,
        AppendError::LogFailed(_) | AppendError::OutOfSpace(_) => ResponseError::KafkaStorageError,
        AppendError::Closed => ResponseError::NotLeaderOrFollower,
    }
}

/// Engine flush failures (acks=all).
pub fn flush_error(e: &FlushError) -> ResponseError {
    match e {
        FlushError::LogFailed(_) | FlushError::OutOfSpace(_) => ResponseError::KafkaStorageError,
        FlushError::Closed => ResponseError::NotLeaderOrFollower,
    }
}

/// Engine read failures. A batch that fails its checks is CORRUPT_MESSAGE for a read
/// starting at it, as Kafka answers (its consumer reports the offset); a failed disk read
/// is KAFKA_STORAGE_ERROR.
pub fn read_error(e: &ReadError) -> ResponseError {
    match e {
        ReadError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        ReadError::Corrupt { .. } | ReadError::CrcMismatch { .. } => ResponseError::CorruptMessage,
        ReadError::Io(_) => ResponseError::KafkaStorageError,
        ReadError::Closed => ResponseError::NotLeaderOrFollower,
    }
}

/// Engine DeleteRecords failures.
pub fn delete_records_error(e: &DeleteRecordsError) -> ResponseError {
    match e {
        DeleteRecordsError::OffsetOutOfRange { .. } => ResponseError::OffsetOutOfRange,
        DeleteRecordsError::Log(LogIoError::Closed) => ResponseError::NotLeaderOrFollower,
        DeleteRecordsError::Log(
            LogIoError::LogFailed(_) | LogIoError::OutOfSpace(_) | LogIoError::Corrupt { .. },
        ) => ResponseError::KafkaStorageError,
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

/// An OffsetCommit the coordinator refused as a whole.
pub fn commit_refused(e: &CommitRefused) -> ResponseError {
    match e {
        CommitRefused::Loading => ResponseError::CoordinatorLoadInProgress,
        CommitRefused::Member(e) => group_error(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_engine::Offset;

    #[test]
    fn storage_errors_map_as_kafka_answers_them() {
        // Proves a corrupt batch is CORRUPT_MESSAGE for the read at it, while a failed
        // disk read, a full disk and a failed log are KAFKA_STORAGE_ERROR.
        let crc = ReadError::CrcMismatch {
            segment: Offset(0),
            position: 7,
            stored: 1,
            computed: 2,
        };
        let corrupt = ReadError::Corrupt {
            segment: Offset(0),
            position: 7,
            reason: "batch length 3".into(),
        };
        assert_eq!(read_error(&crc), ResponseError::CorruptMessage);
        assert_eq!(read_error(&corrupt), ResponseError::CorruptMessage);
        let io = ReadError::Io(std::io::Error::other("EIO"));
        assert_eq!(read_error(&io), ResponseError::KafkaStorageError);
        let full = AppendError::OutOfSpace("write segment".into());
        assert_eq!(append_error(&full), ResponseError::KafkaStorageError);
        let full = FlushError::OutOfSpace("write segment".into());
        assert_eq!(flush_error(&full), ResponseError::KafkaStorageError);
        let failed = FlushError::LogFailed("fdatasync".into());
        assert_eq!(flush_error(&failed), ResponseError::KafkaStorageError);
    }

    #[test]
    fn owner_errors_map_at_the_edge() {
        // Proves the owner side's typed errors reach clients as the codes they got when
        // the owner chose them: a partition elsewhere or unreachable is retriable
        // NOT_LEADER_OR_FOLLOWER, an offline one KAFKA_STORAGE_ERROR, and the
        // controller's refusals keep their Kafka codes.
        use crate::mesh::{CallError, PartitionError, TopicError};
        use crate::topic_table::{ShardId, TopicPartition};
        let tp = TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        let cases = [
            (
                PartitionError::NotOwner(tp.clone()),
                ResponseError::NotLeaderOrFollower,
            ),
            (
                PartitionError::Offline {
                    tp,
                    why: "EIO".into(),
                },
                ResponseError::KafkaStorageError,
            ),
            (
                PartitionError::Unreachable(CallError::Busy(ShardId(1))),
                ResponseError::NotLeaderOrFollower,
            ),
            (
                PartitionError::NotWholeBatches,
                ResponseError::CorruptMessage,
            ),
            (
                PartitionError::InvalidTimestamp(-4),
                ResponseError::InvalidRequest,
            ),
            (
                PartitionError::OffsetOutOfRange(Offset(9)),
                ResponseError::OffsetOutOfRange,
            ),
        ];
        for (e, want) in cases {
            assert_eq!(partition_error(&e), want, "{e:?}");
        }
        let topics = [
            (TopicError::NamedTwice, ResponseError::InvalidRequest),
            (TopicError::AlreadyExists, ResponseError::TopicAlreadyExists),
            (
                TopicError::PartitionCountCannotShrink(3),
                ResponseError::InvalidPartitions,
            ),
            (TopicError::Unknown, ResponseError::UnknownTopicOrPartition),
            (
                TopicError::NotPersisted("ENOSPC".into()),
                ResponseError::KafkaStorageError,
            ),
        ];
        for (e, want) in topics {
            assert_eq!(topic_error(&e), want, "{e:?}");
        }
    }
}
