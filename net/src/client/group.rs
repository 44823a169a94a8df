//! Consumer group membership over Kafka's classic group protocol: FindCoordinator, JoinGroup
//! (with KIP-394's member-id-required round trip), SyncGroup in which the leader computes a
//! range assignment over the consumer protocol, Heartbeat on a timer that flags a needed
//! rejoin, OffsetCommit and OffsetFetch, and LeaveGroup.
//!
//! A [`GroupMember`] owns one connection to the coordinator. The member's own calls and its
//! heartbeat task share it through an async mutex, so requests never interleave on it; a
//! rejoin holds the mutex from JoinGroup to SyncGroup, so no heartbeat of a stale generation
//! is sent meanwhile. The heartbeat task never rejoins by itself: it raises a flag (and wakes
//! [`GroupMember::rebalance_signalled`]) and the owner decides when to call
//! [`GroupMember::join`], as a Kafka consumer does on its next poll.
//!
//! Subscriptions and assignments are `kafka-protocol`'s consumer-protocol structs, encoded
//! with its encoder; their bytes come from other members, so they are decoded with the
//! bounded reader of [`crate::consumer_protocol`].

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use glommio::timer::Timer;
use kafka_protocol::messages::consumer_protocol_assignment::{
    ConsumerProtocolAssignment, TopicPartition as AssignedTopic,
};
use kafka_protocol::messages::consumer_protocol_subscription::ConsumerProtocolSubscription;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, GroupId, HeartbeatRequest,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, OffsetCommitRequest,
    OffsetFetchRequest, SyncGroupRequest, SyncGroupResponse, TopicName,
};
use kafka_protocol::protocol::{Encodable, StrBytes};

use super::admin::error_name;
use super::connection::{CallError, ConnectError, Connection, ConnectionConfig, SendError};
use crate::consumer_protocol;
use crate::topic_partitions::by_topic;

pub use crate::consumer_protocol::CONSUMER_PROTOCOL_TYPE;
/// The name of the range assignor, the one this member offers.
pub const RANGE_ASSIGNOR: &str = "range";
/// Join/sync rounds (member-id-required, a generation that moved on) before giving up.
const JOIN_ATTEMPTS_MAX: u32 = 50;
/// Pause before retrying a coordinator that is loading or unavailable.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// Kafka error codes this module acts on.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
}

/// How a member joins and stays in its group.
#[derive(Debug, Clone)]
pub struct GroupSettings {
    pub group_id: String,
    /// Topics subscribed to.
    pub topics: Vec<String>,
    pub session_timeout_ms: i32,
    pub rebalance_timeout_ms: i32,
    /// Time between heartbeats while the member is stable.
    pub heartbeat_interval: Duration,
    /// Static membership (KIP-345) when set.
    pub group_instance_id: Option<String>,
    /// How long retriable coordinator errors (loading, not available) are retried.
    pub coordinator_wait: Duration,
    pub client: ConnectionConfig,
}

impl GroupSettings {
    /// Kafka consumer defaults: 45 s session, 3 s heartbeats, 5 min rebalance timeout.
    pub fn new(group_id: &str, topics: &[&str]) -> Self {
        Self {
            group_id: group_id.to_string(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            session_timeout_ms: 45_000,
            rebalance_timeout_ms: 300_000,
            heartbeat_interval: Duration::from_secs(3),
            group_instance_id: None,
            coordinator_wait: Duration::from_secs(30),
            client: ConnectionConfig::default(),
        }
    }
}

/// Failure of a group operation.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("{api:?}: {source}")]
    Call { api: ApiKey, source: CallError },
    #[error("{api:?} answered {}", error_name(*code))]
    Refused { api: ApiKey, code: i16 },
    #[error("group {group}: coordinator still unavailable after {waited:?} ({})", error_name(*code))]
    CoordinatorUnavailable {
        group: String,
        waited: Duration,
        code: i16,
    },
    #[error("group {group}: no stable generation after {attempts} join attempts")]
    JoinAttempts { group: String, attempts: u32 },
    #[error("bad consumer-protocol {what}: {message}")]
    Protocol { what: &'static str, message: String },
    #[error("the member has left the group")]
    Left,
}

impl GroupError {
    /// The Kafka error code when the broker refused the request.
    pub fn code(&self) -> Option<i16> {
        match self {
            GroupError::Refused { code, .. } | GroupError::CoordinatorUnavailable { code, .. } => {
                Some(*code)
            }
            _ => None,
        }
    }
}

fn call_error(api: ApiKey) -> impl FnOnce(CallError) -> GroupError {
    move |source| GroupError::Call { api, source }
}

fn version_of(connection: &Connection, api: ApiKey) -> Result<i16, GroupError> {
    connection.versions().version(api).ok_or(GroupError::Call {
        api,
        source: CallError::Send(SendError::UnsupportedApi { api }),
    })
}

fn s(text: &str) -> StrBytes {
    StrBytes::from_string(text.to_string())
}

/// What a member was given in a generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub generation_id: i32,
    pub member_id: String,
    pub leader: bool,
    /// `(topic, partitions)`, both sorted.
    pub partitions: Vec<(String, Vec<i32>)>,
}

