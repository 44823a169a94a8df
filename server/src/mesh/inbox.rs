//! The receiving side of the mesh on one shard: drains both lanes' inboxes (from every
//! peer shard and from the shard's own local queue) and serves each `ShardRequest` with
//! the part that owns it — the partition set (data), the controller (shard 0's metadata
//! writes), the group coordinator, or the shard's own small state (table, offline marks,
//! admission). Data handlers are bounded by `DATA_HANDLERS_MAX` and waiting fetches by
//! `LONG_POLLS_MAX`; control messages are always taken (see `mesh/mod.rs`).

use std::cell::Cell;
use std::collections::BTreeMap;
use std::future::Future;
use std::rc::{Rc, Weak};
use std::sync::Arc;
use std::time::Instant;

use glommio::sync::{Semaphore, StaticPermit};
use tracing::debug;

use crate::controller::Controller;
use crate::mesh::{
    DATA_HANDLERS_MAX, InboxReceivers, LONG_POLLS_MAX, LocalServe, PartitionError, ShardRequest,
};
use crate::shard::Shard;
use crate::topic_table::TopicPartition;

/// The door a shard's outbox uses to start a local data handler at once when one is free;
/// `Outbox` knocks only while the local queue is empty, so order is kept. Weak: the inbox
/// owns the shard, which owns the outbox.
struct LocalDoor(Weak<Inbox>);

impl LocalServe for LocalDoor {
    #[allow(clippy::result_large_err)] // see `LocalServe::try_serve_now`
    fn try_serve_now(&self, req: ShardRequest) -> Result<(), ShardRequest> {
        let Some(inbox) = self.0.upgrade() else {
            return Err(req);
        };
        match inbox.data_permits.try_acquire_static_permit(1) {
            Ok(permit) => {
                inbox.spawn_data((req, permit));
                Ok(())
            }
            Err(_) => Err(req),
        }
    }
}

/// Counts one waiting fetch until dropped.
struct LongPoll<'a> {
    count: &'a Cell<usize>,
}

impl Drop for LongPoll<'_> {
    fn drop(&mut self) {
        self.count.set(self.count.get() - 1);
    }
}

/// What serves this shard's requests.
pub struct Inbox {
    shard: Rc<Shard>,
    /// Shard 0 only.
    controller: Option<Controller>,
    /// One permit per data handler running (`DATA_HANDLERS_MAX`).
    data_permits: Rc<Semaphore>,
    /// Fetches waiting for data right now (at most `LONG_POLLS_MAX`).
    long_polls: Cell<usize>,
}

impl Inbox {
    pub fn new(shard: Rc<Shard>, controller: Option<Controller>) -> Rc<Inbox> {
        Rc::new(Inbox {
            shard,
            controller,
            data_permits: Rc::new(Semaphore::new(DATA_HANDLERS_MAX as u64)),
            long_polls: Cell::new(0),
        })
    }

    /// Starts the receiving tasks: per lane, one per peer and one for the local queue.
    /// A data receiver takes its next message only once a handler permit is free, so at
    /// most `DATA_HANDLERS_MAX` data handlers run and a busy shard's inboxes fill; a
    /// control receiver handles every message at once (see the mesh doc for why).
    pub fn start(self: &Rc<Self>, mut receivers: InboxReceivers) {
        self.shard
            .serve_locally_with(Box::new(LocalDoor(Rc::downgrade(self))));
        for (peer, rx) in receivers.data.streams() {
            let inbox = self.clone();
            glommio::spawn_local(async move {
                while let Some(req) = inbox.next_data(|| rx.recv()).await {
                    inbox.spawn_data(req);
                }
                debug!(shard = inbox.shard.id.0, peer, "data receiver closed");
            })
            .detach();
        }
        for (peer, rx) in receivers.control.streams() {
            let inbox = self.clone();
            glommio::spawn_local(async move {
                while let Some(req) = rx.recv().await {
                    inbox.spawn_control(req);
                }
                debug!(shard = inbox.shard.id.0, peer, "control receiver closed");
            })
            .detach();
        }
        let inbox = self.clone();
        let local = receivers.local_data;
        glommio::spawn_local(async move {
            while let Some(req) = inbox.next_data(|| local.recv()).await {
                inbox.spawn_data(req);
            }
        })
        .detach();
        let inbox = self.clone();
        let local = receivers.local_control;
        glommio::spawn_local(async move {
            while let Some(req) = local.recv().await {
                inbox.spawn_control(req);
            }
        })
        .detach();
    }

