//! The per-shard read cache: recently appended batches of every log on the shard, so
//! tailing consumers are served from memory. Bounded by total bytes; the oldest inserted
//! batch is evicted first (appends arrive in time order, so this keeps the tails). Entries
//! are `Bytes` clones of the appended batch: no copy on insert or on hit.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::rc::Rc;

use bytes::Bytes;

use crate::Offset;

/// A cached batch with its offset range.
#[derive(Debug, Clone)]
pub struct CachedBatch {
    pub base_offset: Offset,
    pub last_offset: Offset,
    pub bytes: Bytes,
}

struct Inner {
    map: BTreeMap<(u64, i64), CachedBatch>,
    order: VecDeque<(u64, i64)>,
    bytes: u64,
}

/// Shared by all logs of one shard (`Rc`, never crosses threads).
pub struct ReadCache {
    bytes_max: u64,
    inner: RefCell<Inner>,
    next_log_id: Cell<u64>,
    hits: Cell<u64>,
    misses: Cell<u64>,
}

impl ReadCache {
    pub fn new(bytes_max: u64) -> Rc<ReadCache> {
        Rc::new(ReadCache {
            bytes_max,
            inner: RefCell::new(Inner {
                map: BTreeMap::new(),
                order: VecDeque::new(),
                bytes: 0,
            }),
            next_log_id: Cell::new(1),
            hits: Cell::new(0),
            misses: Cell::new(0),
        })
    }

    /// A fresh key space for one log.
    pub(crate) fn register_log(&self) -> u64 {
        let id = self.next_log_id.get();
        self.next_log_id.set(id + 1);
        id
    }

    pub fn bytes(&self) -> u64 {
        self.inner.borrow().bytes
    }
    pub fn bytes_max(&self) -> u64 {
        self.bytes_max
    }
    /// (hits, misses) of `run` lookups.
    pub fn stats(&self) -> (u64, u64) {
        (self.hits.get(), self.misses.get())
    }

    pub(crate) fn insert(&self, log: u64, batch: CachedBatch) {
        let size = batch.bytes.len() as u64;
        if size > self.bytes_max {
            return;
        }
        let mut inner = self.inner.borrow_mut();
        let key = (log, batch.base_offset.0);
        if let Some(old) = inner.map.insert(key, batch) {
            inner.bytes -= old.bytes.len() as u64;
        }
        inner.bytes += size;
        inner.order.push_back(key);
        while inner.bytes > self.bytes_max {
            let Some(k) = inner.order.pop_front() else {
                break;
            };
            if let Some(old) = inner.map.remove(&k) {
                inner.bytes -= old.bytes.len() as u64;
            }
        }
        // Keys of entries already removed by truncation linger in `order`; drop them when
        // they outnumber live entries so the queue stays bounded.
        if inner.order.len() > 2 * inner.map.len() + 64 {
            let Inner { map, order, .. } = &mut *inner;
            order.retain(|k| map.contains_key(k));
        }
    }

    /// Consecutive cached batches starting with the one containing `from`: the first
    /// regardless of `bytes_budget` when `take_first` is set, then more while they fit.
    pub(crate) fn run(
        &self,
        log: u64,
        from: Offset,
        bytes_budget: usize,
        take_first: bool,
    ) -> Vec<CachedBatch> {
        let inner = self.inner.borrow();
        let mut out: Vec<CachedBatch> = Vec::new();
        let mut used = 0usize;
        let mut expect = from;
        let start = inner.map.range((log, i64::MIN)..=(log, from.0)).next_back();
        let Some((_, first)) = start else {
            self.misses.set(self.misses.get() + 1);
            return out;
        };
        if first.last_offset < from {
            self.misses.set(self.misses.get() + 1);
            return out;
        }
        for (_, b) in inner
            .map
            .range((log, first.base_offset.0)..(log + 1, i64::MIN))
        {
            if out.is_empty() {
                if !take_first && b.bytes.len() > bytes_budget {
                    break;
                }
            } else if b.base_offset != expect || used + b.bytes.len() > bytes_budget {
                break;
            }
            used += b.bytes.len();
            expect = Offset(b.last_offset.0 + 1);
            out.push(b.clone());
        }
        if out.is_empty() {
            self.misses.set(self.misses.get() + 1);
        } else {
            self.hits.set(self.hits.get() + 1);
        }
        out
    }