impl Assignment {
    /// Every assigned `(topic, partition)`.
    pub fn topic_partitions(&self) -> impl Iterator<Item = (&str, i32)> {
        self.partitions
            .iter()
            .flat_map(|(t, ps)| ps.iter().map(move |p| (t.as_str(), *p)))
    }
}

// ---------------------------------------------------------------------------------------
// Request builders (pure, so their encodings can be checked against kafka-protocol).

/// FindCoordinator of a group; v4+ carries the key in the batched list.
pub fn find_coordinator_request(group_id: &str, version: i16) -> FindCoordinatorRequest {
    let request = FindCoordinatorRequest::default().with_key_type(0);
    if version >= 4 {
        request.with_coordinator_keys(vec![s(group_id)])
    } else {
        request.with_key(s(group_id))
    }
}

/// JoinGroup offering one protocol (`name`, `metadata`) of `protocol_type`.
pub fn join_group_request(
    settings: &GroupSettings,
    member_id: &str,
    protocol_type: &str,
    protocols: &[(&str, Bytes)],
    version: i16,
) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(&settings.group_id)))
        .with_session_timeout_ms(settings.session_timeout_ms)
        .with_rebalance_timeout_ms(settings.rebalance_timeout_ms)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance_id(settings, version, 5))
        .with_protocol_type(s(protocol_type))
        .with_protocols(
            protocols
                .iter()
                .map(|(name, metadata)| {
                    JoinGroupRequestProtocol::default()
                        .with_name(s(name))
                        .with_metadata(metadata.clone())
                })
                .collect(),
        )
}

/// The member's `group.instance.id` on request versions from `since` on (older versions
/// have no such field and the member joins as a dynamic one).
fn instance_id(settings: &GroupSettings, version: i16, since: i16) -> Option<StrBytes> {
    settings
        .group_instance_id
        .as_deref()
        .filter(|_| version >= since)
        .map(s)
}

/// SyncGroup of a generation; only the leader sends `assignments` (member id, bytes).
pub fn sync_group_request(
    settings: &GroupSettings,
    generation_id: i32,
    member_id: &str,
    protocol: Option<(&str, &str)>,
    assignments: Vec<(String, Bytes)>,
    version: i16,
) -> SyncGroupRequest {
    let mut request = SyncGroupRequest::default()
        .with_group_id(GroupId(s(&settings.group_id)))
        .with_generation_id(generation_id)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance_id(settings, version, 3))
        .with_assignments(
            assignments
                .into_iter()
                .map(|(member, bytes)| {
                    SyncGroupRequestAssignment::default()
                        .with_member_id(StrBytes::from_string(member))
                        .with_assignment(bytes)
                })
                .collect(),
        );
    if version >= 5
        && let Some((protocol_type, protocol_name)) = protocol
    {
        request = request
            .with_protocol_type(Some(s(protocol_type)))
            .with_protocol_name(Some(s(protocol_name)));
    }
    request
}

/// Heartbeat of a member in a generation.
pub fn heartbeat_request(
    settings: &GroupSettings,
    generation_id: i32,
    member_id: &str,
    version: i16,
) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(GroupId(s(&settings.group_id)))
        .with_generation_id(generation_id)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance_id(settings, version, 3))
}

/// LeaveGroup of one member; v3+ names it in the batched member list.
pub fn leave_group_request(
    settings: &GroupSettings,
    member_id: &str,
    version: i16,
) -> LeaveGroupRequest {
    let request = LeaveGroupRequest::default().with_group_id(GroupId(s(&settings.group_id)));
    if version >= 3 {
        request.with_members(vec![
            MemberIdentity::default()
                .with_member_id(s(member_id))
                .with_group_instance_id(settings.group_instance_id.as_deref().map(s)),
        ])
    } else {
        request.with_member_id(s(member_id))
    }
}

/// OffsetCommit of `(topic, partition, offset)` triples by a member of `generation_id`
/// (`-1` and an empty member id commit outside any generation, as a standalone consumer).
pub fn offset_commit_request(
    settings: &GroupSettings,
    generation_id: i32,
    member_id: &str,
    offsets: &[(&str, i32, i64)],
    version: i16,
) -> OffsetCommitRequest {
    let topics = by_topic(offsets.iter().map(|(topic, partition, offset)| {
        let entry = OffsetCommitRequestPartition::default()
            .with_partition_index(*partition)
            .with_committed_offset(*offset);
        (*topic, entry)
    }))
    .into_iter()
    .map(|(topic, partitions)| {
        OffsetCommitRequestTopic::default()
            .with_name(TopicName(s(topic)))
            .with_partitions(partitions)
    })
    .collect();
    OffsetCommitRequest::default()
        .with_group_id(GroupId(s(&settings.group_id)))
        .with_generation_id_or_member_epoch(generation_id)
        .with_member_id(s(member_id))
        .with_group_instance_id(instance_id(settings, version, 7))
        .with_topics(topics)
}

