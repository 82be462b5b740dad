//! etcd's "Experimental feature" flags: corruption checks, lease checkpoints, watch progress
//! notifications and raft log retention for slow followers.

use std::time::Duration;

use clap::{ArgAction, Args};

use super::go_syntax::{parse_go_bool, parse_go_duration};

/// The flags etcd's `--help` lists under "Experimental feature".
#[derive(Debug, Clone, Args)]
pub struct ExperimentalFlags {
    /// Duration of periodic watch progress notifications.
    #[arg(long = "experimental-watch-progress-notify-interval",
          env = "ETCD_EXPERIMENTAL_WATCH_PROGRESS_NOTIFY_INTERVAL", default_value = "10m",
          value_parser = parse_go_duration)]
    pub experimental_watch_progress_notify_interval: Duration,

    /// Enable leader to send regular checkpoints to other members to prevent reset of remaining TTL on leader change.
    #[arg(long = "experimental-enable-lease-checkpoint", env = "ETCD_EXPERIMENTAL_ENABLE_LEASE_CHECKPOINT",
          default_value = "false", num_args = 0..=1, default_missing_value = "true",
          action = ArgAction::Set, value_parser = parse_go_bool)]
    pub experimental_enable_lease_checkpoint: bool,

    /// Enable to check data corruption before serving any client/peer traffic.
    #[arg(long = "experimental-initial-corrupt-check", env = "ETCD_EXPERIMENTAL_INITIAL_CORRUPT_CHECK",
          default_value = "false", num_args = 0..=1, default_missing_value = "true",
          action = ArgAction::Set, value_parser = parse_go_bool)]
    pub experimental_initial_corrupt_check: bool,

    /// Duration of time between cluster corruption check passes (0s disables).
    #[arg(long = "experimental-corrupt-check-time", env = "ETCD_EXPERIMENTAL_CORRUPT_CHECK_TIME",
          default_value = "0s", value_parser = parse_go_duration)]
    pub experimental_corrupt_check_time: Duration,

    /// Enable leader to periodically check followers compaction hashes.
    #[arg(long = "experimental-compact-hash-check-enabled",
          env = "ETCD_EXPERIMENTAL_COMPACT_HASH_CHECK_ENABLED", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub experimental_compact_hash_check_enabled: bool,

    /// Number of entries for a slow follower to catch up after compacting the raft storage entries.
    #[arg(
        long = "experimental-snapshot-catchup-entries",
        env = "ETCD_EXPERIMENTAL_SNAPSHOT_CATCHUP_ENTRIES",
        default_value = "5000"
    )]
    pub experimental_snapshot_catchup_entries: u64,
}
