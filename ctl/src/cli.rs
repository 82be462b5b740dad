//! The command line, as etcdctl v3 takes it: global flags (each also read from its
//! `ETCDCTL_*` variable), verbs, and each verb's flags and arguments.

use std::time::Duration;

use clap::{ArgAction, Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "oxcdctl",
    version,
    about = "A simple command line client for etcd3 and oxcd."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// etcdctl's global flags.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// gRPC endpoints
    #[arg(
        long,
        env = "ETCDCTL_ENDPOINTS",
        default_value = "127.0.0.1:2379",
        value_delimiter = ',',
        global = true
    )]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections
    #[arg(long, env = "ETCDCTL_DIAL_TIMEOUT", default_value = "2s", value_parser = parse_duration, global = true)]
    pub dial_timeout: Duration,
    /// timeout for short running command (excluding dial timeout)
    #[arg(long, env = "ETCDCTL_COMMAND_TIMEOUT", default_value = "5s", value_parser = parse_duration, global = true)]
    pub command_timeout: Duration,
    /// keepalive time for client connections
    #[arg(long, env = "ETCDCTL_KEEPALIVE_TIME", default_value = "2s", value_parser = parse_duration, global = true)]
    pub keepalive_time: Duration,
    /// keepalive timeout for client connections
    #[arg(long, env = "ETCDCTL_KEEPALIVE_TIMEOUT", default_value = "6s", value_parser = parse_duration, global = true)]
    pub keepalive_timeout: Duration,
    /// set the output format (fields, json, simple, table)
    #[arg(
        short = 'w',
        long = "write-out",
        env = "ETCDCTL_WRITE_OUT",
        value_enum,
        default_value = "simple",
        global = true
    )]
    pub write_out: Format,
    /// print byte strings as hex encoded strings
    #[arg(long, env = "ETCDCTL_HEX", global = true)]
    pub hex: bool,
    /// enable client-side debug logging
    #[arg(long, env = "ETCDCTL_DEBUG", global = true)]
    pub debug: bool,
    /// identify secure client using this TLS certificate file
    #[arg(long = "cert", id = "tls_cert", env = "ETCDCTL_CERT", global = true)]
    pub cert: Option<String>,
    /// identify secure client using this TLS key file
    #[arg(long = "key", id = "tls_key", env = "ETCDCTL_KEY", global = true)]
    pub key: Option<String>,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(
        long = "cacert",
        id = "tls_cacert",
        env = "ETCDCTL_CACERT",
        global = true
    )]
    pub cacert: Option<String>,
    /// skip server certificate verification
    #[arg(long, env = "ETCDCTL_INSECURE_SKIP_TLS_VERIFY", global = true)]
    pub insecure_skip_tls_verify: bool,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long = "user", id = "auth_user", env = "ETCDCTL_USER", global = true)]
    pub user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(
        long = "password",
        id = "auth_password",
        env = "ETCDCTL_PASSWORD",
        global = true
    )]
    pub password: Option<String>,
}

/// `--write-out`.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Simple,
    Json,
    Table,
    Fields,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Gets the key or a range of keys
    Get(GetArgs),
    /// Puts the given key into the store
    Put(PutArgs),
    /// Removes the specified key or range of keys [key, range_end)
    Del(DelArgs),
    /// Txn processes all the requests in one transaction
    Txn(TxnArgs),
    /// Watches events stream on keys or prefixes
    Watch(WatchArgs),
    /// Compacts the event history in etcd
    Compaction(CompactionArgs),
    /// Lease related commands
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Membership related commands
    #[command(subcommand)]
    Member(MemberCommand),
    /// Endpoint related commands
    Endpoint(EndpointArgs),
    /// Manages etcd node snapshots
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Defragments the storage of the etcd members with given endpoints
    Defrag(DefragArgs),
    /// Alarm related commands
    #[command(subcommand)]
    Alarm(AlarmCommand),
    /// Transfers leadership to another etcd cluster member.
    MoveLeader(MoveLeaderArgs),
    /// Observes and participates in leader election
    Elect(ElectArgs),
    /// Acquires a named lock
    Lock(LockArgs),
    /// commands for checking properties of the etcd cluster
    #[command(subcommand)]
    Check(CheckCommand),
    /// Enable or disable authentication
    #[command(subcommand)]
    Auth(AuthCommand),
    /// User related commands
    #[command(subcommand)]
    User(UserCommand),
    /// Role related commands
    #[command(subcommand)]
    Role(RoleCommand),
    /// Prints the version of oxcdctl
    Version,
}

