//! A shard: one pinned glommio executor and everything it owns — its partitions, its
//! read-only copy of the topic table, its client connections' budget — and its outbox to
//! the other shards (`mesh`). Handlers, the controller and the group coordinator all
//! work through an `Rc<Shard>`. Nothing here is shared between shards except immutable
//! `Arc`s; `startup.rs` builds shards, `mesh/inbox.rs` serves what they are sent.

use std::cell::{Cell, RefCell};
use std::collections::HashSet;
use std::rc::Rc;
use std::sync::Arc;

use glommio::sync::CancellationToken;
use tracing::warn;

use crate::config::BrokerArgs;
use crate::connection_limits::ShardConnections;
use crate::group::host::{GroupHost, group_config};
use crate::group::store::{OffsetsStorage, offsets_tp};
use crate::mesh::{CallError, Outbox, PendingReply, Reply, ShardRequest};
use crate::partition::{AppendSignal, PartitionSet};
use crate::topic_table::{ShardId, TopicPartition, TopicTable};

/// Everything one shard owns. Lives in an `Rc` on its own executor.
pub struct Shard {
    pub id: ShardId,
    pub args: Arc<BrokerArgs>,
    pub cluster_id: Arc<str>,
    table: RefCell<Arc<TopicTable>>,
    mesh: Outbox,
    pub partitions: PartitionSet,
    /// Every offline partition of every shard (each owner announces its own), for Metadata.
    offline_partitions: RefCell<HashSet<TopicPartition>>,
    pub appends: Rc<AppendSignal>,
    pub shutdown: CancellationToken,
    shutdown_reply: RefCell<Option<Reply<()>>>,
    next_conn: Cell<u64>,
    /// Read budget, read scratch and (on shard 0) connection counts.
    pub connections: ShardConnections,
    /// This shard's group coordinator.
    pub groups: GroupHost,
}

/// The group coordinator's narrow view of its shard.
impl OffsetsStorage for Shard {
    fn table(&self) -> Arc<TopicTable> {
        Shard::table(self)
    }

    fn offsets_log(&self, partition: i32) -> Option<Rc<sluice_engine::Log>> {
        self.partitions.get(&offsets_tp(partition))
    }

    fn appended(&self) {
        self.appends.notify();
    }
}

impl Shard {
    pub fn new(
        id: ShardId,
        args: Arc<BrokerArgs>,
        cluster_id: Arc<str>,
        table: Arc<TopicTable>,
        mesh: Outbox,
    ) -> Rc<Shard> {
        let connections = ShardConnections::new(&args, id, table.shard_count());
        let groups = GroupHost::new(id, group_config(&args));
        Rc::new(Shard {
            id,
            partitions: PartitionSet::new(&args),
            args,
            cluster_id,
            table: RefCell::new(table),
            mesh,
            offline_partitions: RefCell::new(HashSet::new()),
            appends: Rc::new(AppendSignal::default()),
            shutdown: CancellationToken::new(),
            shutdown_reply: RefCell::new(None),
            next_conn: Cell::new(0),
            connections,
            groups,
        })
    }

    pub fn table(&self) -> Arc<TopicTable> {
        self.table.borrow().clone()
    }

    pub fn shard_count(&self) -> u16 {
        self.table.borrow().shard_count()
    }

    /// Whether a partition (on any shard) is offline: its log could not be opened.
    /// Metadata asks for every partition, so the usual case (none offline) looks nothing
    /// up, and the topic name is shared, not copied.
    pub fn is_offline(&self, topic: &Arc<str>, partition: i32) -> bool {
        let offline = self.offline_partitions.borrow();
        !offline.is_empty()
            && offline.contains(&TopicPartition {
                topic: topic.clone(),
                partition,
            })
    }

    /// Tells every shard (this one included) that `tp` went offline or came back.
    pub async fn announce_offline(self: &Rc<Self>, tp: TopicPartition, offline: bool) {
        for s in 0..self.shard_count() {
            let tp = tp.clone();
            if let Err(e) = self
                .ask(ShardId(s), |reply| ShardRequest::PartitionOffline {
                    tp,
                    offline,
                    reply,
                })
                .await
            {
                warn!(shard = self.id.0, error = %e, "offline mark not delivered");
            }
        }
    }

    /// Announces, in a task of its own (the caller may be a handler the announcement
    /// waits behind), the partitions of `topic` that are offline here.
    pub fn announce_offline_later(
        self: &Rc<Self>,
        topic: &Arc<str>,
        partitions: &[i32],
        offline: bool,
    ) {
        let tps: Vec<TopicPartition> = partitions
            .iter()
            .map(|&partition| TopicPartition {
                topic: topic.clone(),
                partition,
            })
            .collect();
        let me = self.clone();
        glommio::spawn_local(async move {
            for tp in tps {
                me.announce_offline(tp, offline).await;
            }
        })
        .detach();
    }

    pub fn next_conn_id(&self) -> u64 {
        let n = self.next_conn.get();
        self.next_conn.set(n + 1);
        // Unique across shards: the shard id is in the low bits.
        n * u64::from(self.shard_count()) + u64::from(self.id.0)
    }

    /// Installs a table the controller published.
    pub fn set_table(&self, table: Arc<TopicTable>) {
        *self.table.borrow_mut() = table;
    }

    /// Records that `tp` (owned by any shard) went offline or came back.
    pub fn mark_offline(&self, tp: TopicPartition, offline: bool) {
        if offline {
            self.offline_partitions.borrow_mut().insert(tp);
        } else {
            self.offline_partitions.borrow_mut().remove(&tp);
        }
    }

    /// Shard 0 asked this shard to stop: `reply` is answered once its logs are closed.
    pub fn stop_on_request(&self, reply: Reply<()>) {
        *self.shutdown_reply.borrow_mut() = Some(reply);
        self.shutdown.cancel();
    }

    /// The reply owed to shard 0's stop request, if one came.
    pub fn take_stop_reply(&self) -> Option<Reply<()>> {
        self.shutdown_reply.borrow_mut().take()
    }

    /// See `Outbox::serve_locally_with`.
    pub fn serve_locally_with(&self, inbox: Box<dyn crate::mesh::LocalServe>) {
        self.mesh.serve_locally_with(inbox);
    }

    /// Sends a request to shard `to` (this shard included) and waits for its reply.
    pub async fn ask<T: Send + 'static>(
        &self,
        to: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<T, CallError> {
        self.mesh.ask(to, make).await
    }

    /// Enqueues a request for shard `to` and returns the pending reply (see `Outbox::send`).
    pub async fn send<T: Send + 'static>(
        &self,
        to: ShardId,
        make: impl FnOnce(Reply<T>) -> ShardRequest,
    ) -> Result<PendingReply<T>, CallError> {
        self.mesh.send(to, make).await
    }
}
