//! `sluicectl group list|describe|delete|reset-offsets`: consumer group administration in
//! the manner of Kafka's consumer-groups tool, over `sluice-net`'s client. Requests about
//! one group go to its coordinator (found with FindCoordinator); ListGroups goes to every
//! broker in the cluster's metadata. reset-offsets only prints its plan unless
//! `--execute` is given, and refuses to execute while the group has members, as Kafka does.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetFetchRequest,
};
use sluice_net::client::Connection;
use sluice_net::client::admin::{self, error_name};
use sluice_net::client::group::find_coordinator;
use sluice_net::consumer_protocol::{CONSUMER_PROTOCOL_TYPE, decode_assignment};

use crate::admin::{BrokerArgs, connect, connect_to, list_offsets, on_executor, partitions_of};

#[derive(Subcommand, Debug)]
pub enum GroupCommand {
    /// List groups (all brokers), optionally only those in the given states.
    List {
        /// Only groups in this state (Empty, Stable, PreparingRebalance, ...); repeatable.
        #[arg(long = "state")]
        states: Vec<String>,
    },
    /// Members, assignments, committed offsets, log end offsets and lag per partition.
    Describe { group: String },
    /// Delete groups that have no members, with their committed offsets.
    Delete {
        #[arg(required = true)]
        groups: Vec<String>,
    },
    /// Print (default) or --execute a reset of a group's committed offsets.
    ResetOffsets(ResetArgs),
}

#[derive(Args, Debug)]
pub struct ResetArgs {
    pub group: String,
    /// TOPIC (every partition) or TOPIC:P,P,...; repeatable.
    #[arg(long = "topic", required_unless_present = "all_topics")]
    pub topics: Vec<String>,
    /// Every topic the group has committed offsets for.
    #[arg(long, conflicts_with = "topics")]
    pub all_topics: bool,
    #[command(flatten)]
    pub target: ResetTarget,
    /// Commit the new offsets; without it the plan is only printed.
    #[arg(long)]
    pub execute: bool,
    /// Only print the plan (the default).
    #[arg(long, conflicts_with = "execute")]
    pub dry_run: bool,
}

/// Where the committed offsets go; exactly one.
#[derive(Args, Debug)]
#[group(required = true, multiple = false)]
pub struct ResetTarget {
    /// The log start offset.
    #[arg(long)]
    pub to_earliest: bool,
    /// The log end offset.
    #[arg(long)]
    pub to_latest: bool,
    /// This offset, moved into [log start, log end] when outside.
    #[arg(long)]
    pub to_offset: Option<i64>,
    /// The first offset at or after this time: YYYY-MM-DDTHH:mm:SS[.sss] (UTC unless an
    /// offset such as Z or +01:00 follows).
    #[arg(long)]
    pub to_datetime: Option<String>,
    /// The first offset at or after this time in ms since the epoch.
    #[arg(long)]
    pub to_timestamp: Option<i64>,
}

pub fn run(broker: BrokerArgs, command: GroupCommand) -> Result<()> {
    on_executor(async move {
        match command {
            GroupCommand::List { states } => list(&broker, &states).await,
            GroupCommand::Describe { group } => describe(&broker, &group).await,
            GroupCommand::Delete { groups } => delete(&broker, &groups).await,
            GroupCommand::ResetOffsets(args) => reset_offsets(&broker, args).await,
        }
    })
}

fn version(c: &Connection, api: ApiKey) -> Result<i16> {
    c.versions()
        .version(api)
        .with_context(|| format!("the broker does not support {api:?}"))
}

/// How long to wait for a group's coordinator to become available.
const COORDINATOR_WAIT: Duration = Duration::from_secs(5);

/// A connection to the coordinator of `group`.
async fn coordinator(broker: &BrokerArgs, group: &str) -> Result<Connection> {
    let mut c = connect(broker).await?;
    let addr = find_coordinator(&mut c, group, COORDINATOR_WAIT)
        .await
        .with_context(|| format!("finding the coordinator of {group}"))?;
    if addr == broker.bootstrap {
        return Ok(c);
    }
    connect_to(&addr).await
}

