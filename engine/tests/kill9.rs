//! Real crash test: a child process appends and reports durable offsets, and is killed
//! with SIGKILL at several points; after each kill the log reopens (recovery) with every
//! reported-durable offset present and every batch passing its CRC.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::*;
use sluice_engine::batch::validate;
use sluice_engine::{Log, LogConfig, Offset, ReadCache};

// Proves durability across real SIGKILLs of the writing process, three kills in a row on
// the same directory (recovery of recovered logs included).
#[test]
fn kill9_keeps_durable_offsets() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("t-0");
    for (round, kill_after) in [40u32, 7, 150].into_iter().enumerate() {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice-engine-crash-child"))
            .arg(&dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut durable = 0i64;
        for _ in 0..kill_after {
            let line = lines.next().expect("child output").unwrap();
            durable = line.strip_prefix("durable ").unwrap().parse().unwrap();
        }
        child.kill().unwrap(); // SIGKILL, by PID
        child.wait().unwrap();
        let dir2 = dir.clone();
        run(move || async move {
            let log = Log::open(&dir2, LogConfig::default(), ReadCache::new(1 << 20))
                .await
                .unwrap();
            let leo = log.log_end_offset();
            assert!(
                leo.0 >= durable,
                "round {round}: log end {} < durable {durable}",
                leo.0
            );
            let mut next = log.log_start_offset();
            while next < leo {
                let r = log.read(next, 1 << 20).await.unwrap();
                for b in &r.batches {
                    validate(b).unwrap();
                }
                let (first, _) = ranges(&r.batches)[0];
                assert!(first <= next.0);
                next = Offset(ranges(&r.batches).last().unwrap().1 + 1);
            }
            log.close().await.unwrap();
        });
    }
}
