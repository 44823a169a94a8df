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

use crate::kafka_errors::call_error;
use crate::shard::Shard;
use crate::shard_request::{EpochEndResult, ListOffsetResult, ShardRequest};
use crate::topic_table::TopicPartition;

pub async fn list_offsets(
    shard: &Rc<Shard>,
    req: ListOffsetsRequest,
    version: i16,
) -> ListOffsetsResponse {
    let table = shard.table();
    let mut pending = Vec::new();
    for t in &req.topics {
        let meta = table.get(&t.name.0).cloned();
        for p in &t.partitions {
            let owner = meta.as_ref().and_then(|m| m.owner(p.partition_index));
            let task = match (owner, &meta) {
                (Some(owner), Some(meta)) => {
                    let tp = TopicPartition {
                        topic: meta.name.clone(),
                        partition: p.partition_index,
                    };
                    let timestamp = p.timestamp;
                    let shard = shard.clone();
                    glommio::spawn_local(async move {
                        shard
                            .ask(owner, |reply| ShardRequest::ListOffsets {
                                tp,
                                timestamp,
                                reply,
                            })
                            .await
                            .unwrap_or_else(|e| Err(call_error(&e)))
                    })
                }
                _ => glommio::spawn_local(async {
                    ListOffsetResult::Err(ResponseError::UnknownTopicOrPartition)
                }),
            };
            pending.push(task);
        }
    }
    let mut results = Vec::with_capacity(pending.len());
    for task in pending {
        results.push(task.await);
    }
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
                        Ok((ts, off, epoch)) => base
                            .with_timestamp(ts)
                            .with_offset(off)
                            .with_leader_epoch(if version >= 4 { epoch } else { -1 }),
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
    let table = shard.table();
    let mut pending = Vec::new();
    for t in &req.topics {
        let meta = table.get(&t.topic.0).cloned();
        for p in &t.partitions {
            let owner = meta.as_ref().and_then(|m| m.owner(p.partition));
            let task = match (owner, &meta) {
                (Some(owner), Some(meta)) => {
                    let tp = TopicPartition {
                        topic: meta.name.clone(),
                        partition: p.partition,
                    };
                    let leader_epoch = p.leader_epoch;
                    let shard = shard.clone();
                    glommio::spawn_local(async move {
                        shard
                            .ask(owner, |reply| ShardRequest::EpochEnd {
                                tp,
                                leader_epoch,
                                reply,
                            })
                            .await
                            .unwrap_or_else(|e| Err(call_error(&e)))
                    })
                }
                _ => glommio::spawn_local(async {
                    EpochEndResult::Err(ResponseError::UnknownTopicOrPartition)
                }),
            };
            pending.push(task);
        }
    }
    let mut results = Vec::with_capacity(pending.len());
    for task in pending {
        results.push(task.await);
    }
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
                        Ok((epoch, end)) => base.with_leader_epoch(epoch).with_end_offset(end),
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
