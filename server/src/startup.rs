//! Start-up of the broker process: loads topic metadata, takes the data directory and
//! listen address (`lifecycle`), starts one pinned executor per shard and supervises them
//! from the main thread (`run`); on each shard, `shard_main` binds the port, opens the
//! partitions it owns, starts its inbox and background work, reports ready and accepts
//! connections until it is asked to stop (`shutdown`). The one INFO line on
//! `READY_TARGET` says every shard accepts connections.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use glommio::channels::channel_mesh::{Full, MeshBuilder};
use glommio::net::TcpListener;
use glommio::{LocalExecutorBuilder, Placement};
use tracing::{error, info, warn};

use crate::config::{BrokerArgs, CLEANUP_POLICY, SEGMENT_BYTES};
use crate::connection;
use crate::controller::{Controller, ControllerParts};
use crate::lifecycle::{
    DataDirLock, ExitReport, FATAL_EXIT_CODE, IO_MEMORY_PER_SHARD, KICK_INTERVAL, ListenClaim,
    ShardEvent, check_memlock, exit_now, install_kick_handler, kick, spawn_signal_thread,
};
use crate::mesh::inbox::Inbox;
use crate::mesh::{self, ShardRequest};
use crate::shard::Shard;
use crate::shutdown::{self, SHUTDOWN_TIMEOUT};
use crate::topic_store::{
    FileTopicStore, ProducerIdBlocks, TopicRecord, TopicStore, load_or_create_cluster_id,
};
use crate::topic_table::{OFFSETS_TOPIC, ShardId, TopicPartition, TopicTable};

/// A shard's executor thread, joined when it ends.
type ShardHandle = glommio::ExecutorJoinHandle<()>;

/// The target of the one INFO line that says every shard accepts connections; tests wait
/// for it (it is logged whatever `RUST_LOG` filters elsewhere, if this target is enabled).
pub const READY_TARGET: &str = "sluice::ready";

/// `__consumer_offsets` as first created: compacted, Kafka's partition count and segment size.
fn offsets_topic_record(args: &BrokerArgs) -> TopicRecord {
    let mut configs = BTreeMap::new();
    configs.insert(CLEANUP_POLICY.to_string(), "compact".to_string());
    configs.insert(
        SEGMENT_BYTES.to_string(),
        args.offsets_topic_segment_bytes.to_string(),
    );
    TopicRecord {
        name: OFFSETS_TOPIC.to_string(),
        id: uuid::Uuid::from_u128(rand::random::<u128>()),
        partitions: args.offsets_topic_num_partitions,
        configs,
    }
}

/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: `set` is plain data that sched_getaffinity fills; size is passed with it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) == 0 {
            let cpus: Vec<usize> = (0..libc::CPU_SETSIZE as usize)
                .filter(|c| libc::CPU_ISSET(*c, &set))
                .collect();
            if !cpus.is_empty() {
                return cpus;
            }
        }
    }
    (0..std::thread::available_parallelism().map_or(1, |n| n.get())).collect()
}

