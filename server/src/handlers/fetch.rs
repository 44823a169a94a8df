//! Fetch: resolves the requested partitions (by name, or by topic id from v13), applies
//! the connection's incremental fetch session (KIP-227), reads every partition from its
//! owning shard (split per owner, joined in request order), and long-polls: while fewer
//! than min_bytes are available and max_wait_ms has not passed, it waits for the high
//! watermark (the durable end) to move on any owner, then reads again. Only batches below
//! the high watermark are served, so nothing a consumer read can vanish in a crash. The response is cut to max_bytes, always keeping the
//! first non-empty partition so a consumer can make progress.

use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use sluice_engine::batch::Codec;
use sluice_engine::{LeaderEpoch, Offset};
use uuid::Uuid;

use crate::config::{COMPRESSION_TYPE, compression_codec};
use crate::kafka_errors::partition_error;
use crate::mesh::scatter::{Item, Scatter};
use crate::mesh::{FetchPart, FetchPartResult, PartitionError, ShardRequest};
use crate::shard::Shard;
use crate::topic_table::{ShardId, TopicPartition, TopicTable};

/// Fetch sessions one connection may hold; beyond this a full fetch gets no session.
const SESSIONS_PER_CONNECTION_MAX: usize = 16;
/// Partitions one session may track.
const SESSION_PARTITIONS_MAX: usize = 100_000;
/// Longest long poll honoured, whatever max_wait_ms asks.
const MAX_WAIT_MS_MAX: i32 = 30_000;

/// One partition a fetch reads, resolved against the topic table.
#[derive(Clone, Debug)]
struct Want {
    topic: Arc<str>,
    topic_id: Uuid,
    partition: i32,
    fetch_offset: i64,
    partition_max_bytes: i32,
    current_leader_epoch: i32,
    owner: ShardId,
    /// What the session last sent for this partition: (high watermark, log start offset).
    last_sent: Option<(Offset, Offset)>,
}

struct Session {
    next_epoch: i32,
    wants: Vec<Want>,
}

/// The incremental fetch sessions of one connection.
#[derive(Default)]
pub struct FetchSessions {
    sessions: HashMap<i32, Session>,
}

/// A partition answered with an error without being read (unknown topic, bad partition).
struct Rejected {
    topic: Option<Arc<str>>,
    topic_id: Uuid,
    partition: i32,
    error: ResponseError,
}

fn next_session_id(sessions: &FetchSessions) -> i32 {
    loop {
        let id = rand::random::<i32>() & i32::MAX;
        if id != 0 && !sessions.sessions.contains_key(&id) {
            return id;
        }
    }
}

/// Reads `parts` once on their owners; with `wait_until`, owners first wait for an append.
async fn read_round(
    shard: &Rc<Shard>,
    parts: &[FetchPart],
    owners: &[ShardId],
    wait_until: Option<Instant>,
) -> Vec<FetchPartResult> {
    let items = owners
        .iter()
        .zip(parts)
        .map(|(o, p)| Item::To(*o, p.clone()));
    Scatter::per_owner(shard, items, |parts, reply| ShardRequest::Fetch {
        parts,
        wait_until,
        reply,
    })
    .await
    .gather(
        |r| r,
        |e| FetchPartResult {
            error: Some(PartitionError::Unreachable(*e)),
            high_watermark: Offset(-1),
            log_start_offset: Offset(-1),
            records: None,
        },
    )
    .await
}

/// Waits until any owner reports its high watermark past what was seen, or the deadline.
async fn wait_any(shard: &Rc<Shard>, parts: &[FetchPart], owners: &[ShardId], deadline: Instant) {
    let items = owners
        .iter()
        .zip(parts)
        .map(|(o, p)| Item::To(*o, p.clone()));
    // Dropped at return: remote waits then end at their deadline or next append.
    let waits: Scatter<_, ()> =
        Scatter::per_owner(shard, items, |parts, reply| ShardRequest::Fetch {
            parts,
            wait_until: Some(deadline),
            reply,
        })
        .await;
    let timeout = glommio::timer::sleep(deadline.saturating_duration_since(Instant::now()));
    futures_lite::future::or(waits.any(), timeout).await;
}

/// What one fetch reads after its session is applied.
struct SessionView {
    wants: Vec<Want>,
    /// 0 when the fetch has no session.
    session_id: i32,
    /// Whether the answer leaves out partitions that did not change.
    incremental: bool,
}

pub async fn handle(
    shard: &Rc<Shard>,
    sessions: &std::cell::RefCell<FetchSessions>,
    req: FetchRequest,
    version: i16,
) -> FetchResponse {
    let table = shard.table();
    let (requested, rejected) = resolve(shard, &table, &req, version);
    let view = match apply_session(sessions, &table, &req, requested, version) {
        Ok(view) => view,
        Err(refused) => return refused,
    };
    let mut results = read_until_ready(shard, &view.wants, &req).await;
    cut_to_max_bytes(&mut results, req.max_bytes);
    build_response(sessions, view, results, &rejected)
}

