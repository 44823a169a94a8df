//! The coordinator's `__consumer_offsets` partitions on its shard: appending its records
//! (`append_records`), replaying a partition at start (`load_partition`), and what goes
//! wrong doing either (`StoreError`, `LoadError`). The shard is reached only through
//! `OffsetsStorage`, so this module knows nothing of the shard beyond it.
//!
//! A failed store is reported to clients as Kafka's group coordinator reports it, which
//! depends on what was stored: `StoreError::offsets_error` for offsets and tombstones,
//! `StoreError::assignment_error` for the leader's assignment.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;

use bytes::Bytes;
use sluice_engine::batch::{BatchError, BatchHeader};
use sluice_engine::record::{KeyValue, Record, build_batch, decode_batch};
use sluice_engine::{AppendError, FlushError, Log, Offset, ReadError};
use tracing::{debug, warn};

use super::placement::coordinator_of;
use super::record::{
    RecordKey, decode_group_metadata_value, decode_key, decode_offset_commit_value,
    encode_group_metadata_value, encode_key,
};
use super::{CommittedOffset, Coordinator, GroupError, GroupWrite};
use crate::stamp::{LEADER_EPOCH, now_ms};
use crate::topic_table::{OFFSETS_TOPIC, TopicPartition, TopicTable};

/// Bytes read per step while replaying a `__consumer_offsets` partition.
const LOAD_READ_BYTES: u32 = 1 << 20;
/// Cap on the decompressed records of one batch read while replaying.
const LOAD_DECOMPRESSED_BYTES_MAX: usize = 64 << 20;

/// What the group host needs from the shard it runs on: the shard implements it, and
/// the host never sees the rest of the shard.
pub trait OffsetsStorage {
    /// The shard's current topic table.
    fn table(&self) -> Arc<TopicTable>;
    /// The open log of `__consumer_offsets` partition `partition`, if this shard has it.
    fn offsets_log(&self, partition: i32) -> Option<Rc<Log>>;
    /// Tells the shard's flusher that an append is waiting for durability.
    fn appended(&self);
}

/// Why records were not stored in `__consumer_offsets`.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{OFFSETS_TOPIC} partition {0} is not open on this shard")]
    NotOpen(i32),
    #[error("append: {0}")]
    Append(#[from] AppendError),
    #[error("flush: {0}")]
    Flush(#[from] FlushError),
}

impl StoreError {
    /// Whether the log is gone or failed (closed, failed write, full disk): the shard can
    /// no longer store the group's records.
    fn log_unavailable(&self) -> bool {
        matches!(
            self,
            StoreError::Append(
                AppendError::LogFailed(_) | AppendError::OutOfSpace(_) | AppendError::Closed
            ) | StoreError::Flush(_)
        )
    }

    /// A failed store of offset commits or tombstones, as Kafka's group coordinator
    /// reports it: a failed, closed or missing log means this broker no longer
    /// coordinates the group, a batch too large is INVALID_COMMIT_OFFSET_SIZE.
    pub fn offsets_error(&self) -> GroupError {
        match self {
            StoreError::NotOpen(_) => GroupError::NotCoordinator,
            e if e.log_unavailable() => GroupError::NotCoordinator,
            StoreError::Append(AppendError::MessageTooLarge { .. }) => {
                GroupError::InvalidCommitOffsetSize
            }
            _ => GroupError::UnknownServerError,
        }
    }

    /// A failed store of the leader's assignment in SyncGroup, as Kafka's
    /// GroupMetadataManager.storeGroup reports it: a missing partition is
    /// COORDINATOR_NOT_AVAILABLE, a failed or closed log NOT_COORDINATOR, anything else
    /// (a batch too large included) UNKNOWN_SERVER_ERROR.
    pub fn assignment_error(&self) -> GroupError {
        match self {
            StoreError::NotOpen(_) => GroupError::CoordinatorNotAvailable,
            e if e.log_unavailable() => GroupError::NotCoordinator,
            _ => GroupError::UnknownServerError,
        }
    }
}

/// Why a `__consumer_offsets` partition could not be replayed.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{OFFSETS_TOPIC} partition {0} is not open on this shard")]
    NotOpen(i32),
    #[error("{tp} at {}: {source}", .at.0)]
    Read {
        tp: TopicPartition,
        at: Offset,
        source: ReadError,
    },
    #[error("{tp}: {source}")]
    Batch {
        tp: TopicPartition,
        source: BatchError,
    },
    #[error("{tp}: batch at {} does not advance past {}", .base.0, .at.0)]
    NoProgress {
        tp: TopicPartition,
        base: Offset,
        at: Offset,
    },
}

/// Wall-clock milliseconds: commit timestamps and offset retention outlive the process.
pub fn wall_ms() -> u64 {
    u64::try_from(now_ms()).unwrap_or(0)
}

