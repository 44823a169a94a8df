//! ListOffsets (earliest -2, latest -1, max timestamp -3, or by timestamp) and
//! OffsetForLeaderEpoch: each partition is asked of its owning shard, all at once, and
//! the answers are put back in request order.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{
    ListOffsetsRequest, ListOffsetsResponse, OffsetForLeaderEpochRequest,
    OffsetForLeaderEpochResponse,
};

use sluice_engine::LeaderEpoch;

use crate::kafka_errors::{call_error, partition_error};
use crate::mesh::scatter::{Item, Scatter};
use crate::mesh::{PartitionError, Reply, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::TopicPartition;

pub async fn list_offsets(
    shard: &Rc<Shard>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let parts = req.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(move |p| (t.name.0.as_str(), p.partition_index, p.timestamp))
    });
    let results = ask_owners(shard, parts, |tp, timestamp, reply| {
        ShardRequest::ListOffsets {
            tp,
            timestamp,
            reply,
        }
    })
    .await;
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    match results.next().expect("one result per partition") {
                        // Max timestamp (-3) needs v7; older versions get the error Kafka gives.
                        Ok(_) if p.timestamp == -3 && version < 7 => base
                            .with_error_code(ResponseError::UnsupportedVersion.code())
                            .with_timestamp(-1)
                            .with_offset(-1),
                        Ok(found) => base
                            .with_timestamp(found.timestamp_ms)
                            .with_offset(found.offset.0)
                            .with_leader_epoch(if version >= 4 {
                                found.leader_epoch.0
                            } else {
                                -1
                            }),
                        Err(e) => base
                            .with_error_code(e.code())
                            .with_timestamp(-1)
                            .with_offset(-1)
                            .with_leader_epoch(-1),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

pub async fn offset_for_leader_epoch(
    shard: &Rc<Shard>,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let parts = req.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(move |p| (t.topic.0.as_str(), p.partition, LeaderEpoch(p.leader_epoch)))
    });
    let results = ask_owners(shard, parts, |tp, leader_epoch, reply| {
        ShardRequest::EpochEnd {
            tp,
            leader_epoch,
            reply,
        }
    })
    .await;
    let mut results = results.into_iter();
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let base = EpochEndOffset::default().with_partition(p.partition);
                    match results.next().expect("one result per partition") {
                        Ok(end) => base
                            .with_leader_epoch(end.leader_epoch.0)
                            .with_end_offset(end.end_offset.0),
                        Err(e) => base
                            .with_error_code(e.code())
                            .with_leader_epoch(-1)
                            .with_end_offset(-1),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

/// Asks each partition's owning shard, all at once, and returns the answers in the order of
/// `parts`; a partition that no shard owns answers UNKNOWN_TOPIC_OR_PARTITION.
pub(super) async fn ask_owners<'a, A: 'static, T: Send + 'static>(
    shard: &Rc<Shard>,
    parts: impl Iterator<Item = (&'a str, i32, A)>,
    make: fn(TopicPartition, A, Reply<Result<T, PartitionError>>) -> ShardRequest,
) -> Vec<Result<T, ResponseError>> {
    let table = shard.table();
    let items: Vec<_> = parts
        .map(|(topic, partition, arg)| {
            let meta = table.get(topic);
            match meta.and_then(|m| Some((m.owner(partition)?, m.name.clone()))) {
                Some((owner, topic)) => Item::To(owner, (TopicPartition { topic, partition }, arg)),
                None => Item::Answered(Err(ResponseError::UnknownTopicOrPartition)),
            }
        })
        .collect();
    Scatter::per_item(shard, items, |(tp, arg), reply| make(tp, arg, reply))
        .await
        .gather(
            |r| r.map_err(|e| partition_error(&e)),
            |e| Err(call_error(e)),
        )
        .await
}
