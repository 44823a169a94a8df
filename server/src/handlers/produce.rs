//! Produce: splits the request per owning shard (one `ShardRequest::Produce` per
//! partition, all in flight at once) and joins the replies in request order. The
//! records of each partition travel as the request's own `Bytes`: no copy on the way to
//! the engine. acks=0 sends no response; acks=1 answers after the append; acks=all after
//! the engine's group commit made the batch durable. Below v7 a zstd batch is refused
//! with UNSUPPORTED_COMPRESSION_TYPE, as Kafka does.

use std::rc::Rc;

use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_request::PartitionProduceData;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::batch::{BatchHeader, Codec, MAGIC_V2};
use sluice_engine::record::RecordRejection;

use super::ConnState;
use crate::kafka_errors::{call_error, partition_error};
use crate::mesh::scatter::{Item, Scatter};
use crate::mesh::{Acks, ProducePartitionResult, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::{TopicMeta, TopicPartition, is_internal, valid_topic_name};

/// One partition's answer, its Kafka error code chosen here.
struct Answer {
    error: Option<ResponseError>,
    error_message: Option<String>,
    base_offset: i64,
    log_append_time_ms: i64,
    log_start_offset: i64,
    record_errors: Vec<RecordRejection>,
}

fn failed(error: ResponseError) -> Answer {
    Answer {
        error: Some(error),
        error_message: None,
        base_offset: -1,
        log_append_time_ms: -1,
        log_start_offset: -1,
        record_errors: Vec::new(),
    }
}

impl From<ProducePartitionResult> for Answer {
    fn from(r: ProducePartitionResult) -> Answer {
        Answer {
            error: r.error.as_ref().map(partition_error),
            error_message: r.error.map(|e| e.to_string()),
            base_offset: r.base_offset.0,
            log_append_time_ms: r.log_append_time_ms,
            log_start_offset: r.log_start_offset.0,
            record_errors: r.record_errors,
        }
    }
}

/// Whether the first batch of a partition's records is a RecordBatch v2 compressed with
/// zstd; Kafka's `ProduceRequest.validateRecords` looks at that one batch.
pub(super) fn first_batch_is_zstd(records: &[u8]) -> bool {
    BatchHeader::new(records).is_ok_and(|h| h.magic() == MAGIC_V2 && h.codec() == Codec::Zstd)
}

/// Why a partition of a Produce is answered without an append, if it is.
fn refusal(
    meta: Option<&TopicMeta>,
    p: &PartitionProduceData,
    acks: Option<Acks>,
    transactional: bool,
    by_id: bool,
    version: i16,
) -> Option<ResponseError> {
    if acks.is_none() {
        Some(ResponseError::InvalidRequiredAcks)
    } else if transactional {
        Some(ResponseError::TransactionalIdAuthorizationFailed)
    } else if meta.is_none() {
        Some(if by_id {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        })
    } else if meta.is_some_and(|m| is_internal(&m.name)) {
        // Kafka: only the broker itself appends to internal topics.
        Some(ResponseError::InvalidTopicException)
    } else if meta.and_then(|m| m.owner(p.index)).is_none() {
        Some(ResponseError::UnknownTopicOrPartition)
    } else if p.records.as_ref().is_none_or(|r| r.is_empty()) {
        Some(ResponseError::CorruptMessage)
    } else if version < 7 && p.records.as_ref().is_some_and(|r| first_batch_is_zstd(r)) {
        // Kafka (KIP-110): zstd batches need Produce v7, checked before the append.
        Some(ResponseError::UnsupportedCompressionType)
    } else {
        None
    }
}

/// Creates the unknown topics a Produce names (auto.create.topics.enable).
async fn auto_create(shard: &Rc<Shard>, req: &ProduceRequest) {
    let table = shard.table();
    let mut missing: Vec<String> = req
        .topic_data
        .iter()
        .map(|t| t.name.0.to_string())
        .filter(|n| valid_topic_name(n) && table.get(n).is_none())
        .collect();
    missing.sort();
    missing.dedup();
    super::metadata::auto_create(shard, missing).await;
}

/// Handles a Produce; `None` when acks=0 (no response is sent).
pub async fn handle(
    shard: &Rc<Shard>,
    conn: &ConnState,
    req: ProduceRequest,
    version: i16,
) -> Option<ProduceResponse> {
    let acks = match req.acks {
        0 => Some(Acks::None),
        1 => Some(Acks::Leader),
        -1 => Some(Acks::All),
        _ => None,
    };
    let transactional = req
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.0.is_empty());
    let by_id = version >= 13;

    if shard.args.auto_create_topics_enable && !by_id {
        auto_create(shard, &req).await;
    }
    let table = shard.table();

    // Enqueue every partition's append, in request order, before awaiting any reply.
    // The connection's produce gate keeps pipelined Produce requests in request order.
    let gate = conn.produce_gate.acquire_permit(1).await;
    let mut items = Vec::new();
    for t in &req.topic_data {
        let meta = if by_id {
            table.get_by_id(&t.topic_id)
        } else {
            table.get(&t.name.0)
        };
        for p in &t.partition_data {
            let refused = refusal(meta.map(|m| &**m), p, acks, transactional, by_id, version);
            items.push(match (refused, meta) {
                (None, Some(meta)) => {
                    let owner = meta.owner(p.index).expect("checked by refusal");
                    let tp = TopicPartition {
                        topic: meta.name.clone(),
                        partition: p.index,
                    };
                    let records = p.records.clone().expect("checked by refusal");
                    Item::To(owner, (tp, records))
                }
                (error, _) => {
                    Item::Answered(failed(error.unwrap_or(ResponseError::UnknownServerError)))
                }
            });
        }
    }
    let acks_sent = acks.unwrap_or(Acks::None);
    let scatter = Scatter::per_item(shard, items, |(tp, records), reply| ShardRequest::Produce {
        tp,
        records,
        acks: acks_sent,
        reply,
    })
    .await;
    drop(gate);
    let results = scatter
        .gather(Answer::from, |e| failed(call_error(e)))
        .await;
    if acks == Some(Acks::None) {
        return None;
    }
    Some(response(&req, results))
}

/// The response, one result per partition in request order.
fn response(req: &ProduceRequest, results: Vec<Answer>) -> ProduceResponse {
    let mut results = results.into_iter();
    let responses = req
        .topic_data
        .iter()
        .map(|t| {
            let partition_responses = t
                .partition_data
                .iter()
                .map(|p| {
                    let r = results.next().expect("one result per partition");
                    PartitionProduceResponse::default()
                        .with_index(p.index)
                        .with_error_code(r.error.map_or(0, |e| e.code()))
                        .with_base_offset(r.base_offset)
                        .with_log_append_time_ms(r.log_append_time_ms)
                        .with_log_start_offset(r.log_start_offset)
                        .with_error_message(r.error_message.map(StrBytes::from_string))
                        .with_record_errors(
                            r.record_errors
                                .into_iter()
                                .map(|e| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(e.batch_index)
                                        .with_batch_index_error_message(Some(
                                            StrBytes::from_string(e.message),
                                        ))
                                })
                                .collect(),
                        )
                })
                .collect();
            TopicProduceResponse::default()
                .with_name(t.name.clone())
                .with_topic_id(t.topic_id)
                .with_partition_responses(partition_responses)
        })
        .collect();
    ProduceResponse::default().with_responses(responses)
}
