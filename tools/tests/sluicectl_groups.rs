//! `sluicectl group list|describe|delete|reset-offsets` against a real broker: a group with
//! a live member (joined over a raw socket) and a group without members, checked through
//! the tool's own output and through the offsets the broker reports afterwards.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::Broker;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

fn sluicectl(broker: &Broker, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sluicectl"))
        .arg("--bootstrap")
        .arg(broker.bootstrap())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run sluicectl");
    {
        let mut input = child.stdin.take().unwrap();
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).unwrap();
        }
    }
    child.wait_with_output().unwrap()
}

fn ok(broker: &Broker, args: &[&str]) -> String {
    let out = sluicectl(broker, args, None);
    assert!(
        out.status.success(),
        "sluicectl {args:?} failed: {}\nbroker log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        broker.log()
    );
    String::from_utf8(out.stdout).unwrap()
}

fn fails(broker: &Broker, args: &[&str]) -> String {
    let out = sluicectl(broker, args, None);
    assert!(!out.status.success(), "sluicectl {args:?} should fail");
    String::from_utf8(out.stderr).unwrap()
}

/// Rows of a table printed by the tool: whitespace-separated columns of lines whose first
/// column is `first`.
fn rows(text: &str, first: &str) -> Vec<Vec<String>> {
    text.lines()
        .map(|l| l.split_whitespace().map(String::from).collect::<Vec<_>>())
        .filter(|cols| cols.first().is_some_and(|c| c == first))
        .collect()
}

/// (topic, partition) -> (current, log end, lag, consumer id) from `group describe`.
fn describe_rows(text: &str, group: &str) -> Vec<(String, String, String, String, String, String)> {
    rows(text, group)
        .into_iter()
        .filter(|r| r.len() >= 7)
        .map(|r| {
            (
                r[1].clone(),
                r[2].clone(),
                r[3].clone(),
                r[4].clone(),
                r[5].clone(),
                r[6].clone(),
            )
        })
        .collect()
}

fn row(
    t: &str,
    p: i32,
    current: &str,
    end: &str,
    lag: &str,
    member: &str,
) -> (String, String, String, String, String, String) {
    (
        t.to_string(),
        p.to_string(),
        current.to_string(),
        end.to_string(),
        lag.to_string(),
        member.to_string(),
    )
}

/// A minimal raw Kafka connection, enough to hold a group membership during the test.
struct Raw {
    stream: TcpStream,
    correlation_id: i32,
}

impl Raw {
    fn connect(broker: &Broker) -> Raw {
        let stream = TcpStream::connect(broker.addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            stream,
            correlation_id: 0,
        }
    }

    fn call<Req: Encodable + HeaderVersion, Resp: Decodable + HeaderVersion>(
        &mut self,
        key: ApiKey,
        version: i16,
        req: &Req,
    ) -> Resp {
        self.correlation_id += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation_id)
            .with_client_id(Some(StrBytes::from_static_str("raw-member")));
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        header
            .encode(&mut buf, Req::header_version(version))
            .unwrap();
        req.encode(&mut buf, version).unwrap();
        let size = (buf.len() - 4) as i32;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        self.stream.write_all(&buf).unwrap();
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size).unwrap();
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        self.stream.read_exact(&mut body).unwrap();
        let mut body = Bytes::from(body);
        let h = ResponseHeader::decode(&mut body, Resp::header_version(version)).unwrap();
        assert_eq!(h.correlation_id, self.correlation_id);
        let resp = Resp::decode(&mut body, version).unwrap();
        assert_eq!(body.remaining(), 0);
        resp
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn versioned<T: Encodable>(msg: &T) -> Bytes {
    let mut b = BytesMut::new();
    b.put_i16(1);
    msg.encode(&mut b, 1).unwrap();
    b.freeze()
}

