//! Broker configuration: the `sluice` command line (every flag also from a `SLUICE_*`
//! environment variable) and the topic-level configs the engine honours, with their
//! broker-wide defaults. Parsed once in `main`, then shared read-only by every shard.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{ArgAction, Parser};

/// Command line of the `sluice` broker. Names follow Kafka's broker configs with dots
/// turned into dashes (`num.partitions` is `--num-partitions`).
#[derive(Parser, Debug, Clone)]
#[command(
    name = "sluice",
    version,
    about = "Sluice: a Kafka-compatible event-streaming broker (thread-per-core, io_uring).",
    long_about = "Sluice speaks the Kafka protocol: point any Kafka client at --listen.\n\
                  Every flag can also be set through the environment variable shown beside it."
)]
pub struct BrokerArgs {
    /// Directory holding topic metadata and one sub-directory per partition (Kafka: log.dirs).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,

    /// Address the client listener binds (Kafka: listeners).
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:9092")]
    pub listen: SocketAddr,

    /// host:port clients are told to connect to (Kafka: advertised.listeners). Defaults to --listen.
    #[arg(long, env = "SLUICE_ADVERTISE")]
    pub advertise: Option<String>,

    /// Number of shards, one pinned thread per core. Defaults to every CPU the process may use.
    #[arg(long, env = "SLUICE_CORES")]
    pub cores: Option<usize>,

    /// This broker's id (Kafka: node.id).
    #[arg(long, env = "SLUICE_NODE_ID", default_value_t = 0)]
    pub node_id: i32,

    /// Partitions of an auto-created topic (Kafka: num.partitions).
    #[arg(long, env = "SLUICE_NUM_PARTITIONS", default_value_t = 1)]
    pub num_partitions: i32,

    /// Create unknown topics on Metadata and Produce requests (Kafka: auto.create.topics.enable).
    #[arg(long, env = "SLUICE_AUTO_CREATE_TOPICS_ENABLE", default_value_t = true, action = ArgAction::Set)]
    pub auto_create_topics_enable: bool,