#[derive(Args, Debug)]
pub struct GetArgs {
    pub key: Option<String>,
    pub range_end: Option<String>,
    /// Linearizable(l) or Serializable(s)
    #[arg(long, default_value = "l")]
    pub consistency: String,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, default_value = "")]
    pub order: String,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, default_value = "")]
    pub sort_by: String,
    /// Maximum number of results
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
    /// Get keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long)]
    pub from_key: bool,
    /// Specify the kv revision
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// Get only the keys
    #[arg(long)]
    pub keys_only: bool,
    /// Only write values when using the "simple" output format
    #[arg(long)]
    pub print_value_only: bool,
}

#[derive(Args, Debug)]
pub struct PutArgs {
    pub key: Option<String>,
    /// The value; read from standard input when not given.
    pub value: Option<String>,
    /// lease ID (in hexadecimal) to attach to the key
    #[arg(long, default_value = "0")]
    pub lease: String,
    /// return the previous key-value pair before modification
    #[arg(long)]
    pub prev_kv: bool,
    /// updates the key using its current value
    #[arg(long)]
    pub ignore_value: bool,
    /// updates the key using its current lease
    #[arg(long)]
    pub ignore_lease: bool,
}

#[derive(Args, Debug)]
pub struct DelArgs {
    pub key: Option<String>,
    pub range_end: Option<String>,
    /// delete keys with matching prefix
    #[arg(long)]
    pub prefix: bool,
    /// return deleted key-value pairs
    #[arg(long)]
    pub prev_kv: bool,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long)]
    pub from_key: bool,
}

#[derive(Args, Debug)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short, long)]
    pub interactive: bool,
}

#[derive(Args, Debug)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short, long)]
    pub interactive: bool,
    /// Watch on a prefix if prefix is set
    #[arg(long)]
    pub prefix: bool,
    /// Revision to start watching
    #[arg(long, default_value_t = 0)]
    pub rev: i64,
    /// get the previous key-value pair before the event happens
    #[arg(long)]
    pub prev_kv: bool,
    /// key or prefix, and range_end
    #[arg(num_args = 0..=2)]
    pub keys: Vec<String>,
    /// after `--`: a command run at each event, with the event in ETCD_WATCH_* variables
    #[arg(last = true)]
    pub command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct CompactionArgs {
    pub revision: String,
    /// 'true' to wait for compaction to physically remove all old revisions
    #[arg(long)]
    pub physical: bool,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Creates leases
    Grant { ttl: String },
    /// Revokes leases
    Revoke { id: String },
    /// Get lease information
    Timetolive {
        id: String,
        /// Get keys attached to this lease
        #[arg(long)]
        keys: bool,
    },
    /// List all active leases
    List,
    /// Keeps leases alive (renew)
    KeepAlive {
        id: String,
        /// Resets the keep-alive time to its original value and exits immediately
        #[arg(long)]
        once: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Adds a member into the cluster
    Add {
        name: String,
        /// comma separated peer URLs for the new member.
        #[arg(long, default_value = "")]
        peer_urls: String,
        /// indicates if the new member is raft learner
        #[arg(long)]
        learner: bool,
    },
    /// Removes a member from the cluster
    Remove { id: String },
    /// Updates a member in the cluster
    Update {
        id: String,
        /// comma separated peer URLs for the updated member.
        #[arg(long, default_value = "")]
        peer_urls: String,
    },
    /// Lists all members in the cluster
    List,
    /// Promotes a non-voting member in the cluster
    Promote { id: String },
}

#[derive(Args, Debug)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true)]
    pub cluster: bool,
    #[command(subcommand)]
    pub command: EndpointCommand,
}

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    Health,
    /// Prints out the status of endpoints specified in `--endpoints` flag
    Status,
    /// Prints the KV history hash for each endpoint in --endpoints
    Hashkv {
        /// maximum revision to hash (default: all revisions)
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Stores an etcd node backend snapshot to a given file
    Save { filename: String },
}

#[derive(Args, Debug)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long)]
    pub cluster: bool,
}

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Disarms all alarms
    Disarm,
    /// Lists all alarms
    List,
}