    /// Forgets batches of `log` containing or after `offset` (truncation).
    pub(crate) fn remove_from(&self, log: u64, offset: Offset) {
        let mut inner = self.inner.borrow_mut();
        let keys: Vec<(u64, i64)> = inner
            .map
            .range((log, i64::MIN)..(log + 1, i64::MIN))
            .filter(|(_, b)| b.last_offset >= offset)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(b) = inner.map.remove(&k) {
                inner.bytes -= b.bytes.len() as u64;
            }
        }
    }

    /// Forgets batches of `log` entirely below `offset` (retention, delete records).
    pub(crate) fn remove_below(&self, log: u64, offset: Offset) {
        let mut inner = self.inner.borrow_mut();
        let keys: Vec<(u64, i64)> = inner
            .map
            .range((log, i64::MIN)..(log, offset.0))
            .filter(|(_, b)| b.last_offset < offset)
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(b) = inner.map.remove(&k) {
                inner.bytes -= b.bytes.len() as u64;
            }
        }
    }

    /// Forgets batches of `log` whose base offset is in `[from, to)` (a segment replaced
    /// by its compacted copy).
    pub(crate) fn remove_range(&self, log: u64, from: Offset, to: Offset) {
        let mut inner = self.inner.borrow_mut();
        let keys: Vec<(u64, i64)> = inner
            .map
            .range((log, from.0)..(log, to.0.max(from.0)))
            .map(|(k, _)| *k)
            .collect();
        for k in keys {
            if let Some(b) = inner.map.remove(&k) {
                inner.bytes -= b.bytes.len() as u64;
            }
        }
    }

    pub(crate) fn remove_log(&self, log: u64) {
        self.remove_from(log, Offset(i64::MIN));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(base: i64, last: i64, size: usize) -> CachedBatch {
        CachedBatch {
            base_offset: Offset(base),
            last_offset: Offset(last),
            bytes: Bytes::from(vec![0u8; size]),
        }
    }

    // Proves a run starts at the batch containing the offset, stops at gaps and the budget,
    // always takes one oversized first batch, and that eviction keeps the byte bound.
    #[test]
    fn runs_and_eviction() {
        let c = ReadCache::new(1000);
        let log = c.register_log();
        c.insert(log, b(0, 4, 100));
        c.insert(log, b(5, 9, 100));
        c.insert(log, b(10, 10, 100));
        c.insert(log, b(20, 21, 100));
        let r = c.run(log, Offset(7), 1000, true);
        assert_eq!(
            r.iter().map(|x| x.base_offset.0).collect::<Vec<_>>(),
            vec![5, 10]
        );
        assert_eq!(c.run(log, Offset(3), 150, true).len(), 1);
        assert_eq!(c.run(log, Offset(3), 50, false).len(), 0);
        assert_eq!(c.run(log, Offset(15), 1000, true).len(), 0);
        let other = c.register_log();
        assert!(c.run(other, Offset(3), 1000, true).is_empty());
        for i in 0..20 {
            c.insert(other, b(100 + i, 100 + i, 100));
        }
        assert!(c.bytes() <= 1000);
        assert!(c.run(log, Offset(0), 1000, true).is_empty());
        c.remove_from(other, Offset(115));
        assert!(c.run(other, Offset(115), 1000, true).is_empty());
        assert_eq!(c.run(other, Offset(114), 1000, true).len(), 1);
        c.remove_below(other, Offset(114));
        assert!(c.run(other, Offset(113), 1000, true).is_empty());
        c.remove_log(other);
        assert_eq!(c.bytes(), 0);
    }
}