/// Resolves the requested partitions against the topic table: those to read, and those
/// answered with an error without being read.
fn resolve(
    shard: &Shard,
    table: &TopicTable,
    req: &FetchRequest,
    version: i16,
) -> (Vec<Want>, Vec<Rejected>) {
    let by_id = version >= 13;
    let mut rejected = Vec::new();
    let mut requested = Vec::new();
    for t in &req.topics {
        let meta = if by_id {
            table.get_by_id(&t.topic_id)
        } else {
            table.get(&t.topic.0)
        };
        // Kafka's maybeConvertFetchedData (KIP-110): below v10 a topic whose
        // compression.type is zstd is answered UNSUPPORTED_COMPRESSION_TYPE.
        let zstd_refused = version < 10
            && meta.is_some_and(|m| {
                let codec = m.configs.get(COMPRESSION_TYPE);
                compression_codec(codec.unwrap_or(&shard.args.compression_type))
                    == Some(Some(Codec::Zstd))
            });
        for p in &t.partitions {
            let owner = meta.and_then(|m| m.owner(p.partition));
            match (meta, owner) {
                (Some(m), Some(owner)) if !zstd_refused => requested.push(Want {
                    topic: m.name.clone(),
                    topic_id: m.id,
                    partition: p.partition,
                    fetch_offset: p.fetch_offset,
                    partition_max_bytes: p.partition_max_bytes,
                    current_leader_epoch: p.current_leader_epoch,
                    owner,
                    last_sent: None,
                }),
                _ => rejected.push(Rejected {
                    topic: if by_id {
                        None
                    } else {
                        Some(Arc::from(t.topic.0.as_str()))
                    },
                    topic_id: t.topic_id,
                    partition: p.partition,
                    error: if owner.is_some() {
                        ResponseError::UnsupportedCompressionType
                    } else if meta.is_none() && by_id {
                        ResponseError::UnknownTopicId
                    } else {
                        ResponseError::UnknownTopicOrPartition
                    },
                }),
            }
        }
    }
    (requested, rejected)
}

/// Fetch sessions (v7+): decides what to read and whether the answer is incremental; a
/// fetch naming an unknown session or a wrong epoch is answered at once (`Err`).
fn apply_session(
    sessions: &std::cell::RefCell<FetchSessions>,
    table: &TopicTable,
    req: &FetchRequest,
    requested: Vec<Want>,
    version: i16,
) -> Result<SessionView, FetchResponse> {
    let by_id = version >= 13;
    let mut session_id = 0;
    let mut incremental = false;
    let wants: Vec<Want> = if version < 7 || req.session_epoch == -1 {
        if req.session_id != 0 {
            sessions.borrow_mut().sessions.remove(&req.session_id);
        }
        requested
    } else if req.session_epoch == 0 {
        let mut s = sessions.borrow_mut();
        if req.session_id != 0 {
            s.sessions.remove(&req.session_id);
        }
        if s.sessions.len() < SESSIONS_PER_CONNECTION_MAX
            && requested.len() <= SESSION_PARTITIONS_MAX
        {
            session_id = next_session_id(&s);
            s.sessions.insert(
                session_id,
                Session {
                    next_epoch: 1,
                    wants: requested.clone(),
                },
            );
        }
        requested
    } else {
        let mut s = sessions.borrow_mut();
        let Some(session) = s.sessions.get_mut(&req.session_id) else {
            return Err(FetchResponse::default()
                .with_error_code(ResponseError::FetchSessionIdNotFound.code()));
        };
        if session.next_epoch != req.session_epoch {
            return Err(FetchResponse::default()
                .with_error_code(ResponseError::InvalidFetchSessionEpoch.code())
                .with_session_id(req.session_id));
        }
        for f in &req.forgotten_topics_data {
            let name: Option<Arc<str>> = if by_id {
                table.get_by_id(&f.topic_id).map(|m| m.name.clone())
            } else {
                Some(Arc::from(f.topic.0.as_str()))
            };
            if let Some(name) = name {
                session
                    .wants
                    .retain(|w| !(w.topic == name && f.partitions.contains(&w.partition)));
            }
        }
        for r in requested {
            let len = session.wants.len();
            match session
                .wants
                .iter_mut()
                .find(|w| w.topic == r.topic && w.partition == r.partition)
            {
                Some(w) => {
                    w.fetch_offset = r.fetch_offset;
                    w.partition_max_bytes = r.partition_max_bytes;
                    w.current_leader_epoch = r.current_leader_epoch;
                    w.owner = r.owner;
                }
                None if len < SESSION_PARTITIONS_MAX => session.wants.push(r),
                None => {}
            }
        }
        // Owners and ids may have changed (topic deleted or recreated) since the session began.
        session.wants.retain_mut(|w| match table.get(&w.topic) {
            Some(m) if m.id == w.topic_id => match m.owner(w.partition) {
                Some(o) => {
                    w.owner = o;
                    true
                }
                None => false,
            },
            _ => false,
        });
        session.next_epoch = if session.next_epoch == i32::MAX {
            1
        } else {
            session.next_epoch + 1
        };
        session_id = req.session_id;
        incremental = true;
        session.wants.clone()
    };
    Ok(SessionView {
        wants,
        session_id,
        incremental,
    })
}