    /// Largest request frame accepted; larger frames close the connection (Kafka: socket.request.max.bytes).
    #[arg(
        long,
        env = "SLUICE_SOCKET_REQUEST_MAX_BYTES",
        default_value_t = 104_857_600
    )]
    pub socket_request_max_bytes: u32,

    /// Default segment size in bytes before a roll (Kafka: log.segment.bytes; topic: segment.bytes).
    #[arg(
        long,
        env = "SLUICE_LOG_SEGMENT_BYTES",
        default_value_t = 1_073_741_824
    )]
    pub log_segment_bytes: i64,

    /// Default age in ms before a segment rolls (Kafka: log.roll.ms; topic: segment.ms).
    #[arg(long, env = "SLUICE_LOG_ROLL_MS", default_value_t = 604_800_000)]
    pub log_roll_ms: i64,

    /// Default retention by time in ms, -1 keeps forever (Kafka: log.retention.ms; topic: retention.ms).
    #[arg(long, env = "SLUICE_LOG_RETENTION_MS", default_value_t = 604_800_000)]
    pub log_retention_ms: i64,

    /// Default retention by size per partition, -1 for no limit (Kafka: log.retention.bytes; topic: retention.bytes).
    #[arg(long, env = "SLUICE_LOG_RETENTION_BYTES", default_value_t = -1)]
    pub log_retention_bytes: i64,

    /// Default largest record batch accepted (Kafka: message.max.bytes; topic: max.message.bytes).
    #[arg(long, env = "SLUICE_MESSAGE_MAX_BYTES", default_value_t = 1_048_588)]
    pub message_max_bytes: i64,

    /// Default timestamp type, CreateTime or LogAppendTime (Kafka: log.message.timestamp.type).
    #[arg(
        long,
        env = "SLUICE_LOG_MESSAGE_TIMESTAMP_TYPE",
        default_value = "CreateTime"
    )]
    pub log_message_timestamp_type: String,

    /// How often each partition writes and fdatasyncs appends no acks=all producer or
    /// waiting fetch has asked for yet, in ms (Kafka: log.flush.interval.ms).
    #[arg(long, env = "SLUICE_LOG_FLUSH_INTERVAL_MS", default_value_t = 100)]
    pub log_flush_interval_ms: u64,

    /// How often each shard deletes segments past retention (Kafka: log.retention.check.interval.ms).
    #[arg(
        long,
        env = "SLUICE_LOG_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 300_000
    )]
    pub log_retention_check_interval_ms: u64,

    /// Default cleanup policy, delete or compact (Kafka: log.cleanup.policy; topic: cleanup.policy).
    #[arg(long, env = "SLUICE_LOG_CLEANUP_POLICY", default_value = "delete")]
    pub log_cleanup_policy: String,

    /// Default time in ms a tombstone stays readable in a compacted topic (Kafka:
    /// log.cleaner.delete.retention.ms; topic: delete.retention.ms).
    #[arg(
        long,
        env = "SLUICE_LOG_CLEANER_DELETE_RETENTION_MS",
        default_value_t = 86_400_000
    )]
    pub log_cleaner_delete_retention_ms: i64,

    /// Default share of not yet compacted bytes that starts a compaction pass (Kafka:
    /// log.cleaner.min.cleanable.ratio; topic: min.cleanable.dirty.ratio).
    #[arg(
        long,
        env = "SLUICE_LOG_CLEANER_MIN_CLEANABLE_RATIO",
        default_value = "0.5"
    )]
    pub log_cleaner_min_cleanable_ratio: String,

    /// Default time in ms a record stays uncompacted after its timestamp (Kafka:
    /// log.cleaner.min.compaction.lag.ms; topic: min.compaction.lag.ms).
    #[arg(
        long,
        env = "SLUICE_LOG_CLEANER_MIN_COMPACTION_LAG_MS",
        default_value_t = 0
    )]
    pub log_cleaner_min_compaction_lag_ms: i64,

    /// Default time in ms after which a record not yet compacted makes its partition due
    /// for compaction whatever its dirty ratio (Kafka: log.cleaner.max.compaction.lag.ms;
    /// topic: max.compaction.lag.ms).
    #[arg(
        long,
        env = "SLUICE_LOG_CLEANER_MAX_COMPACTION_LAG_MS",
        default_value_t = i64::MAX
    )]
    pub log_cleaner_max_compaction_lag_ms: i64,

    /// How often each shard looks for compacted topics' partitions to clean (Kafka:
    /// log.cleaner.backoff.ms).
    #[arg(long, env = "SLUICE_LOG_CLEANER_BACKOFF_MS", default_value_t = 15_000)]
    pub log_cleaner_backoff_ms: u64,

    /// Partitions of the internal `__consumer_offsets` topic when it is first created; an
    /// existing topic keeps its count (Kafka: offsets.topic.num.partitions).
    #[arg(
        long,
        env = "SLUICE_OFFSETS_TOPIC_NUM_PARTITIONS",
        default_value_t = 16
    )]
    pub offsets_topic_num_partitions: i32,

    /// segment.bytes of `__consumer_offsets` when it is first created (Kafka: offsets.topic.segment.bytes).
    #[arg(
        long,
        env = "SLUICE_OFFSETS_TOPIC_SEGMENT_BYTES",
        default_value_t = 104_857_600
    )]
    pub offsets_topic_segment_bytes: i64,

    /// Committed offsets of a group without members expire this long after their commit
    /// or the group becoming empty, whichever is later (Kafka: offsets.retention.minutes).
    #[arg(
        long,
        env = "SLUICE_OFFSETS_RETENTION_MINUTES",
        default_value_t = 10_080
    )]
    pub offsets_retention_minutes: u64,
}

impl BrokerArgs {
    /// The host and port clients are told to connect to.
    pub fn advertised(&self) -> (String, i32) {
        if let Some(adv) = &self.advertise
            && let Some((host, port)) = adv.rsplit_once(':')
            && let Ok(port) = port.parse::<u16>()
        {
            return (host.to_string(), i32::from(port));
        }
        (self.listen.ip().to_string(), i32::from(self.listen.port()))
    }