async fn describe_group(c: &mut Connection, group: &str) -> Result<DescribedGroup> {
    let resp = c
        .call::<DescribeGroupsRequest>(&admin::describe_groups_request(&[group]))
        .await?;
    let g = resp
        .groups
        .into_iter()
        .next()
        .context("DescribeGroups answered no group")?;
    if g.error_code == ResponseError::GroupIdNotFound.code() || g.group_state.as_str() == "Dead" {
        bail!("consumer group '{group}' does not exist");
    }
    if g.error_code != 0 {
        bail!("describing {group}: {}", error_name(g.error_code));
    }
    Ok(g)
}

/// Committed offsets of `group`: all of them, or those of `partitions`; absent ones omitted.
async fn committed(
    c: &mut Connection,
    group: &str,
    partitions: Option<&[(String, i32)]>,
) -> Result<BTreeMap<(String, i32), i64>> {
    let by_topic: Option<Vec<(&str, Vec<i32>)>> = partitions.map(|ps| {
        let mut m: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (t, p) in ps {
            m.entry(t.as_str()).or_default().push(*p);
        }
        m.into_iter().collect()
    });
    let resp = c
        .call::<OffsetFetchRequest>(&admin::offset_fetch_request(group, by_topic.as_deref()))
        .await?;
    if resp.error_code != 0 {
        bail!(
            "fetching offsets of {group}: {}",
            error_name(resp.error_code)
        );
    }
    let mut out = BTreeMap::new();
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                bail!(
                    "offset of {}:{}: {}",
                    t.name.0,
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
            if p.committed_offset >= 0 {
                out.insert(
                    (t.name.0.to_string(), p.partition_index),
                    p.committed_offset,
                );
            }
        }
    }
    Ok(out)
}

/// ListOffsets at `timestamp` for every partition, topic by topic.
async fn offsets_at(
    c: &mut Connection,
    partitions: &BTreeSet<(String, i32)>,
    timestamp: i64,
) -> Result<BTreeMap<(String, i32), i64>> {
    let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in partitions {
        by_topic.entry(t.as_str()).or_default().push(*p);
    }
    let mut out = BTreeMap::new();
    for (topic, ps) in by_topic {
        let offsets = list_offsets(c, topic, &ps, timestamp).await?;
        for (p, o) in ps.into_iter().zip(offsets) {
            out.insert((topic.to_string(), p), o);
        }
    }
    Ok(out)
}

async fn list(broker: &BrokerArgs, states: &[String]) -> Result<()> {
    let mut c = connect(broker).await?;
    let metadata = c.metadata(Some(&[]), false).await?;
    let mut groups: BTreeMap<String, (String, String)> = BTreeMap::new();
    let mut addrs: Vec<String> = metadata
        .brokers
        .iter()
        .map(|b| format!("{}:{}", b.host, b.port))
        .collect();
    if addrs.is_empty() {
        addrs.push(broker.bootstrap.clone());
    }
    for addr in addrs {
        let mut b = if addr == broker.bootstrap {
            connect(broker).await?
        } else {
            connect_to(&addr).await?
        };
        let v = version(&b, ApiKey::ListGroups)?;
        let resp = b
            .call::<ListGroupsRequest>(&admin::list_groups_request(states, v))
            .await?;
        if resp.error_code != 0 {
            bail!("listing groups on {addr}: {}", error_name(resp.error_code));
        }
        for g in resp.groups {
            let state = if v >= 4 {
                g.group_state.to_string()
            } else {
                "-".to_string()
            };
            groups.insert(
                g.group_id.0.to_string(),
                (state, g.protocol_type.to_string()),
            );
        }
    }
    println!("{:<40} {:<20} PROTOCOL-TYPE", "GROUP", "STATE");
    for (id, (state, protocol_type)) in groups {
        // Brokers older than ListGroups v4 ignore the filter; the states they report are unknown.
        if !states.is_empty()
            && state != "-"
            && !states.iter().any(|s| s.eq_ignore_ascii_case(&state))
        {
            continue;
        }
        let protocol_type = if protocol_type.is_empty() {
            "-"
        } else {
            &protocol_type
        };
        println!("{id:<40} {state:<20} {protocol_type}");
    }
    Ok(())
}

