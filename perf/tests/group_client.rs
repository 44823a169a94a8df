//! `sluice_net::client::group` against a real `sluice` broker: members join through
//! FindCoordinator, JoinGroup (member id required first) and SyncGroup with the range
//! assignor, heartbeat, commit and read back offsets, and rebalance when one leaves.

mod common;

use std::collections::BTreeSet;
use std::rc::Rc;
use std::time::Duration;

use common::Broker;
use sluice_net::client::admin::NewTopic;
use sluice_net::client::group::{Assignment, GroupMember, GroupSettings};
use sluice_net::client::{Connection, ConnectionConfig};

/// Runs `body` on a fresh executor; a body still running after two minutes fails the test
/// (with the broker log printed by the caller) instead of hanging it.
fn on_executor<T: 'static>(body: impl std::future::Future<Output = T> + 'static) -> T {
    glommio::LocalExecutorBuilder::default()
        .make()
        .expect("executor")
        .run(glommio::future::timeout(Duration::from_secs(120), body))
        .expect("the group exchange finished within 120 s")
}

async fn create_topic(bootstrap: &str, name: &str, partitions: i32) {
    let mut connection = Connection::connect(bootstrap, ConnectionConfig::default())
        .await
        .unwrap();
    let response = connection
        .create_topics(
            &[NewTopic {
                name: name.into(),
                partitions,
                replication_factor: 1,
                configs: Vec::new(),
            }],
            false,
        )
        .await
        .unwrap();
    assert_eq!(response.topics[0].error_code, 0, "{response:?}");
}

fn settings(group: &str, topic: &str) -> GroupSettings {
    let mut settings = GroupSettings::new(group, &[topic]);
    settings.session_timeout_ms = 10_000;
    settings.rebalance_timeout_ms = 20_000;
    settings.heartbeat_interval = Duration::from_millis(200);
    settings
}

fn partitions_of(assignments: &[&Assignment]) -> Vec<i32> {
    let mut all: Vec<i32> = assignments
        .iter()
        .flat_map(|a| a.topic_partitions().map(|(_, p)| p))
        .collect();
    all.sort_unstable();
    all
}

#[test]
fn three_members_split_partitions_commit_and_rebalance_after_a_leave() {
    // Proves: three members of one group get disjoint range assignments covering all six
    // partitions in one generation with exactly one leader; heartbeats are answered; offsets
    // committed by members read back through OffsetFetch (uncommitted ones read as None);
    // after one member leaves, the others are told by their heartbeats, rejoin into a newer
    // generation and split all six partitions between them; the committed offsets survive.
    let broker = Broker::start_single_core();
    let bootstrap = broker.bootstrap();
    let log = broker.dir.path().to_path_buf();
    let outcome = std::panic::catch_unwind(|| {
        on_executor(async move {
            create_topic(&bootstrap, "g-topic", 6).await;
            let mut members = Vec::new();
            for _ in 0..3 {
                members.push(Rc::new(
                    GroupMember::connect(&bootstrap, settings("g1", "g-topic"))
                        .await
                        .unwrap(),
                ));
            }
            let joins: Vec<_> = members
                .iter()
                .map(|m| {
                    let m = m.clone();
                    glommio::spawn_local(async move { m.join().await })
                })
                .collect();
            let mut first = Vec::new();
            for join in joins {
                first.push(join.await.unwrap());
            }
            let generation = first[0].generation_id;
            assert!(
                first.iter().all(|a| a.generation_id == generation),
                "{first:?}"
            );
            assert_eq!(first.iter().filter(|a| a.leader).count(), 1, "{first:?}");
            assert_eq!(
                partitions_of(&first.iter().collect::<Vec<_>>()),
                (0..6).collect::<Vec<_>>()
            );
            assert!(
                first
                    .iter()
                    .all(|a| a.partitions.len() == 1 && a.partitions[0].1.len() == 2)
            );
            let ids: BTreeSet<String> = first.iter().map(|a| a.member_id.clone()).collect();
            assert_eq!(ids.len(), 3);

            // Heartbeats keep flowing and say the generation is current.
            for m in &members {
                assert!(m.heartbeat().await.unwrap());
            }
            glommio::timer::Timer::new(Duration::from_millis(700)).await;
            assert!(
                members
                    .iter()
                    .all(|m| m.heartbeats() >= 2 && !m.rebalance_needed())
            );

            // Each member commits its partitions at 100 + partition.
            for (m, a) in members.iter().zip(&first) {
                let offsets: Vec<(&str, i32, i64)> = a
                    .topic_partitions()
                    .map(|(t, p)| (t, p, 100 + i64::from(p)))
                    .collect();
                m.commit(&offsets).await.unwrap();
            }
            let asked: Vec<(&str, i32)> = (0..7).map(|p| ("g-topic", p)).collect();
            let committed = members[0].committed(&asked).await.unwrap();
            let expected: Vec<Option<i64>> = (0..6).map(|p| Some(100 + p)).chain([None]).collect();
            assert_eq!(committed, expected);

            // The member holding partition 0 leaves; the other two rebalance.
            let leaver = first
                .iter()
                .position(|a| a.partitions[0].1.contains(&0))
                .unwrap();
            let leaving = members.remove(leaver);
            let leaving = Rc::try_unwrap(leaving).ok().expect("only reference");
            leaving.leave().await.unwrap();
            let rejoins: Vec<_> = members
                .iter()
                .map(|m| {
                    let m = m.clone();
                    glommio::spawn_local(async move {
                        glommio::future::timeout(Duration::from_secs(10), async {
                            m.rebalance_signalled().await;
                            m.join().await
                        })
                        .await
                    })
                })
                .collect();
            let mut second = Vec::new();
            for rejoin in rejoins {
                second.push(
                    rejoin
                        .await
                        .expect("rebalance noticed in time")
                        .expect("rejoined"),
                );
            }
            assert!(
                second.iter().all(|a| a.generation_id > generation),
                "{second:?}"
            );
            assert_eq!(second[0].generation_id, second[1].generation_id);
            assert_eq!(
                partitions_of(&second.iter().collect::<Vec<_>>()),
                (0..6).collect::<Vec<_>>()
            );
            assert!(
                second.iter().all(|a| a.partitions[0].1.len() == 3),
                "{second:?}"
            );
            let committed = members[1].committed(&asked[..6]).await.unwrap();
            assert_eq!(committed, expected[..6]);
            for m in members {
                Rc::try_unwrap(m)
                    .ok()
                    .expect("only reference")
                    .leave()
                    .await
                    .unwrap();
            }
        })
    });
    if let Err(panic) = outcome {
        let text = std::fs::read_to_string(log.join("broker.log")).unwrap_or_default();
        eprintln!("broker log:\n{text}");
        std::panic::resume_unwind(panic);
    }
}