    /// Broker-wide defaults of every topic config, keyed by the topic config name.
    pub fn topic_defaults(&self) -> BTreeMap<&'static str, String> {
        let mut m = BTreeMap::new();
        m.insert(SEGMENT_BYTES, self.log_segment_bytes.to_string());
        m.insert(SEGMENT_MS, self.log_roll_ms.to_string());
        m.insert(RETENTION_MS, self.log_retention_ms.to_string());
        m.insert(RETENTION_BYTES, self.log_retention_bytes.to_string());
        m.insert(MAX_MESSAGE_BYTES, self.message_max_bytes.to_string());
        m.insert(
            MESSAGE_TIMESTAMP_TYPE,
            self.log_message_timestamp_type.clone(),
        );
        m.insert(CLEANUP_POLICY, self.log_cleanup_policy.clone());
        m.insert(
            DELETE_RETENTION_MS,
            self.log_cleaner_delete_retention_ms.to_string(),
        );
        m.insert(
            MIN_CLEANABLE_DIRTY_RATIO,
            self.log_cleaner_min_cleanable_ratio.clone(),
        );
        m.insert(
            MIN_COMPACTION_LAG_MS,
            self.log_cleaner_min_compaction_lag_ms.to_string(),
        );
        m.insert(
            MAX_COMPACTION_LAG_MS,
            self.log_cleaner_max_compaction_lag_ms.to_string(),
        );
        m
    }

    /// Checks what depends on several configs of a topic, over its overrides (each one
    /// already valid alone) on top of the broker defaults, as Kafka's
    /// LogConfig.validateValues: min.compaction.lag.ms must not exceed
    /// max.compaction.lag.ms. The error text goes back to the client.
    pub fn validate_topic_configs(
        &self,
        overrides: &BTreeMap<String, String>,
    ) -> Result<(), String> {
        let defaults = self.topic_defaults();
        let long = |name: &'static str| -> i64 {
            let v = overrides.get(name).unwrap_or(&defaults[name]);
            v.trim().parse().unwrap_or(0)
        };
        let (min_lag, max_lag) = (long(MIN_COMPACTION_LAG_MS), long(MAX_COMPACTION_LAG_MS));
        if min_lag > max_lag {
            return Err(format!(
                "{MIN_COMPACTION_LAG_MS} ({min_lag}) must not exceed {MAX_COMPACTION_LAG_MS} ({max_lag})"
            ));
        }
        Ok(())
    }

    /// Checks the defaults with the same rules a topic override must pass.
    pub fn validate(&self) -> Result<(), String> {
        for (k, v) in self.topic_defaults() {
            validate_topic_config(k, &v)?;
        }
        self.validate_topic_configs(&BTreeMap::new())?;
        if self.num_partitions < 1 {
            return Err("--num-partitions must be at least 1".into());
        }
        if self.log_retention_check_interval_ms == 0 {
            return Err("--log-retention-check-interval-ms must be positive".into());
        }
        if self.log_cleaner_backoff_ms == 0 {
            return Err("--log-cleaner-backoff-ms must be positive".into());
        }
        if !(1..=crate::topic_table::PARTITIONS_MAX).contains(&self.offsets_topic_num_partitions) {
            return Err("--offsets-topic-num-partitions must be in 1..=10000".into());
        }
        validate_topic_config(SEGMENT_BYTES, &self.offsets_topic_segment_bytes.to_string())
            .map_err(|e| format!("--offsets-topic-segment-bytes: {e}"))?;
        if self.offsets_retention_minutes == 0 {
            return Err("--offsets-retention-minutes must be positive".into());
        }
        if self.socket_request_max_bytes < 1024 {
            return Err("--socket-request-max-bytes must be at least 1024".into());
        }
        Ok(())
    }
}

pub const SEGMENT_BYTES: &str = "segment.bytes";
pub const SEGMENT_MS: &str = "segment.ms";
pub const RETENTION_MS: &str = "retention.ms";
pub const RETENTION_BYTES: &str = "retention.bytes";
pub const MAX_MESSAGE_BYTES: &str = "max.message.bytes";
pub const MESSAGE_TIMESTAMP_TYPE: &str = "message.timestamp.type";
pub const CLEANUP_POLICY: &str = "cleanup.policy";
pub const DELETE_RETENTION_MS: &str = "delete.retention.ms";
pub const MIN_CLEANABLE_DIRTY_RATIO: &str = "min.cleanable.dirty.ratio";
pub const MIN_COMPACTION_LAG_MS: &str = "min.compaction.lag.ms";
pub const MAX_COMPACTION_LAG_MS: &str = "max.compaction.lag.ms";

/// Every topic config the broker honours. Anything else is rejected as INVALID_CONFIG.
pub const TOPIC_CONFIG_NAMES: [&str; 11] = [
    CLEANUP_POLICY,
    DELETE_RETENTION_MS,
    MAX_COMPACTION_LAG_MS,
    MAX_MESSAGE_BYTES,
    MESSAGE_TIMESTAMP_TYPE,
    MIN_CLEANABLE_DIRTY_RATIO,
    MIN_COMPACTION_LAG_MS,
    RETENTION_BYTES,
    RETENTION_MS,
    SEGMENT_BYTES,
    SEGMENT_MS,
];

