//! Request handlers, one module per Kafka API. `dispatch` routes a decoded request to its
//! handler and encodes the response; an API we decode but do not advertise closes the
//! connection, as Kafka does for requests it cannot serve.

pub mod admin;
pub mod api_versions;
pub mod fetch;
pub mod fetch_legacy;
pub mod group_admin;
pub mod groups;
pub mod metadata;
pub mod offsets;
pub mod produce;
pub mod produce_legacy;

use std::rc::Rc;

use bytes::Bytes;
use kafka_protocol::messages::ApiKey;
use kafka_protocol::protocol::Encodable;
use sluice_net::{Request, RequestBody, encode_response};
use tracing::{debug, error};

use crate::shard::Shard;

/// Per-connection state shared by the requests of one connection.
pub struct ConnState {
    pub id: u64,
    /// The client's address as Kafka shows it in DescribeGroups (`/127.0.0.1`).
    pub client_host: String,
    pub fetch_sessions: std::cell::RefCell<fetch::FetchSessions>,
    /// Held while a Produce enqueues its appends, so pipelined Produce requests reach
    /// the owning shards in request order.
    pub produce_gate: glommio::sync::Semaphore,
}

/// What a handler produced for one request.
pub enum Outcome {
    /// An encoded response frame, size prefix included.
    Respond(Bytes),
    /// One response frame as chunks written back to back (Fetch: record batches are
    /// their own chunks, never copied into the frame).
    RespondChunks(Vec<Bytes>),
    /// No response is owed (Produce with acks=0).
    Silent,
    /// The request cannot be answered; close the connection after earlier responses.
    Close,
}

/// Encodes `body` as the response to a request.
pub fn respond<R: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &R,
) -> Outcome {
    match encode_response(correlation_id, api_key, api_version, body) {
        Ok(frame) => Outcome::Respond(frame),
        Err(e) => {
            error!(error = %e, "response not encodable; closing connection");
            Outcome::Close
        }
    }
}

/// Encodes a response whose large `shared` fields (record batches) are written as their
/// own chunks instead of being copied into the frame.
pub fn respond_vectored<R: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    api_version: i16,
    body: &R,
    shared: &[bytes::Bytes],
) -> Outcome {
    match sluice_net::encode_response_vectored(correlation_id, api_key, api_version, body, shared) {
        Ok(chunks) => Outcome::RespondChunks(chunks),
        Err(e) => {
            error!(error = %e, "response not encodable; closing connection");
            Outcome::Close
        }
    }
}

pub async fn dispatch(shard: Rc<Shard>, req: Request, conn: Rc<ConnState>) -> Outcome {
    let cid = req.header.correlation_id;
    let v = req.api_version;
    let key = req.api_key;
    if !api_versions::advertised(key, v) {
        debug!(
            ?key,
            v,
            conn = conn.id,
            "request for an api we do not serve; closing"
        );
        return Outcome::Close;
    }
    match req.body {
        RequestBody::ApiVersions(_) => respond(cid, key, v, &api_versions::response()),
        RequestBody::Metadata(r) => {
            let resp = metadata::handle(&shard, r, v).await;
            respond(cid, key, v, &resp)
        }
        RequestBody::DescribeCluster(r) => {
            respond(cid, key, v, &metadata::describe_cluster(&shard, &r))
        }
        RequestBody::Produce(r) if v < 3 => {
            match produce_legacy::handle(&shard, &conn, r, v).await {
                Some(resp) => respond(cid, key, v, &resp),
                None => Outcome::Silent,
            }
        }
        RequestBody::Produce(r) => match produce::handle(&shard, &conn, r, v).await {
            Some(resp) => respond(cid, key, v, &resp),
            None => Outcome::Silent,
        },
        RequestBody::Fetch(r) if v < 4 => {
            let resp = fetch_legacy::handle(&shard, &conn.fetch_sessions, r, v).await;
            respond(cid, key, v, &resp)
        }
        RequestBody::Fetch(r) => {
            let resp = fetch::handle(&shard, &conn.fetch_sessions, r, v).await;
            let shared: Vec<bytes::Bytes> = resp
                .responses
                .iter()
                .flat_map(|t| t.partitions.iter())
                .filter_map(|p| p.records.clone())
                .collect();
            respond_vectored(cid, key, v, &resp, &shared)
        }
        RequestBody::ListOffsets(r) => {
            respond(cid, key, v, &offsets::list_offsets(&shard, r, v).await)
        }
        RequestBody::OffsetForLeaderEpoch(r) => respond(
            cid,
            key,
            v,
            &offsets::offset_for_leader_epoch(&shard, r).await,
        ),
        body @ (RequestBody::CreateTopics(_)
        | RequestBody::DeleteTopics(_)
        | RequestBody::CreatePartitions(_)
        | RequestBody::DescribeConfigs(_)
        | RequestBody::AlterConfigs(_)
        | RequestBody::IncrementalAlterConfigs(_)
        | RequestBody::DeleteRecords(_)
        | RequestBody::InitProducerId(_)) => admin_request(&shard, body, cid, key, v).await,
        body => {
            let client_id = req.header.client_id.as_deref().unwrap_or("");
            group_request(&shard, &conn, client_id, body, cid, key, v).await
        }
    }
}

