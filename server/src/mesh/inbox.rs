//! The receiving side of the mesh on one shard: drains the inbox from every peer shard
//! and the shard's own local queue, and serves each `ShardRequest` with the part that
//! owns it — the partition set (data), the controller (shard 0's metadata writes), the
//! group coordinator, or the shard's own small state (table, offline marks, admission).

use std::rc::Rc;

use glommio::channels::channel_mesh::Receivers;
use glommio::channels::local_channel::LocalReceiver;
use tracing::debug;

use crate::controller::Controller;
use crate::mesh::ShardRequest;
use crate::shard::Shard;
use crate::topic_table::TopicPartition;

/// What serves this shard's requests.
pub struct Inbox {
    shard: Rc<Shard>,
    /// Shard 0 only.
    controller: Option<Controller>,
}

impl Inbox {
    pub fn new(shard: Rc<Shard>, controller: Option<Controller>) -> Rc<Inbox> {
        Rc::new(Inbox { shard, controller })
    }

    /// Starts one receiving task per peer and one for the shard's own queue.
    pub fn start(
        self: &Rc<Self>,
        mut receivers: Receivers<ShardRequest>,
        local: LocalReceiver<ShardRequest>,
    ) {
        for (peer, rx) in receivers.streams() {
            let inbox = self.clone();
            glommio::spawn_local(async move {
                while let Some(req) = rx.recv().await {
                    let i = inbox.clone();
                    glommio::spawn_local(async move { i.handle(req).await }).detach();
                }
                debug!(shard = inbox.shard.id.0, peer, "mesh receiver closed");
            })
            .detach();
        }
        let inbox = self.clone();
        glommio::spawn_local(async move {
            while let Some(req) = local.recv().await {
                let i = inbox.clone();
                glommio::spawn_local(async move { i.handle(req).await }).detach();
            }
        })
        .detach();
    }

    fn controller(&self) -> &Controller {
        self.controller
            .as_ref()
            .expect("metadata mutations are only sent to shard 0")
    }

    /// Handles one request addressed to this shard, replying through its handle.
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
                let mut result = Ok(());
                let mut failed = Vec::new();
                for p in partitions {
                    if let Err(e) = self
                        .shard
                        .partitions
                        .open(&self.shard.args, topic.clone(), p, &configs)
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
                let _ = reply.send(result);
            }
            ShardRequest::ClosePartitions {
                topic,
                partitions,
                delete,
                reply,
            } => {
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
            ShardRequest::Group { op, reply } => {
                let _ = reply.send(crate::group::host::serve(&self.shard, op).await);
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
        }
    }
}