#[derive(Args, Debug)]
pub struct MoveLeaderArgs {
    pub transferee: String,
}

#[derive(Args, Debug)]
pub struct ElectArgs {
    pub name: String,
    pub proposal: Option<String>,
    /// observation mode
    #[arg(short, long)]
    pub listen: bool,
}

#[derive(Args, Debug)]
pub struct LockArgs {
    pub name: String,
    /// timeout for session
    #[arg(long, default_value_t = 10)]
    pub ttl: i64,
    /// a command to run while holding the lock, then release it
    #[arg(trailing_var_arg = true)]
    pub command: Vec<String>,
}

#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Check the performance of the etcd cluster
    Perf(PerfArgs),
}

#[derive(Args, Debug)]
pub struct PerfArgs {
    /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge)
    #[arg(long, default_value = "s")]
    pub load: String,
    /// The prefix for writing the performance check's keys.
    #[arg(long, default_value = "/etcdctl-check-perf/")]
    pub prefix: String,
    /// Compact storage with last revision after test is finished.
    #[arg(long)]
    pub auto_compact: bool,
    /// Defragment storage after test is finished.
    #[arg(long)]
    pub auto_defrag: bool,
}

/// A Go duration: a sequence of decimal numbers with units (`ns`, `us`, `ms`, `s`, `m`,
/// `h`), such as `2s`, `500ms` or `1m30s`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("time: invalid duration {s:?}");
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    let mut rest = s;
    if rest.is_empty() {
        return Err(bad());
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(bad)?;
        let number: f64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1e-9,
            "us" | "µs" => 1e-6,
            "ms" => 1e-3,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return Err(bad()),
        };
        total += number * scale;
        rest = &rest[unit_len..];
    }
    Ok(Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("").is_err());
    }
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Enables authentication
    Enable,
    /// Disables authentication
    Disable,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Adds a new user
    Add(UserAddArgs),
    /// Deletes a user
    Delete(NamesArgs),
    /// Gets detailed information of a user
    Get(UserGetArgs),
    /// Lists all users
    List(NamesArgs),
    /// Changes password of user
    Passwd(UserPasswdArgs),
    /// Grants a role to a user
    GrantRole(NamesArgs),
    /// Revokes a role from a user
    RevokeRole(NamesArgs),
}

/// Positional names (user, role), checked by each verb as etcdctl checks them.
#[derive(Args, Debug)]
pub struct NamesArgs {
    pub names: Vec<String>,
}

#[derive(Args, Debug)]
pub struct UserAddArgs {
    /// `name` or `name:password`
    pub names: Vec<String>,
    /// Read password from stdin instead of interactive terminal
    #[arg(long, default_value = "true", default_missing_value = "true", num_args = 0..=1,
          require_equals = true, action = ArgAction::Set)]
    pub interactive: bool,
    /// Supply password from the command line flag
    #[arg(long)]
    pub new_user_password: Option<String>,
    /// Create a user without password (CN based auth only)
    #[arg(long)]
    pub no_password: bool,
}

#[derive(Args, Debug)]
pub struct UserGetArgs {
    pub names: Vec<String>,
    /// Show permissions of roles granted to the user
    #[arg(long)]
    pub detail: bool,
}

#[derive(Args, Debug)]
pub struct UserPasswdArgs {
    pub names: Vec<String>,
    /// If true, read password from stdin instead of interactive terminal
    #[arg(long, default_value = "true", default_missing_value = "true", num_args = 0..=1,
          require_equals = true, action = ArgAction::Set)]
    pub interactive: bool,
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Adds a new role
    Add(NamesArgs),
    /// Deletes a role
    Delete(NamesArgs),
    /// Gets detailed information of a role
    Get(NamesArgs),
    /// Lists all roles
    List(NamesArgs),
    /// Grants a key to a role
    GrantPermission(PermissionArgs),
    /// Revokes a key from a role
    RevokePermission(PermissionArgs),
}

#[derive(Args, Debug)]
pub struct PermissionArgs {
    /// role name, [permission type,] key and [endkey]
    pub args: Vec<String>,
    /// grant (or revoke) a prefix permission
    #[arg(long)]
    pub prefix: bool,
    /// grant (or revoke) a permission of keys that are greater than or equal to the given key
    /// using byte compare
    #[arg(long)]
    pub from_key: bool,
}
