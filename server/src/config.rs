//! Broker configuration: the `sluice` command line (every flag also from a `SLUICE_*`
//! environment variable) and the topic-level configs the engine honours, with their
//! broker-wide defaults. Parsed once in `main`, then shared read-only by every shard.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;

use clap::parser::ValueSource;
use clap::{ArgAction, CommandFactory, FromArgMatches, Parser};
use sluice_engine::batch::Codec;

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
    /// Ids of the flags set on the command line or through the environment (the rest
    /// hold their defaults); DescribeConfigs reports these as STATIC_BROKER_CONFIG.
    /// Filled by `parse_recording_sources`, empty after a plain `parse`.
    #[arg(skip)]
    pub explicit_flags: BTreeSet<String>,

    /// Directory holding topic metadata and one sub-directory per partition (Kafka: log.dirs).
    #[arg(long, env = "SLUICE_DATA_DIR", default_value = "./sluice-data")]
    pub data_dir: PathBuf,

    /// Address the client listener binds, host:port; a host name is resolved once at
    /// start, to its first IPv4 address if it has one (Kafka: listeners).
    #[arg(long, env = "SLUICE_LISTEN", default_value = "127.0.0.1:9092", value_parser = parse_listen)]
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

    /// Closes a connection with no request in flight after this many ms without a read
    /// or a write (Kafka: connections.max.idle.ms).
    #[arg(
        long,
        env = "SLUICE_CONNECTIONS_MAX_IDLE_MS",
        default_value_t = 600_000
    )]
    pub connections_max_idle_ms: u64,

    /// Closes a connection that started sending a request and did not finish it within
    /// this many ms of its first byte (Sluice's own; Kafka has no such bound). Time spent
    /// waiting for queued.max.request.bytes does not count.
    #[arg(long, env = "SLUICE_REQUEST_READ_TIMEOUT_MS", default_value_t = 30_000)]
    pub request_read_timeout_ms: u64,

    /// Most client connections open at once; more are closed right after accept (Kafka: max.connections).
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS", default_value_t = i32::MAX)]
    pub max_connections: i32,

    /// Most client connections open at once from one IP address; more are closed right
    /// after accept (Kafka: max.connections.per.ip).
    #[arg(long, env = "SLUICE_MAX_CONNECTIONS_PER_IP", default_value_t = i32::MAX)]
    pub max_connections_per_ip: i32,

    /// Most bytes held by requests being read, split evenly over the shards; a connection
    /// waits (stops reading) until its frame fits, and a frame larger than one shard's
    /// share closes its connection. -1 for no limit (Kafka: queued.max.request.bytes,
    /// whose default is -1; Sluice defaults to 512 MiB).
    #[arg(
        long,
        env = "SLUICE_QUEUED_MAX_REQUEST_BYTES",
        default_value_t = 536_870_912,
        allow_negative_numbers = true
    )]
    pub queued_max_request_bytes: i64,

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

    /// Default codec batches are stored with: producer (keep the producer's), uncompressed,
    /// gzip, snappy, lz4 or zstd; others are recompressed on append (Kafka:
    /// compression.type; topic: compression.type).
    #[arg(long, env = "SLUICE_COMPRESSION_TYPE", default_value = "producer")]
    pub compression_type: String,
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

    /// A group left without members and committed offsets stays listed as Empty (and
    /// deletable) this long before it is removed, as Kafka's periodic offsets cleanup
    /// removes it (Kafka: offsets.retention.check.interval.ms).
    #[arg(
        long,
        env = "SLUICE_OFFSETS_RETENTION_CHECK_INTERVAL_MS",
        default_value_t = 600_000
    )]
    pub offsets_retention_check_interval_ms: u64,
}