/// Reads every partition on its owner and long-polls: while fewer than min_bytes are
/// available and max_wait_ms has not passed, waits for any owner's high watermark to
/// move, then reads again.
async fn read_until_ready(
    shard: &Rc<Shard>,
    wants: &[Want],
    req: &FetchRequest,
) -> Vec<FetchPartResult> {
    let mut parts: Vec<FetchPart> = wants
        .iter()
        .map(|w| FetchPart {
            tp: TopicPartition {
                topic: w.topic.clone(),
                partition: w.partition,
            },
            fetch_offset: Offset(w.fetch_offset),
            partition_max_bytes: w.partition_max_bytes,
            current_leader_epoch: LeaderEpoch(w.current_leader_epoch),
            wait_past_offset: Offset(w.fetch_offset),
        })
        .collect();
    let owners: Vec<ShardId> = wants.iter().map(|w| w.owner).collect();
    let max_wait = Duration::from_millis(req.max_wait_ms.clamp(0, MAX_WAIT_MS_MAX) as u64);
    let deadline = Instant::now() + max_wait;
    let min_bytes = req.min_bytes.max(0) as usize;
    let mut results = read_round(shard, &parts, &owners, None).await;
    loop {
        let total: usize = results.iter().map(|r| r.bytes()).sum();
        let any_error = results.iter().any(|r| r.error.is_some());
        if parts.is_empty() || total >= min_bytes || any_error || Instant::now() >= deadline {
            break;
        }
        for (p, r) in parts.iter_mut().zip(&results) {
            p.wait_past_offset = r.high_watermark.max(p.fetch_offset);
        }
        wait_any(shard, &parts, &owners, deadline).await;
        results = read_round(shard, &parts, &owners, None).await;
    }
    results
}

/// Cuts the answer to max_bytes, keeping at least the first non-empty partition.
fn cut_to_max_bytes(results: &mut [FetchPartResult], max_bytes: i32) {
    let max_bytes = max_bytes.max(0) as usize;
    let mut total = 0usize;
    for r in results.iter_mut() {
        let n = r.bytes();
        if n == 0 {
            continue;
        }
        if total > 0 && total + n > max_bytes {
            r.records = Some(Bytes::new());
        } else {
            total += n;
        }
    }
}

/// Builds the response in request (or session) order, grouping partitions by topic, and
/// records in the session what it sent.
fn build_response(
    sessions: &std::cell::RefCell<FetchSessions>,
    view: SessionView,
    results: Vec<FetchPartResult>,
    rejected: &[Rejected],
) -> FetchResponse {
    let SessionView {
        wants,
        session_id,
        incremental,
    } = view;
    let mut topics: Vec<FetchableTopicResponse> = Vec::new();
    let mut push = |topic: Option<&Arc<str>>, topic_id: Uuid, pd: PartitionData| {
        let name = TopicName(StrBytes::from_string(
            topic.map(|t| t.to_string()).unwrap_or_default(),
        ));
        match topics.last_mut() {
            Some(last) if last.topic == name && last.topic_id == topic_id => {
                last.partitions.push(pd)
            }
            _ => topics.push(
                FetchableTopicResponse::default()
                    .with_topic(name)
                    .with_topic_id(topic_id)
                    .with_partitions(vec![pd]),
            ),
        }
    };
    let mut sent = Vec::with_capacity(wants.len());
    for (w, r) in wants.iter().zip(results) {
        let changed = r.error.is_some()
            || r.bytes() > 0
            || w.last_sent != Some((r.high_watermark, r.log_start_offset));
        sent.push((r.high_watermark, r.log_start_offset));
        if incremental && !changed {
            continue;
        }
        let pd = PartitionData::default()
            .with_partition_index(w.partition)
            .with_error_code(r.error.as_ref().map_or(0, |e| partition_error(e).code()))
            .with_high_watermark(r.high_watermark.0)
            .with_last_stable_offset(r.high_watermark.0)
            .with_log_start_offset(r.log_start_offset.0)
            .with_aborted_transactions(None)
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(r.records.unwrap_or_default()));
        push(Some(&w.topic), w.topic_id, pd);
    }
    for r in rejected {
        let pd = PartitionData::default()
            .with_partition_index(r.partition)
            .with_error_code(r.error.code())
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(BrokerId(-1))
            .with_records(Some(Bytes::new()));
        push(r.topic.as_ref(), r.topic_id, pd);
    }
    if session_id != 0
        && let Some(s) = sessions.borrow_mut().sessions.get_mut(&session_id)
    {
        for w in s.wants.iter_mut() {
            if let Some(pos) = wants
                .iter()
                .position(|x| x.topic == w.topic && x.partition == w.partition)
            {
                w.last_sent = Some(sent[pos]);
            }
        }
    }
    FetchResponse::default()
        .with_session_id(session_id)
        .with_responses(topics)
}