/// OffsetFetch of `(topic, partition)` pairs of one group.
pub fn offset_fetch_request(group_id: &str, partitions: &[(&str, i32)]) -> OffsetFetchRequest {
    let topics = by_topic(partitions.iter().copied())
        .into_iter()
        .map(|(topic, partitions)| {
            OffsetFetchRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partition_indexes(partitions)
        })
        .collect();
    OffsetFetchRequest::default()
        .with_group_id(GroupId(s(group_id)))
        .with_topics(Some(topics))
}

// ---------------------------------------------------------------------------------------
// Consumer protocol: subscriptions, assignments and the range assignor.

/// A subscription to `topics` (consumer protocol v0: version, topics, no user data).
pub fn encode_subscription(topics: &[String]) -> Bytes {
    let subscription =
        ConsumerProtocolSubscription::default().with_topics(topics.iter().map(|t| s(t)).collect());
    encode_versioned(&subscription, 0)
}

/// An assignment of `(topic, partitions)` (consumer protocol v0).
pub fn encode_assignment(partitions: &[(String, Vec<i32>)]) -> Bytes {
    let assignment = ConsumerProtocolAssignment::default().with_assigned_partitions(
        partitions
            .iter()
            .map(|(topic, ps)| {
                AssignedTopic::default()
                    .with_topic(TopicName(s(topic)))
                    .with_partitions(ps.clone())
            })
            .collect(),
    );
    encode_versioned(&assignment, 0)
}

fn encode_versioned(message: &impl Encodable, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    out.put_i16(version);
    message
        .encode(&mut out, version)
        .expect("consumer-protocol v0 encodes any value");
    out.freeze()
}

/// The topics of a member's subscription (decoded by the bounded reader in
/// [`crate::consumer_protocol`]).
pub fn decode_subscription(bytes: &Bytes) -> Result<Vec<String>, GroupError> {
    let (_, subscription) = consumer_protocol::decode_subscription(bytes.clone()).map_err(|e| {
        GroupError::Protocol {
            what: "subscription",
            message: e.to_string(),
        }
    })?;
    Ok(subscription
        .topics
        .iter()
        .map(|t| t.as_str().to_string())
        .collect())
}

/// The `(topic, partitions)` of an assignment, sorted. An empty blob (a member the leader
/// gave nothing) is an empty assignment.
pub fn decode_assignment(bytes: &Bytes) -> Result<Vec<(String, Vec<i32>)>, GroupError> {
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    let (_, assignment) =
        consumer_protocol::decode_assignment(bytes.clone()).map_err(|e| GroupError::Protocol {
            what: "assignment",
            message: e.to_string(),
        })?;
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for topic in assignment.assigned_partitions {
        out.entry(topic.topic.0.as_str().to_string())
            .or_default()
            .extend(topic.partitions);
    }
    Ok(out
        .into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            ps.dedup();
            (t, ps)
        })
        .collect())
}

/// Kafka's range assignor: per topic, the members subscribed to it in member-id order each
/// take a contiguous range; the first `partitions % members` take one extra. Topics missing
/// from `partition_counts` are assigned to no one. Every member appears in the result.
pub fn range_assign(
    subscriptions: &[(String, Vec<String>)],
    partition_counts: &BTreeMap<String, i32>,
) -> BTreeMap<String, Vec<(String, Vec<i32>)>> {
    let mut result: BTreeMap<String, Vec<(String, Vec<i32>)>> = subscriptions
        .iter()
        .map(|(member, _)| (member.clone(), Vec::new()))
        .collect();
    for (topic, &count) in partition_counts {
        let mut members: Vec<&str> = subscriptions
            .iter()
            .filter(|(_, topics)| topics.contains(topic))
            .map(|(m, _)| m.as_str())
            .collect();
        if members.is_empty() || count <= 0 {
            continue;
        }
        members.sort_unstable();
        members.dedup();
        let n = members.len() as i32;
        let (per, extra) = (count / n, count % n);
        for (i, member) in members.iter().enumerate() {
            let i = i as i32;
            let start = per * i + i.min(extra);
            let len = per + i32::from(i < extra);
            if len > 0 {
                result
                    .get_mut(*member)
                    .expect("every subscribed member has an entry")
                    .push((topic.clone(), (start..start + len).collect()));
            }
        }
    }
    result
}

// ---------------------------------------------------------------------------------------
// The member.

#[derive(Debug, Clone)]
struct Identity {
    member_id: String,
    generation_id: i32,
    protocol_name: Option<String>,
    /// Between a successful SyncGroup and the next rebalance.
    stable: bool,
}

