//! The coordinator of this shard's groups inside the running broker: one `Coordinator` per
//! shard thread, the waiters of JoinGroup and SyncGroup calls that must wait for other
//! members, and a ticker that expires sessions and rebalance deadlines. Requests reach it
//! as `ShardRequest::Group` from any shard (see `handlers/groups.rs`).

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

use glommio::channels::oneshot;
use sluice_net::consumer_protocol::{CONSUMER_PROTOCOL_TYPE, decode_subscription};

use super::placement::{OFFSETS_TOPIC_PARTITIONS_DEFAULT, offsets_partition};
use super::{
    Answer, CommitIdentity, CommittedOffset, Coordinator, Delivery, GroupConfig, GroupError,
    GroupState, GroupSummary, JoinRequest, Joined, LeavingMember, PartitionResults, SyncRequest,
    Synced,
};
use crate::topic_table::ShardId;

/// How often sessions and deadlines are checked.
const TICK: Duration = Duration::from_millis(100);

/// One group operation, as sent to the coordinator shard.
pub enum GroupOp {
    Join(JoinRequest),
    Sync(SyncRequest),
    Heartbeat {
        group_id: String,
        generation_id: i32,
        member_id: String,
        group_instance_id: Option<String>,
    },
    Leave {
        group_id: String,
        members: Vec<LeavingMember>,
    },
    Commit {
        who: CommitIdentity,
        offsets: Vec<((String, i32), CommittedOffset)>,
    },
    /// `partitions: None` asks for every committed offset of the group.
    FetchOffsets {
        group_id: String,
        partitions: Option<Vec<(String, i32)>>,
    },
    /// DescribeGroups for one group of this shard.
    Describe {
        group_id: String,
    },
    /// ListGroups on this shard: groups in one of `states` (all when empty).
    List {
        states: Vec<String>,
    },
    /// DeleteGroups for one group of this shard.
    Delete {
        group_id: String,
    },
    /// OffsetDelete: committed offsets of partitions no member subscribes to.
    DeleteOffsets {
        group_id: String,
        partitions: Vec<(String, i32)>,
    },
}

/// The answer to a `GroupOp`, variant for variant.
pub enum GroupReply {
    Join(Result<Joined, GroupError>),
    Sync(Result<Synced, GroupError>),
    Heartbeat(Result<(), GroupError>),
    Leave(Result<Vec<Result<String, GroupError>>, GroupError>),
    Commit(Result<PartitionResults, GroupError>),
    Offsets(Vec<((String, i32), Option<CommittedOffset>)>),
    Describe(GroupSummary),
    /// (group id, protocol type, state), sorted by group id.
    List(Vec<(String, String, GroupState)>),
    Delete(Result<(), GroupError>),
    DeleteOffsets(Result<PartitionResults, GroupError>),
}

/// The shard that coordinates `group_id`: the owner of its `__consumer_offsets` partition.
pub fn coordinator_shard(group_id: &str, shard_count: u16) -> ShardId {
    let p = offsets_partition(group_id, OFFSETS_TOPIC_PARTITIONS_DEFAULT);
    let p = u16::try_from(p).expect("partition below 16");
    ShardId(p % shard_count.max(1))
}

type Key = (String, String);

struct Host {
    coordinator: RefCell<Coordinator>,
    joins: RefCell<HashMap<Key, oneshot::SharedSender<Result<Joined, GroupError>>>>,
    syncs: RefCell<HashMap<Key, oneshot::SharedSender<Result<Synced, GroupError>>>>,
    start: Instant,
}

thread_local! {
    static HOST: RefCell<Option<Rc<Host>>> = const { RefCell::new(None) };
}

fn host() -> Rc<Host> {
    HOST.with(|h| {
        if let Some(h) = h.borrow().as_ref() {
            return h.clone();
        }
        let host = Rc::new(Host {
            coordinator: RefCell::new(Coordinator::new(GroupConfig::default())),
            joins: RefCell::new(HashMap::new()),
            syncs: RefCell::new(HashMap::new()),
            start: Instant::now(),
        });
        let weak = Rc::downgrade(&host);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(TICK).await;
                let Some(h) = weak.upgrade() else { break };
                let now = h.now_ms();
                h.coordinator.borrow_mut().tick(now);
                h.deliver();
            }
        })
        .detach();
        *h.borrow_mut() = Some(host.clone());
        host
    })
}

