//! etcd's "Unsafe feature" flags: they may break the guarantees of the consensus protocol.

use clap::{ArgAction, Args};

use super::go_syntax::parse_go_bool;

/// The flags etcd's `--help` lists under "Unsafe feature".
#[derive(Debug, Clone, Args)]
pub struct UnsafeFlags {
    /// Force to create a new one member cluster.
    #[arg(long = "force-new-cluster", env = "ETCD_FORCE_NEW_CLUSTER", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub force_new_cluster: bool,

    /// Disables fsync, unsafe, will cause data loss.
    #[arg(long = "unsafe-no-fsync", env = "ETCD_UNSAFE_NO_FSYNC", default_value = "false",
          num_args = 0..=1, default_missing_value = "true", action = ArgAction::Set,
          value_parser = parse_go_bool)]
    pub unsafe_no_fsync: bool,
}