struct Shared {
    settings: GroupSettings,
    coordinator: String,
    connection: glommio::sync::Mutex<Connection>,
    identity: RefCell<Identity>,
    rejoin_needed: Cell<bool>,
    /// Signalled each time `rejoin_needed` is raised.
    rebalance: glommio::sync::Semaphore,
    heartbeat_failure: RefCell<Option<String>>,
    heartbeats: Cell<u64>,
}

impl Shared {
    fn flag_rejoin(&self) {
        self.identity.borrow_mut().stable = false;
        if !self.rejoin_needed.replace(true) {
            self.rebalance.signal(1);
        }
    }

    /// Reacts to a group error code in a response: errors that mean the generation is over
    /// raise the rejoin flag (and forget an unknown member id).
    fn note_error(&self, code: i16) {
        match code {
            codes::REBALANCE_IN_PROGRESS | codes::ILLEGAL_GENERATION => self.flag_rejoin(),
            codes::UNKNOWN_MEMBER_ID => {
                self.identity.borrow_mut().member_id.clear();
                self.flag_rejoin();
            }
            _ => {}
        }
    }
}

/// One member of a consumer group, subscribed with the range assignor.
pub struct GroupMember {
    shared: Rc<Shared>,
    heartbeat: Option<glommio::Task<()>>,
}

/// Asks `connection`'s broker which broker coordinates `group_id`, retrying while the
/// coordinator is loading or not available yet. Returns its `host:port`.
pub async fn find_coordinator(
    connection: &mut Connection,
    group_id: &str,
    wait: Duration,
) -> Result<String, GroupError> {
    let api = ApiKey::FindCoordinator;
    let version = version_of(connection, api)?;
    let started = Instant::now();
    loop {
        let response: FindCoordinatorResponse = connection
            .call(&find_coordinator_request(group_id, version))
            .await
            .map_err(call_error(api))?;
        let (code, host, port) = if version >= 4 {
            let c = response
                .coordinators
                .iter()
                .find(|c| c.key.as_str() == group_id)
                .ok_or(GroupError::Refused {
                    api,
                    code: codes::COORDINATOR_NOT_AVAILABLE,
                })?;
            (c.error_code, c.host.to_string(), c.port)
        } else {
            (
                response.error_code,
                response.host.to_string(),
                response.port,
            )
        };
        match code {
            codes::NONE => return Ok(format!("{host}:{port}")),
            codes::COORDINATOR_NOT_AVAILABLE | codes::COORDINATOR_LOAD_IN_PROGRESS => {
                if started.elapsed() >= wait {
                    return Err(GroupError::CoordinatorUnavailable {
                        group: group_id.to_string(),
                        waited: wait,
                        code,
                    });
                }
                Timer::new(RETRY_PAUSE).await;
            }
            code => return Err(GroupError::Refused { api, code }),
        }
    }
}

impl GroupMember {
    /// Finds the group's coordinator through `bootstrap`, connects to it and starts the
    /// heartbeat task (idle until the first [`join`](Self::join) succeeds). Must run on a
    /// glommio executor.
    pub async fn connect(bootstrap: &str, settings: GroupSettings) -> Result<Self, GroupError> {
        let mut first = Connection::connect(bootstrap, settings.client.clone()).await?;
        let coordinator =
            find_coordinator(&mut first, &settings.group_id, settings.coordinator_wait).await?;
        drop(first);
        let connection = Connection::connect(&coordinator, settings.client.clone()).await?;
        for api in [
            ApiKey::JoinGroup,
            ApiKey::SyncGroup,
            ApiKey::Heartbeat,
            ApiKey::LeaveGroup,
            ApiKey::OffsetCommit,
            ApiKey::OffsetFetch,
        ] {
            version_of(&connection, api)?;
        }
        let shared = Rc::new(Shared {
            settings,
            coordinator,
            connection: glommio::sync::Mutex::new(connection),
            identity: RefCell::new(Identity {
                member_id: String::new(),
                generation_id: -1,
                protocol_name: None,
                stable: false,
            }),
            rejoin_needed: Cell::new(true),
            rebalance: glommio::sync::Semaphore::new(0),
            heartbeat_failure: RefCell::new(None),
            heartbeats: Cell::new(0),
        });
        let heartbeat = glommio::spawn_local(heartbeat_loop(shared.clone()));
        Ok(Self {
            shared,
            heartbeat: Some(heartbeat),
        })
    }

    /// The coordinator's `host:port`.
    pub fn coordinator(&self) -> &str {
        &self.shared.coordinator
    }

    pub fn settings(&self) -> &GroupSettings {
        &self.shared.settings
    }

    /// The member id the coordinator gave (empty before the first join).
    pub fn member_id(&self) -> String {
        self.shared.identity.borrow().member_id.clone()
    }

    pub fn generation_id(&self) -> i32 {
        self.shared.identity.borrow().generation_id
    }

    /// Whether the current generation is over (a heartbeat, commit or sync said so) and the
    /// member must call [`join`](Self::join) again.
    pub fn rebalance_needed(&self) -> bool {
        self.shared.rejoin_needed.get()
    }