/// Partition `partition` of `__consumer_offsets`.
pub fn offsets_tp(partition: i32) -> TopicPartition {
    TopicPartition {
        topic: Arc::from(OFFSETS_TOPIC),
        partition,
    }
}

/// Replays one partition from its log start into the coordinator; the number of records.
pub async fn load_partition(
    storage: &impl OffsetsStorage,
    coordinator: &RefCell<Coordinator>,
    partition: i32,
) -> Result<usize, LoadError> {
    let tp = offsets_tp(partition);
    let log = storage
        .offsets_log(partition)
        .ok_or(LoadError::NotOpen(partition))?;
    let end = log.log_end_offset();
    let mut at = log.log_start_offset();
    let mut records = 0usize;
    let now = wall_ms();
    while at < end {
        let r = log
            .read(at, LOAD_READ_BYTES)
            .await
            .map_err(|source| LoadError::Read {
                tp: tp.clone(),
                at,
                source,
            })?;
        if r.batches.is_empty() {
            break;
        }
        for batch in &r.batches {
            let header = BatchHeader::new(batch).map_err(|source| LoadError::Batch {
                tp: tp.clone(),
                source,
            })?;
            let base = header.base_offset().0;
            let next = Offset(header.last_offset().0 + 1);
            if next <= at {
                return Err(LoadError::NoProgress {
                    tp,
                    base: Offset(base),
                    at,
                });
            }
            at = next;
            if header.is_control() {
                continue;
            }
            match decode_batch(batch, LOAD_DECOMPRESSED_BYTES_MAX) {
                Ok(decoded) => {
                    let mut c = coordinator.borrow_mut();
                    let table = storage.table();
                    for rec in decoded.records {
                        let position = base + i64::from(rec.offset_delta);
                        apply_record(&mut c, rec, position, now, &tp, &table);
                        records += 1;
                    }
                }
                Err(e) => {
                    warn!(partition = %tp, base_offset = base, error = %e, "skipping undecodable batch")
                }
            }
            glommio::yield_if_needed().await;
        }
    }
    // Replayed records must not be written back.
    coordinator.borrow_mut().take_writes();
    Ok(records)
}

/// Applies one replayed record; records Sluice does not know (other key versions, bad
/// bytes) are skipped with a warning. Commits to topics that no longer exist are skipped
/// too: a topic deleted while this partition was loading, or before its tombstones were
/// stored, must not bring its offsets back.
fn apply_record(
    c: &mut Coordinator,
    rec: Record,
    position: i64,
    now_ms: u64,
    tp: &TopicPartition,
    table: &TopicTable,
) {
    let Some(key) = rec.key else {
        warn!(partition = %tp, offset = position, "record without key skipped");
        return;
    };
    let key = match decode_key(&key) {
        Ok(k) => k,
        Err(e) => {
            debug!(partition = %tp, offset = position, error = %e, "record key skipped");
            return;
        }
    };
    match key {
        RecordKey::OffsetCommit {
            group,
            topic,
            partition,
        } => {
            if table.get(&topic).is_none() {
                debug!(partition = %tp, offset = position, topic, "commit of a deleted topic skipped");
                return;
            }
            let value = match rec.value.as_deref().map(decode_offset_commit_value) {
                None => None,
                Some(Ok(v)) => Some(CommittedOffset {
                    offset: Offset(v.offset),
                    leader_epoch: v.leader_epoch,
                    metadata: Some(v.metadata),
                    commit_timestamp_ms: u64::try_from(v.commit_timestamp_ms).unwrap_or(0),
                }),
                Some(Err(e)) => {
                    warn!(partition = %tp, offset = position, error = %e, "offset commit value skipped");
                    return;
                }
            };
            c.load_offset(&group, (topic, partition), value, position);
        }
        RecordKey::GroupMetadata { group } => {
            let value = match rec.value.as_deref().map(decode_group_metadata_value) {
                None => None,
                Some(Ok(v)) => Some(v),
                Some(Err(e)) => {
                    warn!(partition = %tp, offset = position, error = %e, "group metadata value skipped");
                    return;
                }
            };
            c.load_group(&group, value, now_ms);
        }
    }
}

/// One `__consumer_offsets` record: encoded key and value, `None` for a tombstone.
pub type StoredRecord = (Vec<u8>, Option<Vec<u8>>);

