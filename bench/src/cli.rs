//! The command line of `oxcd-bench`: options every workload shares, then one subcommand
//! per workload, named and shaped after etcd's own `benchmark` tool.

use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// A load generator for etcd v3 servers (oxcd, etcd), in the spirit of etcd's `benchmark`.
///
/// Prints a human summary, then one JSON line with the same fields as the last line of stdout.
#[derive(Debug, Parser)]
#[command(name = "oxcd-bench", version)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub workload: Workload,
}

impl Cli {
    /// The checks clap's attributes cannot express; the message names the flag.
    pub fn validate(&self) -> Result<(), String> {
        let common = &self.common;
        if common.endpoints.iter().all(|e| e.trim().is_empty()) {
            return Err("--endpoints names no endpoint".into());
        }
        if common.conns == 0 || common.clients == 0 || common.threads == 0 {
            return Err("--conns, --clients and --threads must be at least 1".into());
        }
        if !(common.rate >= 0.0 && common.rate.is_finite()) {
            return Err("--rate must be 0 (no limit) or a positive number".into());
        }
        match &self.workload {
            Workload::Put(args) | Workload::GatewayPut(args) => args.keys.validate(),
            Workload::Range(args) | Workload::GatewayRange(args) => args.keys.validate(),
            Workload::TxnPut(args) => {
                args.put.keys.validate()?;
                if args.txn_ops == 0 || args.txn_ops as u64 > args.put.keys.key_space_size {
                    return Err("--txn-ops must be between 1 and --key-space-size".into());
                }
                Ok(())
            }
            Workload::Watch(args) if args.watchers == 0 || args.streams == 0 => {
                Err("--watchers and --streams must be at least 1".into())
            }
            Workload::Mixed(args) if !(0.0..=1.0).contains(&args.read_ratio) => {
                Err("--read-ratio must be between 0 and 1".into())
            }
            Workload::Mixed(args) => args.keys.validate(),
            Workload::Load(args) if args.page_limit <= 0 || args.keys == 0 => {
                Err("--keys and --page-limit must be at least 1".into())
            }
            _ => Ok(()),
        }
    }
}

impl KeyArgs {
    fn validate(&self) -> Result<(), String> {
        if self.key_space_size == 0 {
            return Err("--key-space-size must be at least 1".into());
        }
        Ok(())
    }
}

/// Connection, concurrency and budget options, accepted before or after the subcommand.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Client URLs of the members, comma separated.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:2379"
    )]
    pub endpoints: Vec<String>,
    /// gRPC connections (HTTP/2) to open; connection i goes to target endpoint i mod n.
    #[arg(long, global = true, default_value_t = 1)]
    pub conns: usize,
    /// Concurrent clients; client i sends its requests over connection i mod conns.
    #[arg(long, global = true, default_value_t = 1)]
    pub clients: usize,
    /// Event-loop threads the connections are spread over (at most one per connection);
    /// a connection and the clients using it stay on one thread. Default: the CPU count.
    #[arg(long, global = true, default_value_t = default_threads())]
    pub threads: usize,
    /// Requests to send in all (default 10000 when --duration is not given).
    #[arg(long, global = true, conflicts_with = "duration")]
    pub total: Option<u64>,
    /// Send requests for this long instead of a fixed total: "15s", "500ms", "2m".
    #[arg(long, global = true, value_parser = parse_duration)]
    pub duration: Option<Duration>,
    /// Requests per second across all clients; 0 means as fast as the clients go.
    #[arg(long, global = true, default_value_t = 0.0)]
    pub rate: f64,
    /// Which members to connect to: only the current leader, or all endpoints.
    #[arg(long, global = true, value_enum, default_value_t = Target::All)]
    pub target: Target,
    /// Never draw the progress bar (it is drawn only when stderr is a terminal anyway).
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// `name:password`: authenticate once, and send the token with every request.
    #[arg(long, global = true)]
    pub user: Option<String>,
    /// CA bundle that https endpoints' certificates must chain to (etcd benchmark's flag).
    #[arg(long, global = true)]
    pub cacert: Option<String>,
    /// Client certificate for https endpoints that require one.
    #[arg(long, global = true, requires = "key")]
    pub cert: Option<String>,
    /// The client certificate's key.
    #[arg(long, global = true, requires = "cert")]
    pub key: Option<String>,
}

fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// `--target`: where the connections go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    Leader,
    All,
}

/// `--consistency`: linearizable reads go through ReadIndex, serializable ones are local.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Consistency {
    /// Linearizable.
    L,
    /// Serializable.
    S,
}

/// One subcommand per workload.
#[derive(Debug, Subcommand)]
pub enum Workload {
    /// Put keys of --key-size bytes with values of --val-size bytes.
    Put(PutArgs),
    /// Range one key of the key space, or the whole --key-prefix with --prefix and --limit.
    /// Load the keys first, e.g. `put --sequential-keys --total N --key-space-size N`.
    Range(RangeArgs),
    /// Txns of --txn-ops puts each.
    TxnPut(TxnPutArgs),
    /// Watch fan-out: --watchers watchers over --streams streams on one key, and --clients
    /// writers (on a connection of their own) putting that key at --rate; measures delivery
    /// latency from put ack to event receipt, and from put send as an extra.
    Watch(WatchArgs),
    /// One lease per client, kept alive over its keep-alive stream, one request at a time.
    LeaseKeepalive(LeaseArgs),
    /// Single-key reads and puts over one key space, --read-ratio of them reads.
    Mixed(MixedArgs),
    /// Load --keys keys under --key-prefix, then page through them all by prefix with
    /// --page-limit, measuring the full scan.
    Load(LoadArgs),
    /// `put` through the JSON gateway (POST /v3/kv/put), each client on an HTTP/1.1
    /// connection of its own.
    GatewayPut(PutArgs),
    /// `range` of one key through the JSON gateway (POST /v3/kv/range).
    GatewayRange(RangeArgs),
}