/// Loads metadata, takes the data directory and listen address for this process alone,
/// starts one pinned executor per shard, and supervises them from this thread: logs the
/// ready line once every shard accepts connections, stops them all on SIGINT/SIGTERM
/// (bounded by `SHUTDOWN_TIMEOUT`), and ends the process at once if any shard fails.
/// Returns an error only for startup failures.
pub fn run(args: BrokerArgs) -> anyhow::Result<()> {
    use anyhow::Context;

    args.validate().map_err(anyhow::Error::msg)?;
    std::fs::create_dir_all(&args.data_dir).with_context(|| {
        format!(
            "creating data directory {} (--data-dir must name a directory this user can write)",
            args.data_dir.display()
        )
    })?;
    // Held until this function returns; the kernel releases both if the process dies.
    let _data_dir_lock = DataDirLock::acquire(&args.data_dir)?;
    let _listen_claim = ListenClaim::acquire(args.listen)?;
    let cpus = allowed_cpus();
    let shard_count = args.cores.unwrap_or(cpus.len()).clamp(1, 256);
    match check_memlock(shard_count) {
        Ok(None) => {}
        Ok(Some(warning)) => warn!("{warning}"),
        Err(e) => anyhow::bail!(e),
    }
    let Loaded {
        table,
        controller_parts,
        cluster_id,
    } = load_metadata(&args, shard_count)?;
    info!(
        shards = shard_count,
        topics = table.topics().count(),
        listen = %args.listen,
        data_dir = %args.data_dir.display(),
        "starting sluice"
    );

    // Signals are blocked before any other thread exists, so every thread inherits the
    // mask and only the signal thread's sigwait takes them.
    glommio::signal::block(&[libc::SIGINT, libc::SIGTERM])
        .map_err(|e| anyhow::anyhow!("blocking signals: {e}"))?;
    install_kick_handler().context("installing the kick signal handler")?;
    let (events, inbox) = std::sync::mpsc::channel::<ShardEvent>();
    spawn_signal_thread(events.clone()).context("starting the signal thread")?;

    let args = Arc::new(args);
    let stop = Arc::new(AtomicBool::new(false));
    let meshes = mesh::meshes(shard_count);
    let mut controller_parts = Some(controller_parts);
    let mut handles = Vec::new();
    for s in 0..shard_count {
        let cpu = cpus[s % cpus.len()];
        let args = args.clone();
        let meshes = meshes.clone();
        let table = table.clone();
        let cluster_id = cluster_id.clone();
        let ctl = if s == 0 {
            controller_parts.take()
        } else {
            None
        };
        let life = ShardLife {
            stop: stop.clone(),
            events: events.clone(),
        };
        let report = ExitReport::new(s as u16, events.clone());
        let h = LocalExecutorBuilder::new(Placement::Fixed(cpu))
            .name(&format!("shard-{s}"))
            .io_memory(IO_MEMORY_PER_SHARD)
            .spawn(move || async move {
                let r = shard_main(
                    ShardId(s as u16),
                    args,
                    cluster_id,
                    meshes,
                    table,
                    ctl,
                    life,
                )
                .await;
                report.report(r);
            })
            .map_err(|e| anyhow::anyhow!("starting shard {s}: {e}"))?;
        handles.push(Some(h));
    }
    drop(events);
    let handles = supervise(&args, handles, inbox, stop);
    for h in handles.into_iter().flatten() {
        let _ = h.join();
    }
    info!("sluice stopped cleanly");
    Ok(())
}

/// What the process loads from the data directory before any shard starts.
struct Loaded {
    table: Arc<TopicTable>,
    controller_parts: ControllerParts,
    cluster_id: Arc<str>,
}

/// Loads topic metadata (creating `__consumer_offsets` on first start), producer id
/// blocks and the cluster id.
fn load_metadata(args: &BrokerArgs, shard_count: usize) -> anyhow::Result<Loaded> {
    use anyhow::Context;
    let data_dir = args.data_dir.display().to_string();
    let store: Arc<dyn TopicStore + Sync> = Arc::new(FileTopicStore::new(&args.data_dir));
    let mut records = store
        .load()
        .with_context(|| format!("reading topic metadata in {data_dir}"))?;
    if !records.iter().any(|r| r.name == OFFSETS_TOPIC) {
        records.push(offsets_topic_record(args));
        store
            .save(&records)
            .with_context(|| format!("writing topic metadata in {data_dir}"))?;
        info!(
            partitions = args.offsets_topic_num_partitions,
            "created {OFFSETS_TOPIC}"
        );
    }
    let mut table = TopicTable::new(shard_count as u16);
    for r in &records {
        table = table.with_topic(&r.name, r.id, r.partitions as usize, r.configs.clone());
    }
    let table = Arc::new(table);
    let producer_ids = ProducerIdBlocks::open(&args.data_dir)
        .with_context(|| format!("producer id blocks in {data_dir}"))?;
    let cluster_id: Arc<str> = Arc::from(
        load_or_create_cluster_id(&args.data_dir)
            .with_context(|| format!("cluster id in {data_dir}"))?,
    );
    Ok(Loaded {
        table,
        controller_parts: ControllerParts {
            store,
            records,
            producer_ids,
        },
        cluster_id,
    })
}