/// Appends `records` (key, value or tombstone) as one batch to `__consumer_offsets`
/// partition `partition`; with `durable`, returns only once they are fdatasync'ed.
/// Returns the log offset of the first record.
pub async fn append_records(
    storage: &impl OffsetsStorage,
    partition: i32,
    records: &[StoredRecord],
    durable: bool,
) -> Result<Offset, StoreError> {
    assert!(!records.is_empty());
    let log = storage
        .offsets_log(partition)
        .ok_or(StoreError::NotOpen(partition))?;
    let kv: Vec<KeyValue<'_>> = records
        .iter()
        .map(|(k, v)| (Some(k.as_slice()), v.as_deref()))
        .collect();
    let now = now_ms();
    let batch = build_batch(0, now, 0, &kv);
    let info = log.append(Bytes::from(batch), LEADER_EPOCH, now)?;
    storage.appended();
    if durable {
        log.wait_durable(Offset(info.last_offset.0 + 1)).await?;
    }
    Ok(info.base_offset)
}

/// The records of the coordinator's writes for one `__consumer_offsets` partition.
#[derive(Default)]
pub struct PartitionWrites {
    pub records: Vec<StoredRecord>,
    /// (group id, generation) of each `GroupWrite::Assignment` among the records.
    pub assignments: Vec<(String, i32)>,
}

/// The records of the coordinator's writes, by `__consumer_offsets` partition.
pub fn write_records(
    writes: Vec<GroupWrite>,
    table: &TopicTable,
) -> BTreeMap<i32, PartitionWrites> {
    let mut out: BTreeMap<i32, PartitionWrites> = BTreeMap::new();
    for w in writes {
        match w {
            GroupWrite::Metadata { group_id, value } => {
                let p = coordinator_of(&group_id, table).0;
                let key = encode_key(&RecordKey::GroupMetadata { group: group_id });
                out.entry(p)
                    .or_default()
                    .records
                    .push((key, Some(encode_group_metadata_value(&value))));
            }
            GroupWrite::Assignment {
                group_id,
                generation_id,
                value,
            } => {
                let p = coordinator_of(&group_id, table).0;
                let key = encode_key(&RecordKey::GroupMetadata {
                    group: group_id.clone(),
                });
                let entry = out.entry(p).or_default();
                entry
                    .records
                    .push((key, Some(encode_group_metadata_value(&value))));
                entry.assignments.push((group_id, generation_id));
            }
            GroupWrite::OffsetsRemoved {
                group_id,
                partitions,
            } => {
                let p = coordinator_of(&group_id, table).0;
                let entry = out.entry(p).or_default();
                for (topic, partition) in partitions {
                    let key = encode_key(&RecordKey::OffsetCommit {
                        group: group_id.clone(),
                        topic,
                        partition,
                    });
                    entry.records.push((key, None));
                }
            }
            GroupWrite::GroupRemoved { group_id } => {
                let p = coordinator_of(&group_id, table).0;
                let key = encode_key(&RecordKey::GroupMetadata { group: group_id });
                out.entry(p).or_default().records.push((key, None));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_map_as_kafkas_group_coordinator() {
        // Proves the two store rules: a failed assignment store (storeGroup) and a failed
        // offsets store answer with the errors Kafka's coordinator gives for the code a
        // produce would get (a missing partition is UNKNOWN_TOPIC_OR_PARTITION, a closed
        // log NOT_LEADER_OR_FOLLOWER, a failed one or a full disk KAFKA_STORAGE_ERROR).
        let log_gone = || {
            [
                StoreError::Append(AppendError::Closed),
                StoreError::Append(AppendError::LogFailed("fdatasync".into())),
                StoreError::Append(AppendError::OutOfSpace("write segment".into())),
                StoreError::Flush(FlushError::Closed),
                StoreError::Flush(FlushError::LogFailed("fdatasync".into())),
                StoreError::Flush(FlushError::OutOfSpace("write segment".into())),
            ]
        };
        let too_large = || {
            StoreError::Append(AppendError::MessageTooLarge {
                size: 2 << 20,
                max: 1 << 20,
            })
        };
        let refused = || StoreError::Append(AppendError::InvalidRecord("bad".into()));

        assert_eq!(
            StoreError::NotOpen(3).assignment_error(),
            GroupError::CoordinatorNotAvailable
        );
        for e in log_gone() {
            assert_eq!(e.assignment_error(), GroupError::NotCoordinator, "{e:?}");
        }
        assert_eq!(
            too_large().assignment_error(),
            GroupError::UnknownServerError
        );
        assert_eq!(refused().assignment_error(), GroupError::UnknownServerError);

        assert_eq!(
            StoreError::NotOpen(3).offsets_error(),
            GroupError::NotCoordinator
        );
        for e in log_gone() {
            assert_eq!(e.offsets_error(), GroupError::NotCoordinator, "{e:?}");
        }
        assert_eq!(
            too_large().offsets_error(),
            GroupError::InvalidCommitOffsetSize
        );
        assert_eq!(refused().offsets_error(), GroupError::UnknownServerError);
    }
}
