//! librdkafka's group administration against the real 2-shard broker: the group list
//! (ListGroups to every broker, then DescribeGroups) shows a live consumer group with its
//! state, protocol and members, and the admin client's DeleteGroups refuses a group with
//! members, reports a missing one, and deletes the group once its members are gone.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::Broker;
use common::group::{Ledger, Member, complete, produce_values, wait_consumed, wait_for};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;

const TIMEOUT: Duration = Duration::from_secs(60);

/// (state, protocol type, protocol, [(client id, client host, has assignment)]) of `group`
/// as librdkafka's group list reports it.
type Listed = (String, String, String, Vec<(String, String, bool)>);

fn listed(consumer: &BaseConsumer, group: Option<&str>) -> Vec<(String, Listed)> {
    let list = consumer
        .fetch_group_list(group, Duration::from_secs(10))
        .expect("group list");
    let mut out: Vec<(String, Listed)> = list
        .groups()
        .iter()
        .map(|g| {
            let mut members: Vec<(String, String, bool)> = g
                .members()
                .iter()
                .map(|m| {
                    (
                        m.client_id().to_string(),
                        m.client_host().to_string(),
                        m.assignment().is_some_and(|a| !a.is_empty()),
                    )
                })
                .collect();
            members.sort();
            (
                g.name().to_string(),
                (
                    g.state().to_string(),
                    g.protocol_type().to_string(),
                    g.protocol().to_string(),
                    members,
                ),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn rdkafka_lists_describes_and_deletes_groups() {
    // Proves librdkafka's group list finds a live two-member group (coordinated on
    // whichever shard) as Stable with protocol type consumer, the chosen assignor and
    // both members with their client ids, host and assignments; DeleteGroups answers
    // NON_EMPTY_GROUP for it and GROUP_ID_NOT_FOUND for an unknown group, and deletes it
    // after its members leave, after which it is no longer listed.
    let broker = Broker::start_with(&["--num-partitions", "6"]);
    let bootstrap = broker.bootstrap();
    produce_values(&bootstrap, "ta", 0, 60);
    let ledger = Arc::new(Ledger::default());
    let members: Vec<Member> = (0..2)
        .map(|i| Member::start(i, &bootstrap, "live", "ta", &[], ledger.clone()))
        .collect();
    wait_consumed(&ledger, 60, TIMEOUT, || broker.log());
    let refs: Vec<&Member> = members.iter().collect();
    wait_for(
        &refs,
        TIMEOUT,
        "all partitions assigned",
        || broker.log(),
        |a| complete(a, 6),
    );

    let observer = common::consumer(&bootstrap);
    let expected_live: Listed = (
        "Stable".into(),
        "consumer".into(),
        "range".into(),
        vec![
            ("member-0".into(), "/127.0.0.1".into(), true),
            ("member-1".into(), "/127.0.0.1".into(), true),
        ],
    );
    let all = listed(&observer, None);
    let live = all.iter().find(|(name, _)| name == "live");
    assert_eq!(live.map(|(_, l)| l), Some(&expected_live), "{all:?}");
    assert_eq!(
        listed(&observer, Some("live")),
        vec![("live".to_string(), expected_live)]
    );

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &bootstrap)
        .create()
        .unwrap();
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let results =
        futures_lite::future::block_on(admin.delete_groups(&["live", "nope"], &opts)).unwrap();
    assert_eq!(
        results,
        vec![
            Err(("live".to_string(), RDKafkaErrorCode::NonEmptyGroup)),
            Err(("nope".to_string(), RDKafkaErrorCode::GroupIdNotFound)),
        ]
    );

    for m in members {
        m.close();
    }
    // Both members left: the group is Empty with its committed offsets, and deletable.
    let start = Instant::now();
    loop {
        let state = listed(&observer, Some("live"))
            .first()
            .map(|(_, l)| l.0.clone());
        if state.as_deref() == Some("Empty") {
            break;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "group never became Empty: {state:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let results = futures_lite::future::block_on(admin.delete_groups(&["live"], &opts)).unwrap();
    assert_eq!(results, vec![Ok("live".to_string())]);
    let all = listed(&observer, None);
    assert!(!all.iter().any(|(name, _)| name == "live"), "{all:?}");
}