/// One member of a described group, with its decoded assignment.
struct Member {
    id: String,
    host: String,
    client_id: String,
    assigned: Vec<(String, i32)>,
}

fn members_of(g: &DescribedGroup) -> Vec<Member> {
    let consumer = g.protocol_type.as_str() == CONSUMER_PROTOCOL_TYPE;
    g.members
        .iter()
        .map(|m| {
            let assigned = if consumer && !m.member_assignment.is_empty() {
                decode_assignment(m.member_assignment.clone())
                    .map(|(_, a)| {
                        a.assigned_partitions
                            .iter()
                            .flat_map(|tp| {
                                tp.partitions.iter().map(|p| (tp.topic.0.to_string(), *p))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                Vec::new()
            };
            Member {
                id: m.member_id.to_string(),
                host: m.client_host.to_string(),
                client_id: m.client_id.to_string(),
                assigned,
            }
        })
        .collect()
}

fn or_dash(v: Option<i64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

async fn describe(broker: &BrokerArgs, group: &str) -> Result<()> {
    let mut c = coordinator(broker, group).await?;
    let g = describe_group(&mut c, group).await?;
    let offsets = committed(&mut c, group, None).await?;
    let members = members_of(&g);
    let mut owner: BTreeMap<(String, i32), &Member> = BTreeMap::new();
    for m in &members {
        for tp in &m.assigned {
            owner.insert(tp.clone(), m);
        }
    }
    let partitions: BTreeSet<(String, i32)> = offsets.keys().chain(owner.keys()).cloned().collect();
    let mut data = connect(broker).await?;
    let ends = offsets_at(&mut data, &partitions, admin::LATEST_TIMESTAMP)
        .await
        .unwrap_or_default();
    let protocol_type = if g.protocol_type.is_empty() {
        "-"
    } else {
        g.protocol_type.as_str()
    };
    let protocol = if g.protocol_data.is_empty() {
        "-"
    } else {
        g.protocol_data.as_str()
    };
    println!(
        "GROUP {group} STATE {} PROTOCOL-TYPE {protocol_type} PROTOCOL {protocol} MEMBERS {}",
        g.group_state,
        members.len()
    );
    println!();
    println!(
        "{:<24} {:<24} {:>9} {:>15} {:>15} {:>8} {:<40} {:<16} CLIENT-ID",
        "GROUP",
        "TOPIC",
        "PARTITION",
        "CURRENT-OFFSET",
        "LOG-END-OFFSET",
        "LAG",
        "CONSUMER-ID",
        "HOST"
    );
    for tp in &partitions {
        let current = offsets.get(tp).copied();
        let end = ends.get(tp).copied();
        let lag = current.zip(end).map(|(c, e)| (e - c).max(0));
        let (id, host, client) = owner.get(tp).map_or(("-", "-", "-"), |m| {
            (m.id.as_str(), m.host.as_str(), m.client_id.as_str())
        });
        println!(
            "{group:<24} {:<24} {:>9} {:>15} {:>15} {:>8} {id:<40} {host:<16} {client}",
            tp.0,
            tp.1,
            or_dash(current),
            or_dash(end),
            or_dash(lag)
        );
    }
    if !members.is_empty() {
        println!();
        println!(
            "{:<40} {:<16} {:<24} {:>11} ASSIGNMENT",
            "CONSUMER-ID", "HOST", "CLIENT-ID", "#PARTITIONS"
        );
        for m in &members {
            let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
            for (t, p) in &m.assigned {
                by_topic.entry(t.as_str()).or_default().push(*p);
            }
            let assignment: Vec<String> = by_topic
                .iter()
                .map(|(t, ps)| {
                    let ps: Vec<String> = ps.iter().map(|p| p.to_string()).collect();
                    format!("{t}:{}", ps.join(","))
                })
                .collect();
            let assignment = if assignment.is_empty() {
                "-".to_string()
            } else {
                assignment.join(" ")
            };
            println!(
                "{:<40} {:<16} {:<24} {:>11} {assignment}",
                m.id,
                m.host,
                m.client_id,
                m.assigned.len()
            );
        }
    }
    Ok(())
}

async fn delete(broker: &BrokerArgs, groups: &[String]) -> Result<()> {
    let mut failed = 0;
    for group in groups {
        let mut c = coordinator(broker, group).await?;
        let resp = c
            .call::<DeleteGroupsRequest>(&admin::delete_groups_request(&[group.as_str()]))
            .await?;
        let code = resp.results.first().map_or(0, |r| r.error_code);
        if code == 0 {
            println!("deleted {group}");
        } else {
            failed += 1;
            eprintln!("deleting {group}: {}", error_name(code));
        }
    }
    if failed > 0 {
        bail!("{failed} of {} groups not deleted", groups.len());
    }
    Ok(())
}

/// `TOPIC` or `TOPIC:P,P,...`.
fn parse_topic_spec(spec: &str) -> Result<(String, Option<Vec<i32>>)> {
    let Some((topic, parts)) = spec.split_once(':') else {
        return Ok((spec.to_string(), None));
    };
    let parts = parts
        .split(',')
        .map(|p| {
            p.trim()
                .parse::<i32>()
                .with_context(|| format!("partition {p:?} in --topic {spec:?}"))
        })
        .collect::<Result<Vec<i32>>>()?;
    Ok((topic.to_string(), Some(parts)))
}

/// `YYYY-MM-DDTHH:mm:SS[.sss]` with an optional offset (`Z`, `+01:00`); UTC without one.
fn parse_datetime_ms(text: &str) -> Result<i64> {
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    let civil: jiff::civil::DateTime = text
        .parse()
        .with_context(|| format!("--to-datetime {text:?}: expected YYYY-MM-DDTHH:mm:SS.sss"))?;
    let zoned = civil
        .to_zoned(jiff::tz::TimeZone::UTC)
        .with_context(|| format!("--to-datetime {text:?}"))?;
    Ok(zoned.timestamp().as_millisecond())
}

/// The partitions `--all-topics` or `--topic` name: every partition the group committed
/// for, or the named topics' partitions (all, or those listed), each checked to exist.
async fn partitions_to_reset(
    coordinator: &mut Connection,
    data: &mut Connection,
    args: &ResetArgs,
) -> Result<BTreeSet<(String, i32)>> {
    let group = args.group.as_str();
    let partitions: BTreeSet<(String, i32)> = if args.all_topics {
        committed(coordinator, group, None)
            .await?
            .into_keys()
            .collect()
    } else {
        let mut out = BTreeSet::new();
        for spec in &args.topics {
            let (topic, chosen) = parse_topic_spec(spec)?;
            let metadata = data.metadata(Some(&[topic.as_str()]), false).await?;
            let existing = partitions_of(&metadata, &topic)?;
            let chosen = chosen.unwrap_or_else(|| existing.clone());
            for p in chosen {
                if !existing.contains(&p) {
                    bail!("topic {topic} has no partition {p}");
                }
                out.insert((topic.clone(), p));
            }
        }
        out
    };
    if partitions.is_empty() {
        bail!("no partitions to reset for group {group}");
    }
    Ok(partitions)
}

/// The offset each partition is reset to under `--to-*`.
async fn target_offsets(
    data: &mut Connection,
    partitions: &BTreeSet<(String, i32)>,
    t: &ResetTarget,
) -> Result<BTreeMap<(String, i32), i64>> {
    if t.to_earliest {
        return offsets_at(data, partitions, admin::EARLIEST_TIMESTAMP).await;
    }
    if t.to_latest {
        return offsets_at(data, partitions, admin::LATEST_TIMESTAMP).await;
    }
    if let Some(offset) = t.to_offset {
        let starts = offsets_at(data, partitions, admin::EARLIEST_TIMESTAMP).await?;
        let ends = offsets_at(data, partitions, admin::LATEST_TIMESTAMP).await?;
        return Ok(partitions
            .iter()
            .map(|tp| {
                (
                    tp.clone(),
                    offset.clamp(starts[tp], ends[tp].max(starts[tp])),
                )
            })
            .collect());
    }
    let ms = match (&t.to_datetime, t.to_timestamp) {
        (Some(text), _) => parse_datetime_ms(text)?,
        (None, Some(ms)) => ms,
        (None, None) => bail!("choose a --to-* target"),
    };
    let at = offsets_at(data, partitions, ms).await?;
    let ends = offsets_at(data, partitions, admin::LATEST_TIMESTAMP).await?;
    // No record at or after the time: the log end, as Kafka's tool does.
    Ok(at
        .into_iter()
        .map(|(tp, o)| {
            let o = if o < 0 { ends[&tp] } else { o };
            (tp, o)
        })
        .collect())
}

fn print_reset_plan(
    group: &str,
    current: &BTreeMap<(String, i32), i64>,
    new: &BTreeMap<(String, i32), i64>,
) {
    println!(
        "{:<24} {:<24} {:>9} {:>15} {:>15}",
        "GROUP", "TOPIC", "PARTITION", "CURRENT-OFFSET", "NEW-OFFSET"
    );
    for (tp, o) in new {
        println!(
            "{group:<24} {:<24} {:>9} {:>15} {:>15}",
            tp.0,
            tp.1,
            or_dash(current.get(tp).copied()),
            o
        );
    }
}

async fn reset_offsets(broker: &BrokerArgs, args: ResetArgs) -> Result<()> {
    let group = args.group.as_str();
    let mut c = coordinator(broker, group).await?;
    // A group that does not exist yet may be given offsets, as Kafka allows.
    let state = match describe_group(&mut c, group).await {
        Ok(g) => g.group_state.to_string(),
        Err(_) => "Dead".to_string(),
    };
    let active = !matches!(state.as_str(), "Empty" | "Dead");
    let mut data = connect(broker).await?;
    let partitions = partitions_to_reset(&mut c, &mut data, &args).await?;
    let list: Vec<(String, i32)> = partitions.iter().cloned().collect();
    let current = committed(&mut c, group, Some(&list)).await?;
    let new = target_offsets(&mut data, &partitions, &args.target).await?;
    print_reset_plan(group, &current, &new);
    if !args.execute {
        if active {
            eprintln!(
                "note: group '{group}' is {state}; --execute is refused until it has no members"
            );
        }
        eprintln!("dry run: nothing committed; pass --execute to apply");
        return Ok(());
    }
    if active {
        bail!(
            "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
        );
    }
    let offsets: Vec<(&str, i32, i64)> =
        new.iter().map(|((t, p), o)| (t.as_str(), *p, *o)).collect();
    let resp = c
        .call::<OffsetCommitRequest>(&admin::offset_commit_request(group, &offsets))
        .await?;
    for t in &resp.topics {
        for p in &t.partitions {
            if p.error_code != 0 {
                bail!(
                    "committing {}:{}: {}",
                    t.name.0,
                    p.partition_index,
                    error_name(p.error_code)
                );
            }
        }
    }
    eprintln!("committed {} offsets for group {group}", offsets.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_specs_and_datetimes_parse() {
        // Proves --topic accepts TOPIC and TOPIC:P,P and --to-datetime reads Kafka's
        // format with and without a zone offset.
        assert_eq!(parse_topic_spec("t").unwrap(), ("t".to_string(), None));
        assert_eq!(
            parse_topic_spec("t:0,2").unwrap(),
            ("t".to_string(), Some(vec![0, 2]))
        );
        assert!(parse_topic_spec("t:x").is_err());
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:01.500").unwrap(), 1_500);
        assert_eq!(parse_datetime_ms("1970-01-01T00:00:01").unwrap(), 1_000);
        assert_eq!(parse_datetime_ms("1970-01-01T01:00:00+01:00").unwrap(), 0);
        assert_eq!(
            parse_datetime_ms("2026-11-22T07:00:00Z").unwrap(),
            1_795_330_800_000
        );
        assert!(parse_datetime_ms("yesterday").is_err());
    }
}