/// Joins `group` as its only member (consumer protocol, subscribed to `topic`), takes every
/// partition in `partitions`, and commits `committed` for partition 0. Returns the
/// connection (the membership lives as long as it does) and the member id.
fn live_member(
    broker: &Broker,
    group: &str,
    topic: &str,
    partitions: &[i32],
    committed: i64,
) -> (Raw, String) {
    let mut c = Raw::connect(broker);
    let subscription =
        versioned(&ConsumerProtocolSubscription::default().with_topics(vec![s(topic)]));
    let join = |member_id: &str| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_session_timeout_ms(60_000)
            .with_rebalance_timeout_ms(60_000)
            .with_member_id(s(member_id))
            .with_protocol_type(s("consumer"))
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(subscription.clone()),
            ])
    };
    let first: JoinGroupResponse = c.call(ApiKey::JoinGroup, 7, &join(""));
    let member_id = first.member_id.to_string();
    let joined: JoinGroupResponse = c.call(ApiKey::JoinGroup, 7, &join(&member_id));
    assert_eq!(joined.error_code, 0);
    let assignment = versioned(
        &ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
            consumer_protocol_assignment::TopicPartition::default()
                .with_topic(TopicName(s(topic)))
                .with_partitions(partitions.to_vec()),
        ]),
    );
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_protocol_type(Some(s("consumer")))
        .with_protocol_name(Some(s("range")))
        .with_assignments(vec![
            SyncGroupRequestAssignment::default()
                .with_member_id(s(&member_id))
                .with_assignment(assignment),
        ]);
    let synced: SyncGroupResponse = c.call(ApiKey::SyncGroup, 5, &sync);
    assert_eq!(synced.error_code, 0);
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(joined.generation_id)
        .with_member_id(s(&member_id))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(committed),
                ]),
        ]);
    let resp: OffsetCommitResponse = c.call(ApiKey::OffsetCommit, 8, &commit);
    assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    (c, member_id)
}