    /// Resolves once a rejoin is needed.
    pub async fn rebalance_signalled(&self) {
        while !self.shared.rejoin_needed.get() {
            if self.shared.rebalance.acquire(1).await.is_err() {
                return;
            }
        }
    }

    /// Heartbeats answered so far.
    pub fn heartbeats(&self) -> u64 {
        self.shared.heartbeats.get()
    }

    /// Why the heartbeat task stopped, if it did.
    pub fn heartbeat_failure(&self) -> Option<String> {
        self.shared.heartbeat_failure.borrow().clone()
    }

    /// Joins (or rejoins) the group and waits for this member's assignment: JoinGroup until
    /// the generation forms (repeating once with the member id a KIP-394 coordinator
    /// requires), then SyncGroup, where the leader hands out a range assignment of the
    /// subscribed topics' partitions.
    pub async fn join(&self) -> Result<Assignment, GroupError> {
        let shared = &self.shared;
        let settings = &shared.settings;
        let mut connection = shared
            .connection
            .lock()
            .await
            .map_err(|_| GroupError::Left)?;
        shared.identity.borrow_mut().stable = false;
        let join_version = version_of(&connection, ApiKey::JoinGroup)?;
        let sync_version = version_of(&connection, ApiKey::SyncGroup)?;
        let metadata = encode_subscription(&settings.topics);
        let started = Instant::now();
        for _ in 0..JOIN_ATTEMPTS_MAX {
            let member_id = shared.identity.borrow().member_id.clone();
            let request = join_group_request(
                settings,
                &member_id,
                CONSUMER_PROTOCOL_TYPE,
                &[(RANGE_ASSIGNOR, metadata.clone())],
                join_version,
            );
            let Some(joined) = join_group(shared, &mut connection, &request, started).await? else {
                continue;
            };
            let member_id = joined.member_id.to_string();
            let generation_id = joined.generation_id;
            let protocol_name = joined
                .protocol_name
                .as_ref()
                .map_or_else(|| RANGE_ASSIGNOR.to_string(), |p| p.to_string());
            {
                let mut identity = shared.identity.borrow_mut();
                identity.member_id = member_id.clone();
                identity.generation_id = generation_id;
                identity.protocol_name = Some(protocol_name.clone());
            }
            let leader = joined.leader.as_str() == member_id;
            let assignments = if leader {
                leader_assignments(&mut connection, &joined).await?
            } else {
                Vec::new()
            };
            let request = sync_group_request(
                settings,
                generation_id,
                &member_id,
                Some((CONSUMER_PROTOCOL_TYPE, protocol_name.as_str())),
                assignments,
                sync_version,
            );
            let Some(synced) = sync_group(shared, &mut connection, &request, started).await? else {
                continue;
            };
            let partitions = decode_assignment(&synced.assignment)?;
            shared.identity.borrow_mut().stable = true;
            shared.rejoin_needed.set(false);
            while shared.rebalance.try_acquire(1).unwrap_or(false) {}
            return Ok(Assignment {
                generation_id,
                member_id,
                leader,
                partitions,
            });
        }
        Err(GroupError::JoinAttempts {
            group: settings.group_id.clone(),
            attempts: JOIN_ATTEMPTS_MAX,
        })
    }

    /// Sends one heartbeat now; `Ok(false)` means the generation is over (rejoin needed).
    pub async fn heartbeat(&self) -> Result<bool, GroupError> {
        let mut connection = self
            .shared
            .connection
            .lock()
            .await
            .map_err(|_| GroupError::Left)?;
        heartbeat_once(&self.shared, &mut connection).await
    }