    /// Waits for a free data handler permit, then for the next message.
    async fn next_data<F: Future<Output = Option<ShardRequest>>>(
        &self,
        recv: impl FnOnce() -> F,
    ) -> Option<(ShardRequest, StaticPermit)> {
        let permit = self
            .data_permits
            .acquire_static_permit(1)
            .await
            .expect("the data permits are never closed");
        Some((recv().await?, permit))
    }

    fn spawn_data(self: &Rc<Self>, (req, permit): (ShardRequest, StaticPermit)) {
        let inbox = self.clone();
        glommio::spawn_local(async move {
            inbox.handle(req).await;
            drop(permit);
        })
        .detach();
    }

    fn spawn_control(self: &Rc<Self>, req: ShardRequest) {
        let inbox = self.clone();
        glommio::spawn_local(async move { inbox.handle(req).await }).detach();
    }

    /// Lets a fetch wait for data (`wait_until`) only while fewer than `LONG_POLLS_MAX`
    /// fetches wait; otherwise it answers at once. The guard counts it while it waits.
    fn long_poll(&self, wait_until: Option<Instant>) -> (Option<Instant>, Option<LongPoll<'_>>) {
        if wait_until.is_none() || self.long_polls.get() >= LONG_POLLS_MAX {
            return (None, None);
        }
        self.long_polls.set(self.long_polls.get() + 1);
        (
            wait_until,
            Some(LongPoll {
                count: &self.long_polls,
            }),
        )
    }

    fn controller(&self) -> &Controller {
        self.controller
            .as_ref()
            .expect("metadata mutations are only sent to shard 0")
    }

    /// Handles one request addressed to this shard, replying through its handle: the data
    /// requests here, the control requests in `handle_control`.
    async fn handle(self: Rc<Self>, req: ShardRequest) {
        // A failed reply send means the asker went away (connection closed); nothing to do.
        match req {
            ShardRequest::Produce {
                tp,
                records,
                acks,
                reply,
            } => {
                let r = self
                    .shard
                    .partitions
                    .produce(&tp, records, acks, &self.shard.appends)
                    .await;
                let _ = reply.send(r);
            }
            ShardRequest::Fetch {
                parts,
                wait_until,
                reply,
            } => {
                let (wait_until, _waiting) = self.long_poll(wait_until);
                let r = self
                    .shard
                    .partitions
                    .fetch(&parts, wait_until, &self.shard.appends)
                    .await;
                let _ = reply.send(r);
            }
            ShardRequest::ListOffsets {
                tp,
                timestamp,
                reply,
            } => {
                let r = self.shard.partitions.list_offsets(&tp, timestamp).await;
                let _ = reply.send(r);
            }
            ShardRequest::EpochEnd {
                tp,
                leader_epoch,
                reply,
            } => {
                let r = self.shard.partitions.epoch_end(&tp, leader_epoch);
                let _ = reply.send(r);
            }
            ShardRequest::DeleteRecords { tp, offset, reply } => {
                let r = self.shard.partitions.delete_records(&tp, offset).await;
                let _ = reply.send(r);
            }
            ShardRequest::Group(req) => self.shard.groups.serve(&*self.shard, req).await,
            control => self.handle_control(control).await,
        }
    }