/// Topic administration and producer ids.
async fn admin_request(
    shard: &Rc<Shard>,
    body: RequestBody,
    cid: i32,
    key: ApiKey,
    v: i16,
) -> Outcome {
    match body {
        RequestBody::CreateTopics(r) => {
            respond(cid, key, v, &admin::create_topics(shard, r, v).await)
        }
        RequestBody::DeleteTopics(r) => {
            respond(cid, key, v, &admin::delete_topics(shard, r, v).await)
        }
        RequestBody::CreatePartitions(r) => {
            respond(cid, key, v, &admin::create_partitions(shard, r).await)
        }
        RequestBody::DescribeConfigs(r) => respond(cid, key, v, &admin::describe_configs(shard, r)),
        RequestBody::AlterConfigs(r) => respond(cid, key, v, &admin::alter_configs(shard, r).await),
        RequestBody::IncrementalAlterConfigs(r) => respond(
            cid,
            key,
            v,
            &admin::incremental_alter_configs(shard, r).await,
        ),
        RequestBody::DeleteRecords(r) => {
            respond(cid, key, v, &admin::delete_records(shard, r).await)
        }
        RequestBody::InitProducerId(r) => {
            respond(cid, key, v, &admin::init_producer_id(shard, r).await)
        }
        _ => Outcome::Close,
    }
}

/// Consumer groups and their offsets; anything else we decode but do not serve closes.
async fn group_request(
    shard: &Rc<Shard>,
    conn: &ConnState,
    client_id: &str,
    body: RequestBody,
    cid: i32,
    key: ApiKey,
    v: i16,
) -> Outcome {
    match body {
        RequestBody::FindCoordinator(r) => {
            respond(cid, key, v, &groups::find_coordinator(shard, r, v))
        }
        RequestBody::JoinGroup(r) => respond(
            cid,
            key,
            v,
            &groups::join_group(shard, client_id, &conn.client_host, r, v).await,
        ),
        RequestBody::SyncGroup(r) => respond(cid, key, v, &groups::sync_group(shard, r).await),
        RequestBody::Heartbeat(r) => respond(cid, key, v, &groups::heartbeat(shard, r).await),
        RequestBody::LeaveGroup(r) => respond(cid, key, v, &groups::leave_group(shard, r, v).await),
        RequestBody::OffsetCommit(r) => {
            respond(cid, key, v, &groups::offset_commit(shard, r).await)
        }
        RequestBody::OffsetFetch(r) if v >= 8 => respond(
            cid,
            key,
            v,
            &group_admin::offset_fetch_groups(shard, r).await,
        ),
        RequestBody::OffsetFetch(r) => respond(cid, key, v, &groups::offset_fetch(shard, r).await),
        RequestBody::DescribeGroups(r) => respond(
            cid,
            key,
            v,
            &group_admin::describe_groups(shard, r, v).await,
        ),
        RequestBody::ListGroups(r) => {
            respond(cid, key, v, &group_admin::list_groups(shard, r).await)
        }
        RequestBody::DeleteGroups(r) => {
            respond(cid, key, v, &group_admin::delete_groups(shard, r).await)
        }
        RequestBody::OffsetDelete(r) => {
            respond(cid, key, v, &group_admin::offset_delete(shard, r).await)
        }
        _ => Outcome::Close,
    }
}