/// Checks one topic config override; the error text goes back to the client.
pub fn validate_topic_config(name: &str, value: &str) -> Result<(), String> {
    let int = |min: i64| -> Result<(), String> {
        match value.trim().parse::<i64>() {
            Ok(v) if v >= min => Ok(()),
            _ => Err(format!("{name} must be an integer >= {min}, got {value:?}")),
        }
    };
    match name {
        SEGMENT_BYTES => int(14),
        SEGMENT_MS => int(1),
        RETENTION_MS => int(-1),
        RETENTION_BYTES => int(-1),
        MAX_MESSAGE_BYTES => int(0),
        MESSAGE_TIMESTAMP_TYPE => match value {
            "CreateTime" | "LogAppendTime" => Ok(()),
            _ => Err(format!("{name} must be CreateTime or LogAppendTime")),
        },
        DELETE_RETENTION_MS => int(0),
        MIN_COMPACTION_LAG_MS => int(0),
        MAX_COMPACTION_LAG_MS => int(1),
        MIN_CLEANABLE_DIRTY_RATIO => match value.trim().parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => Ok(()),
            _ => Err(format!("{name} must be a number in [0, 1], got {value:?}")),
        },
        CLEANUP_POLICY => match value {
            "delete" | "compact" | "compact,delete" | "delete,compact" => Ok(()),
            _ => Err(format!("{name} must be delete, compact or compact,delete")),
        },
        _ => Err(format!("unknown or unsupported topic config {name:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Proves the default flags parse and pass validation, and that the topic defaults cover every honoured config.
    #[test]
    fn defaults_are_valid() {
        let args = BrokerArgs::parse_from(["sluice"]);
        args.validate().unwrap();
        let d = args.topic_defaults();
        for n in TOPIC_CONFIG_NAMES {
            assert!(d.contains_key(n), "{n}");
        }
        assert_eq!(args.advertised(), ("127.0.0.1".to_string(), 9092));
    }

    // Proves bad override values are refused with a message rather than accepted.
    #[test]
    fn rejects_bad_values() {
        assert!(validate_topic_config(RETENTION_MS, "-2").is_err());
        assert!(validate_topic_config(RETENTION_MS, "abc").is_err());
        assert!(validate_topic_config(CLEANUP_POLICY, "keep").is_err());
        assert!(validate_topic_config("unclean.leader.election.enable", "true").is_err());
        assert!(validate_topic_config(SEGMENT_BYTES, "1048576").is_ok());
        assert!(validate_topic_config(MIN_CLEANABLE_DIRTY_RATIO, "0.01").is_ok());
        assert!(validate_topic_config(MIN_CLEANABLE_DIRTY_RATIO, "1.5").is_err());
        assert!(validate_topic_config(MIN_CLEANABLE_DIRTY_RATIO, "NaN").is_err());
        assert!(validate_topic_config(DELETE_RETENTION_MS, "-1").is_err());
        assert!(validate_topic_config(MIN_COMPACTION_LAG_MS, "0").is_ok());
        assert!(validate_topic_config(MIN_COMPACTION_LAG_MS, "-1").is_err());
        assert!(validate_topic_config(MAX_COMPACTION_LAG_MS, "1").is_ok());
        assert!(validate_topic_config(MAX_COMPACTION_LAG_MS, "0").is_err());
        assert!(validate_topic_config(MAX_COMPACTION_LAG_MS, "9223372036854775808").is_err());
    }

    // Proves min.compaction.lag.ms may not exceed max.compaction.lag.ms, checked over
    // the overrides on top of the broker defaults, and that bad default flags are refused.
    #[test]
    fn compaction_lags_are_checked_together() {
        let args = BrokerArgs::parse_from(["sluice"]);
        let topic = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(args.validate_topic_configs(&topic(&[])).is_ok());
        assert!(
            args.validate_topic_configs(&topic(&[(MIN_COMPACTION_LAG_MS, "1000")]))
                .is_ok()
        );
        let both = |min: &str, max: &str| {
            args.validate_topic_configs(&topic(&[
                (MIN_COMPACTION_LAG_MS, min),
                (MAX_COMPACTION_LAG_MS, max),
            ]))
        };
        assert!(both("1000", "1000").is_ok());
        assert!(both("1001", "1000").is_err());
        let args = BrokerArgs::parse_from(["sluice", "--log-cleaner-max-compaction-lag-ms", "500"]);
        args.validate().unwrap();
        assert!(
            args.validate_topic_configs(&topic(&[(MIN_COMPACTION_LAG_MS, "501")]))
                .is_err()
        );
        let bad = BrokerArgs::parse_from([
            "sluice",
            "--log-cleaner-min-compaction-lag-ms",
            "10",
            "--log-cleaner-max-compaction-lag-ms",
            "5",
        ]);
        assert!(bad.validate().is_err());
    }
}
