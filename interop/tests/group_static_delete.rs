//! librdkafka's flow for deleting a group of static members (KIP-345) against the real
//! 2-shard broker: the consumers close without leaving, the admin waits out
//! session.timeout.ms plus one second, and DeleteGroups then succeeds.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Broker;
use common::group::{Ledger, Member, complete, produce_values, wait_for};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;

const SESSION_TIMEOUT: Duration = Duration::from_secs(6);

#[test]
fn static_group_is_deletable_after_the_session_timeout() {
    // Proves that three static consumers that received their partitions and then closed
    // (no LeaveGroup, as static members do) are expired by their session timeout, so the
    // admin client's DeleteGroups succeeds one second after it instead of answering
    // NON_EMPTY_GROUP.
    let broker = Broker::start_with(&["--num-partitions", "3"]);
    let bootstrap = broker.bootstrap();
    produce_values(&bootstrap, "static-del", 0, 1);
    let ledger = Arc::new(Ledger::default());
    let instances = ["sd-0", "sd-1", "sd-2"];
    let members: Vec<Member> = (0..3)
        .map(|i| {
            Member::start(
                i,
                &bootstrap,
                "static-del-g",
                "static-del",
                &[
                    ("group.instance.id", instances[i]),
                    ("session.timeout.ms", "6000"),
                ],
                ledger.clone(),
            )
        })
        .collect();
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(
        &refs,
        Duration::from_secs(60),
        "static members settle",
        &broker,
        |a| complete(a, 3),
    );
    for m in members {
        m.close();
    }
    let closed_at = Instant::now();

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    std::thread::sleep(
        (SESSION_TIMEOUT + Duration::from_secs(1)).saturating_sub(closed_at.elapsed()),
    );
    let results =
        futures_lite::future::block_on(admin.delete_groups(&["static-del-g"], &opts)).unwrap();
    assert_eq!(
        results,
        vec![Ok("static-del-g".to_string())],
        "{}",
        broker.log()
    );
}
