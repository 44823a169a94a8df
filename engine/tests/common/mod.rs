//! Helpers shared by the engine's integration tests: running a future on a glommio
//! executor and building batches.
// Compiled into every test binary of this crate, each using only some of it.
#![allow(dead_code)]

use std::future::Future;

use bytes::Bytes;
use sluice_engine::Offset;
use sluice_engine::batch::{BatchHeader, build_test_batch};

/// Runs `f` to completion on a fresh glommio executor thread.
pub fn run<F, Fut>(f: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    glommio::LocalExecutorBuilder::default()
        .spawn(f)
        .unwrap()
        .join()
        .unwrap();
}

pub fn batch(count: i32, payload: usize, ts: i64) -> Bytes {
    Bytes::from(build_test_batch(count, payload, ts, None))
}

pub fn producer_batch(count: i32, pid: i64, epoch: i16, seq: i32) -> Bytes {
    Bytes::from(build_test_batch(count, 20, 1000, Some((pid, epoch, seq))))
}

/// (base offset, last offset) of each batch.
pub fn ranges(batches: &[Bytes]) -> Vec<(i64, i64)> {
    batches
        .iter()
        .map(|b| {
            let h = BatchHeader::new(b).unwrap();
            (h.base_offset().0, h.last_offset().0)
        })
        .collect()
}

pub fn base(b: &Bytes) -> Offset {
    BatchHeader::new(b).unwrap().base_offset()
}