    /// Commits `(topic, partition, next offset to read)` in this member's generation. A
    /// refused partition fails the commit with its error code; codes that end the
    /// generation also raise the rejoin flag.
    pub async fn commit(&self, offsets: &[(&str, i32, i64)]) -> Result<(), GroupError> {
        let api = ApiKey::OffsetCommit;
        let mut connection = self
            .shared
            .connection
            .lock()
            .await
            .map_err(|_| GroupError::Left)?;
        let version = version_of(&connection, api)?;
        let (generation_id, member_id) = {
            let identity = self.shared.identity.borrow();
            (identity.generation_id, identity.member_id.clone())
        };
        let request = offset_commit_request(
            &self.shared.settings,
            generation_id,
            &member_id,
            offsets,
            version,
        );
        let response = connection.call(&request).await.map_err(call_error(api))?;
        drop(connection);
        let refused = response
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.error_code)
            .find(|c| *c != codes::NONE);
        if let Some(code) = refused {
            self.shared.note_error(code);
            return Err(GroupError::Refused { api, code });
        }
        Ok(())
    }

    /// The group's committed offsets of `(topic, partition)` pairs (`None`: nothing
    /// committed), in the order asked.
    pub async fn committed(
        &self,
        partitions: &[(&str, i32)],
    ) -> Result<Vec<Option<i64>>, GroupError> {
        let api = ApiKey::OffsetFetch;
        let mut connection = self
            .shared
            .connection
            .lock()
            .await
            .map_err(|_| GroupError::Left)?;
        let request = offset_fetch_request(&self.shared.settings.group_id, partitions);
        let response = connection.call(&request).await.map_err(call_error(api))?;
        drop(connection);
        if response.error_code != codes::NONE {
            return Err(GroupError::Refused {
                api,
                code: response.error_code,
            });
        }
        partitions
            .iter()
            .map(|(topic, partition)| {
                let found = response
                    .topics
                    .iter()
                    .filter(|t| t.name.0.as_str() == *topic)
                    .flat_map(|t| t.partitions.iter())
                    .find(|p| p.partition_index == *partition);
                match found {
                    Some(p) if p.error_code != codes::NONE => Err(GroupError::Refused {
                        api,
                        code: p.error_code,
                    }),
                    Some(p) if p.committed_offset >= 0 => Ok(Some(p.committed_offset)),
                    _ => Ok(None),
                }
            })
            .collect()
    }

    /// Leaves the group (LeaveGroup) and closes the coordinator connection. The heartbeat
    /// task is stopped first, between two of its requests.
    pub async fn leave(mut self) -> Result<(), GroupError> {
        let api = ApiKey::LeaveGroup;
        let mut connection = self
            .shared
            .connection
            .lock()
            .await
            .map_err(|_| GroupError::Left)?;
        // Holding the connection, the heartbeat task is between requests: cancelling it
        // cannot leave a response unread.
        drop(self.heartbeat.take());
        self.shared.identity.borrow_mut().stable = false;
        let member_id = self.shared.identity.borrow().member_id.clone();
        if member_id.is_empty() && self.shared.settings.group_instance_id.is_none() {
            return Ok(());
        }
        let version = version_of(&connection, api)?;
        let request = leave_group_request(&self.shared.settings, &member_id, version);
        let response = connection.call(&request).await.map_err(call_error(api))?;
        drop(connection);
        self.shared.connection.close();
        self.shared.rebalance.close();
        let code = std::iter::once(response.error_code)
            .chain(response.members.iter().map(|m| m.error_code))
            .find(|c| *c != codes::NONE);
        match code {
            None | Some(codes::UNKNOWN_MEMBER_ID) => Ok(()),
            Some(code) => Err(GroupError::Refused { api, code }),
        }
    }
}

impl Drop for GroupMember {
    fn drop(&mut self) {
        self.shared.rebalance.close();
    }
}

/// Sends one JoinGroup. `None` when the join round must start again: the coordinator
/// handed out or forgot the member id, or is busy (after a pause, while
/// `coordinator_wait` since `started` allows).
async fn join_group(
    shared: &Shared,
    connection: &mut Connection,
    request: &JoinGroupRequest,
    started: Instant,
) -> Result<Option<JoinGroupResponse>, GroupError> {
    let joined = connection
        .call(request)
        .await
        .map_err(call_error(ApiKey::JoinGroup))?;
    match joined.error_code {
        codes::NONE => Ok(Some(joined)),
        codes::MEMBER_ID_REQUIRED => {
            shared.identity.borrow_mut().member_id = joined.member_id.to_string();
            Ok(None)
        }
        codes::UNKNOWN_MEMBER_ID => {
            shared.identity.borrow_mut().member_id.clear();
            Ok(None)
        }
        code @ (codes::COORDINATOR_LOAD_IN_PROGRESS
        | codes::COORDINATOR_NOT_AVAILABLE
        | codes::REBALANCE_IN_PROGRESS) => {
            pause_for_coordinator(&shared.settings, code, started).await?;
            Ok(None)
        }
        code => Err(GroupError::Refused {
            api: ApiKey::JoinGroup,
            code,
        }),
    }
}

/// Sends one SyncGroup. `None` when the join round must start again: the generation moved
/// on, the member id is unknown, or the coordinator is busy (after a pause, while
/// `coordinator_wait` since `started` allows).
async fn sync_group(
    shared: &Shared,
    connection: &mut Connection,
    request: &SyncGroupRequest,
    started: Instant,
) -> Result<Option<SyncGroupResponse>, GroupError> {
    let synced = connection
        .call(request)
        .await
        .map_err(call_error(ApiKey::SyncGroup))?;
    match synced.error_code {
        codes::NONE => Ok(Some(synced)),
        codes::REBALANCE_IN_PROGRESS | codes::ILLEGAL_GENERATION => Ok(None),
        codes::UNKNOWN_MEMBER_ID => {
            shared.identity.borrow_mut().member_id.clear();
            Ok(None)
        }
        code @ (codes::COORDINATOR_LOAD_IN_PROGRESS | codes::COORDINATOR_NOT_AVAILABLE) => {
            pause_for_coordinator(&shared.settings, code, started).await?;
            Ok(None)
        }
        code => Err(GroupError::Refused {
            api: ApiKey::SyncGroup,
            code,
        }),
    }
}