/// The key space a workload draws its keys from.
#[derive(Debug, Clone, Args)]
pub struct KeyArgs {
    /// Bytes per key (at least; keys are the prefix plus a zero-padded number).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// Distinct keys to draw from.
    #[arg(long, default_value_t = 1)]
    pub key_space_size: u64,
    /// Walk the key space in order instead of drawing keys at random.
    #[arg(long)]
    pub sequential_keys: bool,
    /// Every key starts with this.
    #[arg(long, default_value = "bench/")]
    pub key_prefix: String,
}

#[derive(Debug, Clone, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Bytes per value.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
}

#[derive(Debug, Clone, Args)]
pub struct RangeArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// l (linearizable) or s (serializable).
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// Range every key under --key-prefix instead of one key.
    #[arg(long)]
    pub prefix: bool,
    /// Most keys per response; 0 means no limit.
    #[arg(long, default_value_t = 0)]
    pub limit: i64,
}

#[derive(Debug, Clone, Args)]
pub struct TxnPutArgs {
    #[command(flatten)]
    pub put: PutArgs,
    /// Puts per txn, on distinct keys.
    #[arg(long, default_value_t = 1)]
    pub txn_ops: usize,
}

#[derive(Debug, Clone, Args)]
pub struct WatchArgs {
    /// Watchers in all, spread evenly over the streams.
    #[arg(long, default_value_t = 100)]
    pub watchers: usize,
    /// Watch streams; stream i is opened on connection i mod conns.
    #[arg(long, default_value_t = 10)]
    pub streams: usize,
    /// The key every watcher watches and the writers put.
    #[arg(long, default_value = "bench/watch")]
    pub key: String,
    /// Bytes per value the writers put.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// How long to wait after the last put for every event to arrive.
    #[arg(long, value_parser = parse_duration, default_value = "10s")]
    pub drain_timeout: Duration,
}

#[derive(Debug, Clone, Args)]
pub struct LeaseArgs {
    /// TTL of each client's lease, in seconds.
    #[arg(long, default_value_t = 60)]
    pub ttl: i64,
}

#[derive(Debug, Clone, Args)]
pub struct MixedArgs {
    #[command(flatten)]
    pub keys: KeyArgs,
    /// Bytes per value written.
    #[arg(long, default_value_t = 8)]
    pub val_size: usize,
    /// Fraction of operations that are reads.
    #[arg(long, default_value_t = 0.9)]
    pub read_ratio: f64,
    /// Consistency of the reads: l or s.
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
}

#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Keys to load.
    #[arg(long, default_value_t = 100_000)]
    pub keys: u64,
    /// Bytes per value.
    #[arg(long, default_value_t = 256)]
    pub val_size: usize,
    /// Bytes per key (at least).
    #[arg(long, default_value_t = 8)]
    pub key_size: usize,
    /// The keys go under this prefix, which the scan then pages through.
    #[arg(long, default_value = "bench/load/")]
    pub key_prefix: String,
    /// Keys per page of the scan.
    #[arg(long, default_value_t = 500)]
    pub page_limit: i64,
    /// Consistency of the scan's pages: l or s.
    #[arg(long, value_enum, default_value_t = Consistency::L)]
    pub consistency: Consistency,
    /// Only scan (the keys are already there).
    #[arg(long, conflicts_with = "no_scan")]
    pub scan_only: bool,
    /// Only load.
    #[arg(long)]
    pub no_scan: bool,
}

/// Parses "15s", "250ms", "2m", "1h", or a bare number of seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 15s or 500ms"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1e3,
        "m" => number * 60.0,
        "h" => number * 3600.0,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {s:?} (use ms, s, m or h)"
            ));
        }
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_flag() {
        let check = |args: &[&str]| {
            let mut argv = vec!["oxcd-bench"];
            argv.extend_from_slice(args);
            Cli::try_parse_from(argv).unwrap().validate()
        };
        assert_eq!(check(&["put"]), Ok(()));
        assert!(check(&["--rate=-1", "put"]).unwrap_err().contains("--rate"));
        assert!(
            check(&["--threads", "0", "put"])
                .unwrap_err()
                .contains("--threads")
        );
        assert!(
            check(&["--clients", "0", "put"])
                .unwrap_err()
                .contains("--clients")
        );
        assert!(
            check(&["txn-put", "--txn-ops", "4"])
                .unwrap_err()
                .contains("--txn-ops")
        );
        assert_eq!(
            check(&["txn-put", "--txn-ops", "4", "--key-space-size", "4"]),
            Ok(())
        );
        assert!(
            check(&["mixed", "--read-ratio", "1.5"])
                .unwrap_err()
                .contains("--read-ratio")
        );
        assert!(
            check(&["watch", "--streams", "0"])
                .unwrap_err()
                .contains("--streams")
        );
        assert!(
            check(&["load", "--page-limit", "0"])
                .unwrap_err()
                .contains("--page-limit")
        );
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3d").is_err());
    }

    #[test]
    fn common_options_go_before_or_after_the_subcommand() {
        let cli = Cli::try_parse_from([
            "oxcd-bench",
            "--clients",
            "64",
            "range",
            "--consistency",
            "s",
            "--endpoints",
            "http://a:1,http://b:2",
        ])
        .unwrap();
        assert_eq!(cli.common.clients, 64);
        assert_eq!(cli.common.endpoints, ["http://a:1", "http://b:2"]);
        assert!(matches!(
            cli.workload,
            Workload::Range(RangeArgs {
                consistency: Consistency::S,
                ..
            })
        ));
    }
}