/// Supervises the shards from the main thread until every one has stopped: kicks their
/// threads, logs the ready line once every shard accepts connections, starts the stop
/// on SIGINT/SIGTERM (bounded by `SHUTDOWN_TIMEOUT`), and ends the process at once if
/// any shard fails or stops unasked. Returns the join handles not yet taken.
fn supervise(
    args: &BrokerArgs,
    mut handles: Vec<Option<ShardHandle>>,
    inbox: std::sync::mpsc::Receiver<ShardEvent>,
    stop: Arc<AtomicBool>,
) -> Vec<Option<ShardHandle>> {
    let shard_count = handles.len();
    let (mut ready, mut exited) = (0usize, 0usize);
    let mut stop_deadline: Option<std::time::Instant> = None;
    // Each running shard's thread, kicked every KICK_INTERVAL (see `kick`).
    let mut threads: Vec<Option<libc::pthread_t>> = vec![None; shard_count];
    let mut next_kick = std::time::Instant::now() + KICK_INTERVAL;
    while exited < shard_count {
        let now = std::time::Instant::now();
        if stop_deadline.is_some_and(|d| now >= d) {
            error!(
                stopped = exited,
                shards = shard_count,
                timeout_ms = SHUTDOWN_TIMEOUT.as_millis() as u64,
                "shards did not stop in time: stopping at once, logs not closed"
            );
            exit_now(FATAL_EXIT_CODE);
        }
        if now >= next_kick {
            threads.iter().flatten().for_each(|t| kick(*t));
            next_kick = now + KICK_INTERVAL;
        }
        let wait = next_kick.saturating_duration_since(now);
        let event = match inbox.recv_timeout(wait) {
            Ok(event) => event,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => continue,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                error!("every shard and the signal thread are gone: stopping");
                exit_now(FATAL_EXIT_CODE);
            }
        };
        match event {
            ShardEvent::Started(s, thread) => {
                if let Some(slot) = threads.get_mut(usize::from(s)) {
                    *slot = Some(thread);
                }
            }
            ShardEvent::Ready(_) => {
                ready += 1;
                if ready == shard_count {
                    info!(
                        target: READY_TARGET,
                        shards = shard_count,
                        listen = %args.listen,
                        "sluice ready: every shard accepts connections"
                    );
                }
            }
            ShardEvent::Exited(s, Ok(())) if stop_deadline.is_some() => {
                threads[usize::from(s)] = None;
                exited += 1;
            }
            ShardEvent::Exited(s, Ok(())) => {
                error!(
                    shard = s,
                    "shard stopped without a stop request: stopping the broker"
                );
                exit_now(FATAL_EXIT_CODE);
            }
            ShardEvent::Exited(s, Err(e)) => {
                // Its thread is ending: the join returns at once, with the executor's
                // own error if it could not be created (e.g. the memlock limit).
                let cause = handles
                    .get_mut(usize::from(s))
                    .and_then(Option::take)
                    .and_then(|h| h.join().err())
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default();
                error!(shard = s, error = %format!("{e}{cause}"), "shard failed: stopping the broker");
                exit_now(FATAL_EXIT_CODE);
            }
            // Supervisors may signal the process and its group: a stop already under way
            // is bounded by SHUTDOWN_TIMEOUT, so a repeated signal changes nothing.
            ShardEvent::Signal(sig) if stop_deadline.is_some() => {
                info!(signal = sig, "already shutting down");
            }
            ShardEvent::Signal(sig) => {
                info!(signal = sig, "shutting down");
                stop.store(true, Ordering::SeqCst);
                stop_deadline = Some(std::time::Instant::now() + SHUTDOWN_TIMEOUT);
            }
        }
    }
    handles
}

/// Test hook, in debug builds only (release builds do not read the variable):
/// `SLUICE_TEST_PANIC_SHARD=N` makes shard N panic `TEST_PANIC_DELAY` after it starts
/// accepting connections, so tests can watch the panic policy end the whole process.
#[cfg(debug_assertions)]
fn arm_test_panic(id: ShardId) {
    const TEST_PANIC_DELAY: std::time::Duration = std::time::Duration::from_secs(1);
    let armed = std::env::var("SLUICE_TEST_PANIC_SHARD")
        .ok()
        .and_then(|v| v.trim().parse::<u16>().ok())
        == Some(id.0);
    if armed {
        glommio::spawn_local(async move {
            glommio::timer::sleep(TEST_PANIC_DELAY).await;
            panic!("SLUICE_TEST_PANIC_SHARD={}: test panic", id.0);
        })
        .detach();
    }
}

/// What a shard needs from the process around it: the stop flag the main thread sets on
/// SIGINT/SIGTERM, and the channel on which it reports being ready.
struct ShardLife {
    stop: Arc<std::sync::atomic::AtomicBool>,
    events: std::sync::mpsc::Sender<crate::lifecycle::ShardEvent>,
}