/// Waits `RETRY_PAUSE` before asking a busy coordinator again, or gives up with `code` once
/// `coordinator_wait` has passed since `started`.
async fn pause_for_coordinator(
    settings: &GroupSettings,
    code: i16,
    started: Instant,
) -> Result<(), GroupError> {
    if started.elapsed() >= settings.coordinator_wait {
        return Err(GroupError::CoordinatorUnavailable {
            group: settings.group_id.clone(),
            waited: settings.coordinator_wait,
            code,
        });
    }
    Timer::new(RETRY_PAUSE).await;
    Ok(())
}

/// The leader's assignments for SyncGroup: a range assignment of the members' subscribed
/// partitions, encoded per member.
async fn leader_assignments(
    connection: &mut Connection,
    joined: &JoinGroupResponse,
) -> Result<Vec<(String, Bytes)>, GroupError> {
    let subscriptions = joined
        .members
        .iter()
        .map(|m| Ok((m.member_id.to_string(), decode_subscription(&m.metadata)?)))
        .collect::<Result<Vec<_>, GroupError>>()?;
    let counts = partition_counts(connection, &subscriptions).await?;
    Ok(range_assign(&subscriptions, &counts)
        .into_iter()
        .map(|(member, partitions)| (member, encode_assignment(&partitions)))
        .collect())
}

/// Partition counts of every topic some member subscribed to, from Metadata.
async fn partition_counts(
    connection: &mut Connection,
    subscriptions: &[(String, Vec<String>)],
) -> Result<BTreeMap<String, i32>, GroupError> {
    let mut topics: Vec<&str> = subscriptions
        .iter()
        .flat_map(|(_, ts)| ts.iter().map(String::as_str))
        .collect();
    topics.sort_unstable();
    topics.dedup();
    let metadata = connection
        .metadata(Some(&topics), false)
        .await
        .map_err(call_error(ApiKey::Metadata))?;
    Ok(metadata
        .topics
        .iter()
        .filter(|t| t.error_code == codes::NONE)
        .filter_map(|t| {
            let name = t.name.as_ref()?.0.to_string();
            Some((name, t.partitions.len() as i32))
        })
        .collect())
}

async fn heartbeat_once(shared: &Shared, connection: &mut Connection) -> Result<bool, GroupError> {
    let api = ApiKey::Heartbeat;
    let version = version_of(connection, api)?;
    let (generation_id, member_id) = {
        let identity = shared.identity.borrow();
        (identity.generation_id, identity.member_id.clone())
    };
    let response = connection
        .call(&heartbeat_request(
            &shared.settings,
            generation_id,
            &member_id,
            version,
        ))
        .await
        .map_err(call_error(api))?;
    shared.heartbeats.set(shared.heartbeats.get() + 1);
    match response.error_code {
        codes::NONE => Ok(true),
        code @ (codes::REBALANCE_IN_PROGRESS
        | codes::ILLEGAL_GENERATION
        | codes::UNKNOWN_MEMBER_ID) => {
            shared.note_error(code);
            Ok(false)
        }
        code => Err(GroupError::Refused { api, code }),
    }
}

