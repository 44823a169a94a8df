//! The partitions one shard owns, and the shard-local append signal that wakes long-poll
//! fetches. Each partition has a directory `<data-dir>/<topic>-<partition>/`.
//! Runs only on the owning shard; nothing here crosses cores.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use bytes::Bytes;
use kafka_protocol::ResponseError;

use crate::config::BrokerArgs;
use crate::shard_request::*;
use crate::topic_table::TopicPartition;

/// Wakes every waiter when any partition of this shard gets an append. Waiters re-check
/// their own partitions, so a wake-up for another partition only costs a re-check.
#[derive(Default)]
pub struct AppendSignal {
    generation: Cell<u64>,
    wakers: RefCell<Vec<Waker>>,
}

impl AppendSignal {
    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.wakers.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Completes at the next `notify` after this call.
    pub fn next(&self) -> NextAppend<'_> {
        NextAppend {
            signal: self,
            seen: self.generation.get(),
        }
    }
}

pub struct NextAppend<'a> {
    signal: &'a AppendSignal,
    seen: u64,
}

impl Future for NextAppend<'_> {
    type Output = ();
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.signal.generation.get() != self.seen {
            return Poll::Ready(());
        }
        self.signal.wakers.borrow_mut().push(cx.waker().clone());
        Poll::Pending
    }
}

/// One owned partition.
pub struct Partition {
    pub tp: TopicPartition,
}

/// The partitions this shard owns.
pub struct PartitionSet {
    data_dir: std::path::PathBuf,
    parts: RefCell<HashMap<TopicPartition, std::rc::Rc<Partition>>>,
}

impl PartitionSet {
    pub fn new(args: &BrokerArgs) -> Self {
        PartitionSet {
            data_dir: args.data_dir.clone(),
            parts: RefCell::new(HashMap::new()),
        }
    }

    fn dir(&self, tp: &TopicPartition) -> std::path::PathBuf {
        self.data_dir.join(format!("{}-{}", tp.topic, tp.partition))
    }

    pub fn get(&self, tp: &TopicPartition) -> Option<std::rc::Rc<Partition>> {
        self.parts.borrow().get(tp).cloned()
    }

    /// Opens (creating if needed) a partition this shard now owns.
    pub async fn open(
        &self,
        _args: &BrokerArgs,
        topic: Arc<str>,
        partition: i32,
        _configs: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let tp = TopicPartition { topic, partition };
        if self.parts.borrow().contains_key(&tp) {
            return Ok(());
        }
        let dir = self.dir(&tp);
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        self.parts
            .borrow_mut()
            .insert(tp.clone(), std::rc::Rc::new(Partition { tp }));
        Ok(())
    }

    /// Closes a partition; with `delete`, removes its directory.
    pub async fn close(&self, _args: &BrokerArgs, topic: Arc<str>, partition: i32, delete: bool) {
        let tp = TopicPartition { topic, partition };
        self.parts.borrow_mut().remove(&tp);
        if delete {
            let _ = std::fs::remove_dir_all(self.dir(&tp));
        }
    }

    pub async fn close_all(&self) {
        self.parts.borrow_mut().clear();
    }

    pub fn set_config(
        &self,
        _args: &BrokerArgs,
        _topic: &str,
        _configs: &BTreeMap<String, String>,
    ) {
    }

    pub async fn produce(
        &self,
        _tp: &TopicPartition,
        _records: Bytes,
        _acks: Acks,
        _appends: &AppendSignal,
    ) -> ProducePartitionResult {
        ProducePartitionResult {
            error: Some(ResponseError::UnknownServerError),
            ..Default::default()
        }
    }

    pub async fn fetch(
        &self,
        parts: &[FetchPart],
        _wait_until: Option<Instant>,
        _appends: &AppendSignal,
    ) -> Vec<FetchPartResult> {
        parts
            .iter()
            .map(|_| FetchPartResult {
                error: Some(ResponseError::UnknownServerError),
                ..Default::default()
            })
            .collect()
    }

    pub async fn list_offsets(&self, _tp: &TopicPartition, _timestamp: i64) -> ListOffsetResult {
        Err(ResponseError::UnknownServerError)
    }

    pub fn epoch_end(&self, _tp: &TopicPartition, _leader_epoch: i32) -> EpochEndResult {
        Err(ResponseError::UnknownServerError)
    }
}