async fn shard_main(
    id: ShardId,
    args: Arc<BrokerArgs>,
    cluster_id: Arc<str>,
    meshes: (
        MeshBuilder<ShardRequest, Full>,
        MeshBuilder<ShardRequest, Full>,
    ),
    table: Arc<TopicTable>,
    ctl: Option<ControllerParts>,
    life: ShardLife,
) -> Result<(), String> {
    // SAFETY: pthread_self(3) has no arguments and cannot fail.
    let thread = unsafe { libc::pthread_self() };
    let _ = life
        .events
        .send(crate::lifecycle::ShardEvent::Started(id.0, thread));
    let (outbox, receivers) = mesh::join(id, meshes.0, meshes.1).await?;
    // Bound before the partitions open, as Kafka binds before loading logs: a taken
    // address fails the start at once, and early clients wait in the backlog.
    let listener =
        TcpListener::bind(args.listen).map_err(|e| format!("bind {}: {e}", args.listen))?;
    let shard = Shard::new(id, args.clone(), cluster_id, table.clone(), outbox);
    let controller = ctl.map(|parts| Controller::new(shard.clone(), parts));

    // Open the partitions this shard owns before taking any connection. One that cannot
    // be opened goes offline alone (logged by `open`); the others serve.
    let offline = open_owned_partitions(&shard, &table, &life.stop).await;

    shutdown::watch_stop_flag(&shard, life.stop.clone());

    // The group coordinator, before any request can reach it.
    shard.groups.start(Rc::downgrade(&shard));

    Inbox::new(shard.clone(), controller).start(receivers);

    start_log_maintenance(&shard);

    // Only now that every shard's mesh receivers run (each spawns them before waiting on
    // anyone) can announcements wait for their replies without a deadlock; they are
    // delivered before this shard reports ready.
    for tp in offline {
        shard.announce_offline(tp, true).await;
    }

    info!(shard = id.0, listen = %args.listen, "accepting connections");
    let _ = life.events.send(crate::lifecycle::ShardEvent::Ready(id.0));
    #[cfg(debug_assertions)]
    arm_test_panic(id);

    futures_lite::future::or(accept(&shard, listener), shard.shutdown.cancelled()).await;

    shutdown::stop(&shard).await
}

/// Opens every partition `table` places on this shard (until a stop is requested) and
/// returns those that could not be opened.
async fn open_owned_partitions(
    shard: &Rc<Shard>,
    table: &TopicTable,
    stop: &AtomicBool,
) -> Vec<TopicPartition> {
    let id = shard.id;
    let args = &shard.args;
    let mut offline = Vec::new();
    for meta in table.topics() {
        for (p, owner) in meta.owners.iter().enumerate() {
            if *owner == id && !stop.load(Ordering::SeqCst) {
                let opened = shard
                    .partitions
                    .open(args, meta.name.clone(), p as i32, &meta.configs)
                    .await;
                if opened.is_err() {
                    offline.push(TopicPartition {
                        topic: meta.name.clone(),
                        partition: p as i32,
                    });
                }
            }
        }
    }
    offline
}

/// Starts the periodic log work of this shard: retention (delete segments past
/// retention.ms / retention.bytes, roll by segment.ms) and compaction of
/// cleanup.policy=compact partitions, in slices between other work.
fn start_log_maintenance(shard: &Rc<Shard>) {
    let args = &shard.args;
    // Retention: delete segments past retention.ms / retention.bytes, roll by segment.ms.
    {
        let shard = shard.clone();
        let every = std::time::Duration::from_millis(args.log_retention_check_interval_ms);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                shard.partitions.enforce_retention().await;
            }
        })
        .detach();
    }

    // Compaction of cleanup.policy=compact partitions, in slices between other work.
    {
        let shard = shard.clone();
        let every = std::time::Duration::from_millis(args.log_cleaner_backoff_ms);
        glommio::spawn_local(async move {
            loop {
                glommio::timer::sleep(every).await;
                shard.partitions.compact().await;
            }
        })
        .detach();
    }
}

/// Accepts connections forever, each served in a task of its own. Admission
/// (max.connections, max.connections.per.ip) runs in the connection's own task, so a
/// slow answer from shard 0 never stalls accepting.
async fn accept(shard: &Rc<Shard>, listener: TcpListener) {
    loop {
        match listener.accept().await {
            Ok(stream) => {
                let conn = shard.next_conn_id();
                glommio::spawn_local(connection::admit_and_serve(shard.clone(), stream, conn))
                    .detach();
            }
            Err(e) => {
                warn!(shard = shard.id.0, error = %e, "accept failed");
                glommio::timer::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}