/// Heartbeats every interval while the member is stable; a generation that ended raises the
/// rejoin flag, a failure is recorded and ends the task (and asks for a rejoin, which will
/// surface the failure to the owner).
async fn heartbeat_loop(shared: Rc<Shared>) {
    loop {
        Timer::new(shared.settings.heartbeat_interval).await;
        let Ok(mut connection) = shared.connection.lock().await else {
            return;
        };
        if !shared.identity.borrow().stable || shared.rejoin_needed.get() {
            continue;
        }
        if let Err(e) = heartbeat_once(&shared, &mut connection).await {
            *shared.heartbeat_failure.borrow_mut() = Some(e.to_string());
            if e.code() == Some(codes::FENCED_INSTANCE_ID) || matches!(e, GroupError::Call { .. }) {
                shared.flag_rejoin();
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::admin::tests::round_trip;

    fn settings(instance: Option<&str>) -> GroupSettings {
        let mut settings = GroupSettings::new("g", &["t"]);
        settings.group_instance_id = instance.map(str::to_string);
        settings
    }

    #[test]
    fn group_builders_round_trip_at_every_client_version() {
        // Proves each group request builder encodes, at every version the client may
        // negotiate, bytes kafka-protocol decodes to the identical request (fields a version
        // lacks are left out instead of failing the encode).
        for instance in [None, Some("static-1")] {
            let st = settings(instance);
            round_trip(|v| find_coordinator_request("g", v));
            round_trip(|v| {
                join_group_request(
                    &st,
                    "m-1",
                    CONSUMER_PROTOCOL_TYPE,
                    &[(RANGE_ASSIGNOR, encode_subscription(&["t".into()]))],
                    v,
                )
            });
            round_trip(|v| {
                sync_group_request(
                    &st,
                    3,
                    "m-1",
                    Some((CONSUMER_PROTOCOL_TYPE, RANGE_ASSIGNOR)),
                    vec![("m-1".into(), encode_assignment(&[("t".into(), vec![0, 1])]))],
                    v,
                )
            });
            round_trip(|v| heartbeat_request(&st, 3, "m-1", v));
            round_trip(|v| leave_group_request(&st, "m-1", v));
            round_trip(|v| {
                offset_commit_request(&st, 3, "m-1", &[("t", 0, 10), ("t", 1, 20), ("u", 0, 5)], v)
            });
            round_trip(|_| offset_fetch_request("g", &[("t", 0), ("t", 1), ("u", 2)]));
        }
    }

    #[test]
    fn range_assignor_matches_kafka_ranges() {
        // Proves the range assignor gives each topic's members (in member-id order)
        // contiguous ranges with the first `partitions % members` one larger, skips members
        // not subscribed to a topic, and lists members that get nothing.
        let subs = vec![
            ("c".to_string(), vec!["t".to_string()]),
            ("a".to_string(), vec!["t".to_string(), "u".to_string()]),
            ("b".to_string(), vec!["t".to_string()]),
            ("d".to_string(), vec!["u".to_string()]),
        ];
        let counts = BTreeMap::from([("t".to_string(), 7), ("u".to_string(), 1)]);
        let got = range_assign(&subs, &counts);
        assert_eq!(
            got["a"],
            vec![("t".into(), vec![0, 1, 2]), ("u".into(), vec![0])]
        );
        assert_eq!(got["b"], vec![("t".into(), vec![3, 4])]);
        assert_eq!(got["c"], vec![("t".into(), vec![5, 6])]);
        assert_eq!(got["d"], Vec::<(String, Vec<i32>)>::new());
        // More members than partitions: the last members get nothing.
        let many: Vec<_> = (0..5)
            .map(|i| (format!("m{i}"), vec!["t".to_string()]))
            .collect();
        let got = range_assign(&many, &BTreeMap::from([("t".to_string(), 3)]));
        let sizes: Vec<usize> = got
            .values()
            .map(|a| a.iter().map(|(_, ps)| ps.len()).sum())
            .collect();
        assert_eq!(sizes, vec![1, 1, 1, 0, 0]);
    }

    #[test]
    fn consumer_protocol_round_trips_and_rejects_lying_counts() {
        // Proves subscriptions and assignments decode back to what was encoded, a newer
        // version with extra fields decodes as v3, and blobs whose array counts exceed their
        // bytes (or that are cut short) are refused.
        let topics = vec!["a".to_string(), "b".to_string()];
        assert_eq!(
            decode_subscription(&encode_subscription(&topics)).unwrap(),
            topics
        );
        let parts = vec![("a".to_string(), vec![2, 0, 1]), ("b".to_string(), vec![5])];
        assert_eq!(
            decode_assignment(&encode_assignment(&parts)).unwrap(),
            vec![("a".to_string(), vec![0, 1, 2]), ("b".to_string(), vec![5])]
        );
        assert!(decode_assignment(&Bytes::new()).unwrap().is_empty());

        // A v3 subscription with owned partitions and a rack, then labelled v4 with a
        // trailing field: both read as v3.
        let v3 = ConsumerProtocolSubscription::default()
            .with_topics(vec![s("a")])
            .with_owned_partitions(vec![
                kafka_protocol::messages::consumer_protocol_subscription::TopicPartition::default()
                    .with_topic(TopicName(s("a")))
                    .with_partitions(vec![1]),
            ])
            .with_generation_id(4)
            .with_rack_id(Some(s("r1")));
        let encoded = encode_versioned(&v3, 3);
        assert_eq!(
            decode_subscription(&encoded).unwrap(),
            vec!["a".to_string()]
        );
        let mut v4 = BytesMut::from(&encoded[..]);
        v4[..2].copy_from_slice(&4i16.to_be_bytes());
        v4.put_i32(77);
        assert_eq!(
            decode_subscription(&v4.freeze()).unwrap(),
            vec!["a".to_string()]
        );

        // Array count of i32::MAX topics in a tiny blob: an error, not an allocation.
        let mut lying = BytesMut::new();
        lying.put_i16(0);
        lying.put_i32(i32::MAX);
        lying.put_i16(1);
        lying.put_u8(b'a');
        let lying = lying.freeze();
        assert!(decode_assignment(&lying).is_err());
        assert!(decode_subscription(&lying).is_err());
        // A partition list claiming more entries than bytes left.
        let mut short = BytesMut::new();
        short.put_i16(0);
        short.put_i32(1);
        short.put_i16(1);
        short.put_u8(b'a');
        short.put_i32(1000);
        short.put_i32(0);
        assert!(decode_assignment(&short.freeze()).is_err());
        // Negative version.
        assert!(decode_assignment(&Bytes::from_static(&[0xff, 0xff, 0, 0, 0, 0])).is_err());
    }
}
