//! How shards stop. The main thread sets a process-wide flag on SIGINT/SIGTERM; each
//! shard watches it (`watch_stop_flag`) and stops accepting. Shard 0 then asks every
//! other shard to stop and waits (at most `PEERS_STOP_WAIT`) until each has closed its
//! logs (`stop`), so a clean stop leaves every log closed. The supervisor in `startup::run` bounds the whole stop by
//! `SHUTDOWN_TIMEOUT`; past it the process ends and the next start recovers the logs.

use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tracing::info;

use crate::mesh::ShardRequest;
use crate::shard::Shard;
use crate::topic_table::ShardId;

/// How long a requested stop may take (every shard closing its logs) before the process
/// ends without waiting further; the logs not closed by then are recovered at the next
/// start like after a crash.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long shard 0 waits for the other shards to confirm their stop before it closes its
/// own logs; well within `SHUTDOWN_TIMEOUT`.
const PEERS_STOP_WAIT: Duration = Duration::from_secs(3);
/// How often a shard looks at the process-wide stop flag.
const STOP_POLL: Duration = Duration::from_millis(20);

/// Cancels the shard's `shutdown` token once the main thread sets `stop`.
pub fn watch_stop_flag(shard: &Rc<Shard>, stop: Arc<AtomicBool>) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        while !stop.load(Ordering::SeqCst) {
            glommio::timer::sleep(STOP_POLL).await;
        }
        shard.shutdown.cancel();
    })
    .detach();
}

/// Stops a shard that no longer accepts connections: shard 0 first tells every other
/// shard and waits until each has closed its logs; then this shard closes its own and
/// answers the stop request it got. Logs left unflushed by a failed write make the stop
/// unclean: an error, so the process exits non-zero.
pub async fn stop(shard: &Rc<Shard>) -> Result<(), String> {
    if shard.id.0 == 0 {
        let peers_stopped = async {
            for s in 1..shard.shard_count() {
                let _ = shard
                    .ask(ShardId(s), |reply| ShardRequest::Shutdown { reply })
                    .await;
            }
        };
        // A peer also stops on the process flag, and one that exits before it reads the
        // request never answers (the request stays in the channel shard 0 still holds):
        // wait for the answers only so long.
        futures_lite::future::or(peers_stopped, glommio::timer::sleep(PEERS_STOP_WAIT)).await;
    }
    let unclean = shard.partitions.close_all().await;
    info!(shard = shard.id.0, "shard stopped");
    if let Some(reply) = shard.take_stop_reply() {
        let _ = reply.send(());
    }
    if unclean > 0 {
        return Err(format!("{unclean} partition logs not closed cleanly"));
    }
    Ok(())
}