impl Host {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn deliver(&self) {
        let deliveries = self.coordinator.borrow_mut().take_deliveries();
        for d in deliveries {
            match d {
                Delivery::Join {
                    group_id,
                    member_id,
                    result,
                } => {
                    if let Some(tx) = self.joins.borrow_mut().remove(&(group_id, member_id)) {
                        let _ = tx.send(result);
                    }
                }
                Delivery::Sync {
                    group_id,
                    member_id,
                    result,
                } => {
                    if let Some(tx) = self.syncs.borrow_mut().remove(&(group_id, member_id)) {
                        let _ = tx.send(result);
                    }
                }
            }
        }
    }
}

/// Runs one operation on this shard's coordinator, waiting for other members if needed.
pub async fn serve(op: GroupOp) -> GroupReply {
    let h = host();
    let now = h.now_ms();
    match op {
        GroupOp::Join(req) => {
            let group_id = req.group_id.clone();
            let answer = h.coordinator.borrow_mut().join_group(req, now);
            h.deliver();
            match answer {
                Answer::Done(r) => GroupReply::Join(r),
                Answer::Pending { member_id } => {
                    let (tx, rx) = oneshot::shared();
                    h.joins.borrow_mut().insert((group_id, member_id), tx);
                    GroupReply::Join(rx.await.unwrap_or(Err(GroupError::RebalanceInProgress)))
                }
            }
        }
        GroupOp::Sync(req) => {
            let group_id = req.group_id.clone();
            let answer = h.coordinator.borrow_mut().sync_group(req, now);
            h.deliver();
            match answer {
                Answer::Done(r) => GroupReply::Sync(r),
                Answer::Pending { member_id } => {
                    let (tx, rx) = oneshot::shared();
                    h.syncs.borrow_mut().insert((group_id, member_id), tx);
                    GroupReply::Sync(rx.await.unwrap_or(Err(GroupError::RebalanceInProgress)))
                }
            }
        }
        GroupOp::Heartbeat {
            group_id,
            generation_id,
            member_id,
            group_instance_id,
        } => {
            let r = h.coordinator.borrow_mut().heartbeat(
                &group_id,
                generation_id,
                &member_id,
                group_instance_id.as_deref(),
                now,
            );
            h.deliver();
            GroupReply::Heartbeat(r)
        }
        GroupOp::Leave { group_id, members } => {
            let r = h
                .coordinator
                .borrow_mut()
                .leave_group(&group_id, &members, now);
            h.deliver();
            GroupReply::Leave(r)
        }
        GroupOp::Commit { who, offsets } => {
            let r = h
                .coordinator
                .borrow_mut()
                .commit_offsets(&who, offsets, now);
            GroupReply::Commit(r)
        }
        GroupOp::FetchOffsets {
            group_id,
            partitions,
        } => {
            let c = h.coordinator.borrow();
            let out = match partitions {
                Some(tps) => tps
                    .into_iter()
                    .map(|tp| {
                        let o = c.committed(&group_id, &tp).cloned();
                        (tp, o)
                    })
                    .collect(),
                None => c
                    .all_committed(&group_id)
                    .into_iter()
                    .map(|(tp, o)| (tp, Some(o)))
                    .collect(),
            };
            GroupReply::Offsets(out)
        }
        GroupOp::Describe { group_id } => {
            GroupReply::Describe(h.coordinator.borrow().describe(&group_id))
        }
        GroupOp::List { states } => GroupReply::List(h.coordinator.borrow().list(&states)),
        GroupOp::Delete { group_id } => {
            GroupReply::Delete(h.coordinator.borrow_mut().delete_group(&group_id))
        }
        GroupOp::DeleteOffsets {
            group_id,
            partitions,
        } => GroupReply::DeleteOffsets(delete_offsets(
            &mut h.coordinator.borrow_mut(),
            &group_id,
            &partitions,
        )),
    }
}

/// OffsetDelete as Kafka rules it: a group with members may only lose offsets of topics
/// none of them subscribes to, which is known only for the consumer protocol; any other
/// protocol type with members is NON_EMPTY_GROUP.
fn delete_offsets(
    c: &mut Coordinator,
    group_id: &str,
    partitions: &[(String, i32)],
) -> Result<PartitionResults, GroupError> {
    let summary = c.describe(group_id);
    let has_members = !matches!(summary.state, GroupState::Empty | GroupState::Dead);
    if has_members && summary.protocol_type != CONSUMER_PROTOCOL_TYPE {
        return Err(GroupError::NonEmptyGroup);
    }
    c.delete_offsets(group_id, partitions, |metadata| {
        decode_subscription(metadata.clone())
            .ok()
            .map(|(_, s)| s.topics.iter().map(|t| t.to_string()).collect())
    })
}