    /// Handles one control-lane request (see `ShardRequest::lane`).
    async fn handle_control(&self, req: ShardRequest) {
        match req {
            ShardRequest::CreateTopics {
                topics,
                validate_only,
                reply,
            } => {
                let r = self.controller().create_topics(topics, validate_only).await;
                let _ = reply.send(r);
            }
            ShardRequest::DeleteTopics { names, reply } => {
                let r = self.controller().delete_topics(names).await;
                let _ = reply.send(r);
            }
            ShardRequest::CreatePartitions {
                topics,
                validate_only,
                reply,
            } => {
                let r = self
                    .controller()
                    .create_partitions(topics, validate_only)
                    .await;
                let _ = reply.send(r);
            }
            ShardRequest::AlterConfigs {
                changes,
                validate_only,
                reply,
            } => {
                let r = self
                    .controller()
                    .alter_configs(changes, validate_only)
                    .await;
                let _ = reply.send(r);
            }
            ShardRequest::AllocateProducerId { reply } => {
                let r = self.controller().allocate_producer_id().await;
                let _ = reply.send(r);
            }
            ShardRequest::OpenPartitions {
                topic,
                partitions,
                configs,
                reply,
            } => {
                // One partition that cannot be opened goes offline alone; the rest open.
                let _ = reply.send(self.open_partitions(topic, partitions, &configs).await);
            }
            ShardRequest::ClosePartitions {
                topic,
                partitions,
                delete,
                reply,
            } => {
                self.close_partitions(topic, partitions, delete).await;
                let _ = reply.send(());
            }
            ShardRequest::SetConfig {
                topic,
                configs,
                reply,
            } => {
                self.shard
                    .partitions
                    .set_config(&self.shard.args, &topic, &configs);
                let _ = reply.send(());
            }
            ShardRequest::TableUpdate { table, reply } => {
                self.shard.set_table(table);
                let _ = reply.send(());
            }
            ShardRequest::PartitionOffline { tp, offline, reply } => {
                self.shard.mark_offline(tp, offline);
                let _ = reply.send(());
            }
            ShardRequest::Shutdown { reply } => {
                self.shard.stop_on_request(reply);
            }
            ShardRequest::AdmitConnection { ip, reply } => {
                let _ = reply.send(self.shard.connections.admit(ip, &self.shard.args));
            }
            ShardRequest::ReleaseConnection { ip, reply } => {
                self.shard.connections.release(ip);
                let _ = reply.send(());
            }
            ShardRequest::Produce { .. }
            | ShardRequest::Fetch { .. }
            | ShardRequest::ListOffsets { .. }
            | ShardRequest::EpochEnd { .. }
            | ShardRequest::DeleteRecords { .. }
            | ShardRequest::Group(_) => unreachable!("data requests are handled by `handle`"),
        }
    }

    /// Opens (creating if needed) partitions of `topic` this shard now owns. One that
    /// cannot be opened goes offline alone (announced to every shard); the rest open.
    async fn open_partitions(
        &self,
        topic: Arc<str>,
        partitions: Vec<i32>,
        configs: &BTreeMap<String, String>,
    ) -> Result<(), PartitionError> {
        let mut result = Ok(());
        let mut failed = Vec::new();
        for p in partitions {
            if let Err(e) = self
                .shard
                .partitions
                .open(&self.shard.args, topic.clone(), p, configs)
                .await
            {
                failed.push(p);
                if result.is_ok() {
                    result = Err(e);
                }
            }
        }
        if !failed.is_empty() {
            self.shard.announce_offline_later(&topic, &failed, true);
        }
        result
    }

    /// Closes partitions of `topic` (with `delete`, removing their files); those that were
    /// offline are announced as no longer offline.
    async fn close_partitions(&self, topic: Arc<str>, partitions: Vec<i32>, delete: bool) {
        let mut were_offline = Vec::new();
        for p in partitions {
            let tp = TopicPartition {
                topic: topic.clone(),
                partition: p,
            };
            if self.shard.partitions.is_offline(&tp) {
                were_offline.push(p);
            }
            self.shard
                .partitions
                .close(&self.shard.args, topic.clone(), p, delete)
                .await;
        }
        if !were_offline.is_empty() {
            self.shard
                .announce_offline_later(&topic, &were_offline, false);
        }
    }
}