fn produce(broker: &Broker, topic: &str, partition: i32, count: usize) {
    let lines: String = (0..count).map(|i| format!("v{i}\n")).collect();
    let out = sluicectl(
        broker,
        &["produce", topic, "-p", &partition.to_string()],
        Some(&lines),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn group_commands_list_describe_reset_and_delete() {
    // Proves list (with --state), describe (offsets, log end, lag, members, assignments),
    // reset-offsets for every target (dry run changes nothing, --execute commits, refused
    // while the group has a member) and delete (refused for a group with members) against
    // a real broker, reading the effects back through describe.
    let broker = Broker::start_single_core();
    ok(&broker, &["topic", "create", "t", "--partitions", "3"]);
    produce(&broker, "t", 0, 10);
    produce(&broker, "t", 1, 5);

    // Offsets for a group that does not exist yet: --to-offset is clamped to each log.
    let plan = ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "idle",
            "--topic",
            "t",
            "--to-offset",
            "3",
            "--execute",
        ],
    );
    let planned: Vec<Vec<String>> = rows(&plan, "idle");
    assert_eq!(
        planned
            .iter()
            .map(|r| (r[2].as_str(), r[4].as_str()))
            .collect::<Vec<_>>(),
        vec![("0", "3"), ("1", "3"), ("2", "0")],
        "{plan}"
    );
    let described = ok(&broker, &["group", "describe", "idle"]);
    assert!(
        described.starts_with("GROUP idle STATE Empty"),
        "{described}"
    );
    assert_eq!(
        describe_rows(&described, "idle"),
        vec![
            row("t", 0, "3", "10", "7", "-"),
            row("t", 1, "3", "5", "2", "-"),
            row("t", 2, "0", "0", "0", "-"),
        ],
        "{described}"
    );

    // A dry run prints the plan and commits nothing.
    let plan = ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "idle",
            "--all-topics",
            "--to-earliest",
        ],
    );
    assert_eq!(
        rows(&plan, "idle")
            .iter()
            .map(|r| (r[3].as_str(), r[4].as_str()))
            .collect::<Vec<_>>(),
        vec![("3", "0"), ("3", "0"), ("0", "0")],
        "{plan}"
    );
    assert_eq!(
        describe_rows(&ok(&broker, &["group", "describe", "idle"]), "idle")[0].2,
        "3"
    );

    // --to-latest for one chosen partition only.
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "idle",
            "--topic",
            "t:0",
            "--to-latest",
            "--execute",
        ],
    );
    let d = describe_rows(&ok(&broker, &["group", "describe", "idle"]), "idle");
    assert_eq!((d[0].2.as_str(), d[1].2.as_str()), ("10", "3"));
    // By time: before every record is the log start; after every record is the log end.
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "idle",
            "--all-topics",
            "--to-timestamp",
            "0",
            "--execute",
        ],
    );
    let d = describe_rows(&ok(&broker, &["group", "describe", "idle"]), "idle");
    assert_eq!((d[0].2.as_str(), d[1].2.as_str()), ("0", "0"));
    ok(
        &broker,
        &[
            "group",
            "reset-offsets",
            "idle",
            "--topic",
            "t:0,1",
            "--to-datetime",
            "2100-01-01T00:00:00.000",
            "--execute",
        ],
    );
    let d = describe_rows(&ok(&broker, &["group", "describe", "idle"]), "idle");
    assert_eq!(
        (d[0].2.as_str(), d[1].2.as_str(), d[1].4.as_str()),
        ("10", "5", "0")
    );

    // A group with a live member.
    let (_member_conn, member_id) = live_member(&broker, "live", "t", &[0, 1, 2], 4);
    let all = ok(&broker, &["group", "list"]);
    let listed: Vec<(String, String)> = all
        .lines()
        .skip(1)
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[0].to_string(), c[1].to_string())
        })
        .collect();
    assert_eq!(
        listed,
        vec![
            ("idle".into(), "Empty".into()),
            ("live".into(), "Stable".into())
        ],
        "{all}"
    );
    let stable = ok(&broker, &["group", "list", "--state", "stable"]);
    assert_eq!(stable.lines().skip(1).count(), 1, "{stable}");
    assert!(stable.contains("live"), "{stable}");

    let described = ok(&broker, &["group", "describe", "live"]);
    assert!(
        described
            .starts_with("GROUP live STATE Stable PROTOCOL-TYPE consumer PROTOCOL range MEMBERS 1"),
        "{described}"
    );
    assert_eq!(
        describe_rows(&described, "live"),
        vec![
            row("t", 0, "4", "10", "6", &member_id),
            row("t", 1, "-", "5", "-", &member_id),
            row("t", 2, "-", "0", "-", &member_id),
        ],
        "{described}"
    );
    let members = rows(&described, &member_id);
    let member = members.last().expect("member row");
    assert_eq!(member[1], "/127.0.0.1", "{described}");
    assert_eq!(member[2], "raw-member", "{described}");
    assert_eq!(member[3], "3", "{described}");
    assert_eq!(member[4], "t:0,1,2", "{described}");

    // Active groups: reset --execute and delete are refused and change nothing.
    let err = fails(
        &broker,
        &[
            "group",
            "reset-offsets",
            "live",
            "--topic",
            "t",
            "--to-earliest",
            "--execute",
        ],
    );
    assert!(
        err.contains("can only be reset if the group 'live' is inactive"),
        "{err}"
    );
    let err = fails(&broker, &["group", "delete", "live"]);
    assert!(err.contains("NonEmptyGroup"), "{err}");
    let d = describe_rows(&ok(&broker, &["group", "describe", "live"]), "live");
    assert_eq!(d[0].2, "4");

    // Deleting the idle group removes it and its offsets.
    assert_eq!(
        ok(&broker, &["group", "delete", "idle"]).trim(),
        "deleted idle"
    );
    let all = ok(&broker, &["group", "list"]);
    assert!(!all.contains("idle"), "{all}");
    let err = fails(&broker, &["group", "describe", "idle"]);
    assert!(err.contains("does not exist"), "{err}");
    let err = fails(&broker, &["group", "delete", "idle"]);
    assert!(err.contains("GroupIdNotFound"), "{err}");
}