/// `--listen`: an IP address and port, or a host name and port resolved now (Kafka
/// accepts host names in `listeners`). `localhost` resolves to 127.0.0.1, not `::1`.
pub fn parse_listen(value: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = value.rsplit_once(':') else {
        return Err(format!("{value:?} is not host:port"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{value:?}: port {port:?} is not a number in 0..=65535"))?;
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve host {host:?}: {e}"))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| addrs.first())
        .copied()
        .ok_or_else(|| format!("host {host:?} has no address"))
}

impl BrokerArgs {
    /// Parses `args` like `parse_from`, and also records which flags were given
    /// explicitly (command line or environment) rather than left at their defaults.
    pub fn parse_recording_sources<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let matches = Self::command().try_get_matches_from(args)?;
        let mut parsed = Self::from_arg_matches(&matches)?;
        parsed.explicit_flags = matches
            .ids()
            .filter(|id| {
                matches!(
                    matches.value_source(id.as_str()),
                    Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                )
            })
            .map(|id| id.as_str().to_string())
            .collect();
        Ok(parsed)
    }

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
        m.insert(COMPRESSION_TYPE, self.compression_type.clone());
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
        if self.offsets_retention_check_interval_ms == 0 {
            return Err("--offsets-retention-check-interval-ms must be positive".into());
        }
        if self.socket_request_max_bytes < 1024 {
            return Err("--socket-request-max-bytes must be at least 1024".into());
        }
        if self.connections_max_idle_ms == 0 {
            return Err("--connections-max-idle-ms must be positive".into());
        }
        if self.request_read_timeout_ms == 0 {
            return Err("--request-read-timeout-ms must be positive".into());
        }
        if self.max_connections < 0 {
            return Err("--max-connections must be at least 0".into());
        }
        if self.max_connections_per_ip < 0 {
            return Err("--max-connections-per-ip must be at least 0".into());
        }
        if self.queued_max_request_bytes != -1 && self.queued_max_request_bytes < 1024 {
            return Err("--queued-max-request-bytes must be -1 or at least 1024".into());
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
pub const COMPRESSION_TYPE: &str = "compression.type";

/// Every topic config the broker honours. Anything else is rejected as INVALID_CONFIG.
pub const TOPIC_CONFIG_NAMES: [&str; 12] = [
    CLEANUP_POLICY,
    COMPRESSION_TYPE,
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

/// The codec a `compression.type` value stores batches with: `Some(None)` for
/// `producer` (the producer's own), `None` for a value Kafka does not define.
pub fn compression_codec(value: &str) -> Option<Option<Codec>> {
    Some(Some(match value {
        "producer" => return Some(None),
        "uncompressed" => Codec::None,
        "gzip" => Codec::Gzip,
        "snappy" => Codec::Snappy,
        "lz4" => Codec::Lz4,
        "zstd" => Codec::Zstd,
        _ => return None,
    }))
}

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
        COMPRESSION_TYPE => match compression_codec(value) {
            Some(_) => Ok(()),
            None => Err(format!(
                "{name} must be producer, uncompressed, gzip, snappy, lz4 or zstd, got {value:?}"
            )),
        },
        _ => Err(format!("unknown or unsupported topic config {name:?}")),
    }
}

/// Kafka's ConfigType codes, which DescribeConfigs v3+ reports per config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i8)]
pub enum ConfigType {
    Boolean = 1,
    String = 2,
    Int = 3,
    Short = 4,
    Long = 5,
    Double = 6,
    List = 7,
}

/// One broker config under Kafka's name, as DescribeConfigs reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BrokerConfig {
    pub name: &'static str,
    /// The value in effect; `None` where Kafka reports null (unset, no default).
    pub value: Option<String>,
    /// The built-in default: the value without the flag.
    pub default: Option<String>,
    /// Set by flag or environment variable (Kafka: STATIC_BROKER_CONFIG) rather than
    /// left at its default (DEFAULT_CONFIG).
    pub explicit: bool,
    pub config_type: ConfigType,
}

/// Every broker flag under its Kafka name: `(Kafka name, clap id, type)`, in name
/// order. One flag may carry two Kafka names (broker.id and node.id).
const BROKER_CONFIG_FLAGS: &[(&str, &str, ConfigType)] = &[
    ("advertised.listeners", "advertise", ConfigType::String),
    (
        "auto.create.topics.enable",
        "auto_create_topics_enable",
        ConfigType::Boolean,
    ),
    ("broker.id", "node_id", ConfigType::Int),
    ("compression.type", "compression_type", ConfigType::String),
    (
        "connections.max.idle.ms",
        "connections_max_idle_ms",
        ConfigType::Long,
    ),
    ("listeners", "listen", ConfigType::String),
    (
        "log.cleaner.backoff.ms",
        "log_cleaner_backoff_ms",
        ConfigType::Long,
    ),
    (
        "log.cleaner.delete.retention.ms",
        "log_cleaner_delete_retention_ms",
        ConfigType::Long,
    ),
    (
        "log.cleaner.max.compaction.lag.ms",
        "log_cleaner_max_compaction_lag_ms",
        ConfigType::Long,
    ),
    (
        "log.cleaner.min.cleanable.ratio",
        "log_cleaner_min_cleanable_ratio",
        ConfigType::Double,
    ),
    (
        "log.cleaner.min.compaction.lag.ms",
        "log_cleaner_min_compaction_lag_ms",
        ConfigType::Long,
    ),
    ("log.cleanup.policy", "log_cleanup_policy", ConfigType::List),
    ("log.dirs", "data_dir", ConfigType::String),
    (
        "log.flush.interval.ms",
        "log_flush_interval_ms",
        ConfigType::Long,
    ),
    (
        "log.message.timestamp.type",
        "log_message_timestamp_type",
        ConfigType::String,
    ),
    (
        "log.retention.bytes",
        "log_retention_bytes",
        ConfigType::Long,
    ),
    (
        "log.retention.check.interval.ms",
        "log_retention_check_interval_ms",
        ConfigType::Long,
    ),
    ("log.retention.ms", "log_retention_ms", ConfigType::Long),
    ("log.roll.ms", "log_roll_ms", ConfigType::Long),
    ("log.segment.bytes", "log_segment_bytes", ConfigType::Int),
    ("max.connections", "max_connections", ConfigType::Int),
    (
        "max.connections.per.ip",
        "max_connections_per_ip",
        ConfigType::Int,
    ),
    ("message.max.bytes", "message_max_bytes", ConfigType::Int),
    ("node.id", "node_id", ConfigType::Int),
    ("num.partitions", "num_partitions", ConfigType::Int),
    (
        "offsets.retention.check.interval.ms",
        "offsets_retention_check_interval_ms",
        ConfigType::Long,
    ),
    (
        "offsets.retention.minutes",
        "offsets_retention_minutes",
        ConfigType::Int,
    ),
    (
        "offsets.topic.num.partitions",
        "offsets_topic_num_partitions",
        ConfigType::Int,
    ),
    (
        "offsets.topic.segment.bytes",
        "offsets_topic_segment_bytes",
        ConfigType::Int,
    ),
    (
        "queued.max.request.bytes",
        "queued_max_request_bytes",
        ConfigType::Long,
    ),
    (
        "socket.request.max.bytes",
        "socket_request_max_bytes",
        ConfigType::Int,
    ),
];

/// Flags with no Kafka broker config: not described.
#[cfg(test)]
const FLAGS_WITHOUT_KAFKA_NAME: &[&str] = &["cores", "help", "request_read_timeout_ms", "version"];

/// Broker configs that have no flag because a single broker fixes them: the value it
/// behaves by. The broker holds one
/// replica of every partition.
const FIXED_BROKER_CONFIGS: &[(&str, &str, ConfigType)] = &[
    ("default.replication.factor", "1", ConfigType::Int),
    ("min.insync.replicas", "1", ConfigType::Int),
    ("offsets.topic.replication.factor", "1", ConfigType::Short),
];

/// A flag's text as Kafka writes the config: listeners carry their security protocol.
fn kafka_form(name: &str, raw: &str) -> String {
    match name {
        "listeners" | "advertised.listeners" => format!("PLAINTEXT://{raw}"),
        _ => raw.to_string(),
    }
}

impl BrokerArgs {
    /// The current text of the flag with clap id `id`; `None` for an unset optional flag.
    fn flag_text(&self, id: &str) -> Option<String> {
        Some(match id {
            "advertise" => self.advertise.clone()?,
            "auto_create_topics_enable" => self.auto_create_topics_enable.to_string(),
            "compression_type" => self.compression_type.clone(),
            "connections_max_idle_ms" => self.connections_max_idle_ms.to_string(),
            "max_connections" => self.max_connections.to_string(),
            "max_connections_per_ip" => self.max_connections_per_ip.to_string(),
            "queued_max_request_bytes" => self.queued_max_request_bytes.to_string(),
            "node_id" => self.node_id.to_string(),
            "listen" => self.listen.to_string(),
            "log_cleaner_backoff_ms" => self.log_cleaner_backoff_ms.to_string(),
            "log_cleaner_delete_retention_ms" => self.log_cleaner_delete_retention_ms.to_string(),
            "log_cleaner_max_compaction_lag_ms" => {
                self.log_cleaner_max_compaction_lag_ms.to_string()
            }
            "log_cleaner_min_cleanable_ratio" => self.log_cleaner_min_cleanable_ratio.clone(),
            "log_cleaner_min_compaction_lag_ms" => {
                self.log_cleaner_min_compaction_lag_ms.to_string()
            }
            "log_cleanup_policy" => self.log_cleanup_policy.clone(),
            "data_dir" => self.data_dir.display().to_string(),
            "log_flush_interval_ms" => self.log_flush_interval_ms.to_string(),
            "log_message_timestamp_type" => self.log_message_timestamp_type.clone(),
            "log_retention_bytes" => self.log_retention_bytes.to_string(),
            "log_retention_check_interval_ms" => self.log_retention_check_interval_ms.to_string(),
            "log_retention_ms" => self.log_retention_ms.to_string(),
            "log_roll_ms" => self.log_roll_ms.to_string(),
            "log_segment_bytes" => self.log_segment_bytes.to_string(),
            "message_max_bytes" => self.message_max_bytes.to_string(),
            "num_partitions" => self.num_partitions.to_string(),
            "offsets_retention_minutes" => self.offsets_retention_minutes.to_string(),
            "offsets_retention_check_interval_ms" => {
                self.offsets_retention_check_interval_ms.to_string()
            }
            "offsets_topic_num_partitions" => self.offsets_topic_num_partitions.to_string(),
            "offsets_topic_segment_bytes" => self.offsets_topic_segment_bytes.to_string(),
            "socket_request_max_bytes" => self.socket_request_max_bytes.to_string(),
            _ => return None,
        })
    }

    /// Every broker config under Kafka's name, in name order: the flags with their
    /// current values and defaults, then the configs a single broker fixes.
    pub fn broker_configs(&self) -> Vec<BrokerConfig> {
        let command = Self::command();
        let default_of = |id: &str| {
            command
                .get_arguments()
                .find(|a| a.get_id().as_str() == id)
                .and_then(|a| a.get_default_values().first())
                .map(|v| v.to_string_lossy().into_owned())
        };
        let mut out: Vec<BrokerConfig> = BROKER_CONFIG_FLAGS
            .iter()
            .map(|(name, id, config_type)| BrokerConfig {
                name,
                value: self.flag_text(id).map(|v| kafka_form(name, &v)),
                default: default_of(id).map(|v| kafka_form(name, &v)),
                explicit: self.explicit_flags.contains(*id),
                config_type: *config_type,
            })
            .chain(
                FIXED_BROKER_CONFIGS
                    .iter()
                    .map(|(name, value, config_type)| BrokerConfig {
                        name,
                        value: Some(value.to_string()),
                        default: Some(value.to_string()),
                        explicit: false,
                        config_type: *config_type,
                    }),
            )
            .collect();
        out.sort_by_key(|c| c.name);
        out
    }
}

/// The broker config that gives a topic config its default (Kafka's synonym):
/// `retention.ms` defaults to `log.retention.ms`.
pub fn broker_synonym(topic_config: &str) -> Option<&'static str> {
    Some(match topic_config {
        SEGMENT_BYTES => "log.segment.bytes",
        SEGMENT_MS => "log.roll.ms",
        RETENTION_MS => "log.retention.ms",
        RETENTION_BYTES => "log.retention.bytes",
        MAX_MESSAGE_BYTES => "message.max.bytes",
        MESSAGE_TIMESTAMP_TYPE => "log.message.timestamp.type",
        CLEANUP_POLICY => "log.cleanup.policy",
        DELETE_RETENTION_MS => "log.cleaner.delete.retention.ms",
        MIN_CLEANABLE_DIRTY_RATIO => "log.cleaner.min.cleanable.ratio",
        MIN_COMPACTION_LAG_MS => "log.cleaner.min.compaction.lag.ms",
        MAX_COMPACTION_LAG_MS => "log.cleaner.max.compaction.lag.ms",
        // The one topic config whose broker default has the same name.
        COMPRESSION_TYPE => "compression.type",
        _ => return None,
    })
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
        for codec in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
            assert!(
                validate_topic_config(COMPRESSION_TYPE, codec).is_ok(),
                "{codec}"
            );
        }
        assert!(validate_topic_config(COMPRESSION_TYPE, "none").is_err());
        assert!(validate_topic_config(COMPRESSION_TYPE, "ZSTD").is_err());
        assert_eq!(compression_codec("zstd"), Some(Some(Codec::Zstd)));
        assert_eq!(compression_codec("producer"), Some(None));
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

    // Proves the connection limit flags parse with Kafka's defaults (queued.max.request.bytes
    // excepted: Sluice bounds it), take -1 for an unbounded budget, and refuse values that
    // would make no sense.
    #[test]
    fn connection_limits_are_checked() {
        let args = BrokerArgs::parse_from(["sluice"]);
        assert_eq!(args.connections_max_idle_ms, 600_000);
        assert_eq!(args.max_connections, i32::MAX);
        assert_eq!(args.max_connections_per_ip, i32::MAX);
        assert_eq!(args.queued_max_request_bytes, 536_870_912);
        let parse = |flag: &str, v: &str| {
            BrokerArgs::parse_from(["sluice", &format!("{flag}={v}")]).validate()
        };
        assert!(parse("--queued-max-request-bytes", "-1").is_ok());
        assert!(parse("--queued-max-request-bytes", "0").is_err());
        assert!(parse("--queued-max-request-bytes", "-2").is_err());
        assert!(parse("--max-connections-per-ip", "0").is_ok());
        assert!(parse("--max-connections", "-1").is_err());
        assert!(parse("--connections-max-idle-ms", "0").is_err());
        assert!(parse("--request-read-timeout-ms", "0").is_err());
    }

    // Proves --listen takes an IP address and port as before, resolves a host name
    // (localhost to 127.0.0.1, as Kafka accepts host names in listeners), and refuses a
    // value without a port or with a bad one.
    #[test]
    fn listen_accepts_host_names() {
        assert_eq!(
            parse_listen("127.0.0.1:9092").unwrap(),
            "127.0.0.1:9092".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_listen("[::1]:9092").unwrap(),
            "[::1]:9092".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            parse_listen("localhost:19092").unwrap(),
            "127.0.0.1:19092".parse::<SocketAddr>().unwrap()
        );
        let args = BrokerArgs::parse_from(["sluice", "--listen", "localhost:9093"]);
        assert_eq!(args.listen, "127.0.0.1:9093".parse::<SocketAddr>().unwrap());
        assert!(parse_listen("localhost").is_err());
        assert!(parse_listen("localhost:99999").is_err());
        assert!(BrokerArgs::try_parse_from(["sluice", "--listen", "localhost:x"]).is_err());
    }

    // Proves every flag is described under a Kafka name (a new flag must be mapped or
    // listed as having none), that values and defaults are rendered as Kafka writes
    // them, and that only flags given explicitly count as set.
    #[test]
    fn broker_configs_cover_every_flag() {
        let described: BTreeSet<&str> = BROKER_CONFIG_FLAGS.iter().map(|(_, id, _)| *id).collect();
        for arg in BrokerArgs::command().get_arguments() {
            let id = arg.get_id().as_str();
            assert!(
                described.contains(id) || FLAGS_WITHOUT_KAFKA_NAME.contains(&id),
                "flag {id} has no Kafka broker config name"
            );
        }
        let args = BrokerArgs::parse_recording_sources([
            "sluice",
            "--num-partitions",
            "3",
            "--listen",
            "127.0.0.1:9999",
        ])
        .unwrap();
        let configs = args.broker_configs();
        let get = |n: &str| configs.iter().find(|c| c.name == n).unwrap().clone();
        let np = get("num.partitions");
        assert_eq!(np.value.as_deref(), Some("3"));
        assert_eq!(np.default.as_deref(), Some("1"));
        assert!(np.explicit);
        let l = get("listeners");
        assert_eq!(l.value.as_deref(), Some("PLAINTEXT://127.0.0.1:9999"));
        assert_eq!(l.default.as_deref(), Some("PLAINTEXT://127.0.0.1:9092"));
        let r = get("log.retention.ms");
        assert!(!r.explicit);
        assert_eq!(r.value, r.default);
        assert_eq!(get("advertised.listeners").value, None);
        assert_eq!(get("broker.id").value, get("node.id").value);
        for (topic, _) in args.topic_defaults() {
            let b = broker_synonym(topic).unwrap();
            assert!(configs.iter().any(|c| c.name == b), "{b}");
        }
    }
}
