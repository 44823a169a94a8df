//! Test helper for the real `kill -9` crash test (`engine/tests/kill9.rs`): appends
//! batches to the partition directory given as the only argument forever, and after each
//! `wait_durable` prints `durable <offset>` to stdout. The parent kills it with SIGKILL
//! at a random point and checks that every offset printed survived.

use std::io::Write;

use bytes::Bytes;
use sluice_engine::batch::build_test_batch;
use sluice_engine::{LeaderEpoch, Log, LogConfig, Offset, ReadCache};

fn main() {
    let dir = std::env::args_os()
        .nth(1)
        .expect("usage: sluice-engine-crash-child <partition-dir>");
    glommio::LocalExecutorBuilder::default()
        .spawn(move || async move {
            let cfg = LogConfig {
                segment_bytes_max: 256 << 10,
                index_interval_bytes: 1024,
                ..LogConfig::default()
            };
            let log = Log::open(std::path::Path::new(&dir), cfg, ReadCache::new(1 << 20))
                .await
                .expect("open");
            let mut out = std::io::stdout();
            let mut i: u64 = 0;
            loop {
                i += 1;
                let size = (i * 7919 % 9000) as usize;
                let batch = build_test_batch(1 + (i % 5) as i32, size, i as i64, None);
                let info = log
                    .append(Bytes::from(batch), LeaderEpoch((i / 100) as i32), 0)
                    .expect("append");
                if i.is_multiple_of(3) {
                    log.wait_durable(Offset(info.last_offset.0 + 1))
                        .await
                        .expect("durable");
                    writeln!(out, "durable {}", log.durable_offset().0).expect("stdout");
                    out.flush().expect("stdout");
                }
            }
        })
        .unwrap()
        .join()
        .unwrap();
}
