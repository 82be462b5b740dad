//! `oxcd snapshot`, etcdutl's: `oxcd snapshot restore FILE ...` builds a member's data dir
//! from a snapshot file, `oxcd snapshot status FILE` reports on one. Errors print as
//! `Error: ...` and exit 1, as etcdutl's do.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::backup::{self, RestoreOptions, Summary};

#[derive(Parser, Debug)]
#[command(name = "oxcd snapshot", about = "Restores or inspects snapshot files")]
struct SnapshotCommand {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Restores a member's data dir from a snapshot (taken from oxcd or from etcd), for a new
    /// cluster with the given members.
    Restore(RestoreArgs),
    /// Prints the hash, revision, total keys and total size of a snapshot file.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug)]
struct RestoreArgs {
    /// The snapshot file.
    file: PathBuf,
    /// The data dir to create (must not exist or be empty); default `<name>.etcd`.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A dedicated WAL directory.
    #[arg(long)]
    wal_dir: Option<PathBuf>,
    /// This member's name in --initial-cluster.
    #[arg(long, default_value = "default")]
    name: String,
    /// The new cluster's members, name=peer-url,...
    #[arg(long, default_value = "default=http://localhost:2380")]
    initial_cluster: String,
    /// The new cluster's token (the cluster and member ids derive from it).
    #[arg(long, default_value = "etcd-cluster")]
    initial_cluster_token: String,
    /// This member's peer URLs, as in --initial-cluster.
    #[arg(long, default_value = "http://localhost:2380")]
    initial_advertise_peer_urls: String,
    /// Accepts a file without its sha256 (a copy of a member's db file), and does not check one.
    #[arg(long)]
    skip_hash_check: bool,
}

#[derive(clap::Args, Debug)]
struct StatusArgs {
    /// The snapshot file.
    file: PathBuf,
    /// The output format.
    #[arg(short = 'w', long = "write-out", value_enum, default_value = "simple")]
    write_out: Format,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum Format {
    Simple,
    Json,
    Table,
    Fields,
}

/// Runs `oxcd snapshot ...` (`args` are the process's); returns the exit code.
pub fn run(args: Vec<std::ffi::OsString>) -> i32 {
    // `oxcd snapshot ...` parses as `snapshot ...`.
    let cmd = match SnapshotCommand::try_parse_from(args.into_iter().skip(1)) {
        Ok(cmd) => cmd,
        Err(e) => e.exit(),
    };
    let result = match cmd.command {
        Command::Restore(args) => restore(args),
        Command::Status(args) => {
            backup::status(&args.file).map(|s| print_status(&s, args.write_out))
        }
    };
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("Error: {e}");
            1
        }
    }
}

fn restore(args: RestoreArgs) -> crate::error::Result<()> {
    let data_dir = args
        .data_dir
        .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", args.name)));
    let opts = RestoreOptions {
        snapshot: args.file,
        data_dir,
        wal_dir: args.wal_dir,
        name: args.name,
        initial_cluster: args.initial_cluster,
        initial_cluster_token: args.initial_cluster_token,
        initial_advertise_peer_urls: args.initial_advertise_peer_urls,
        skip_hash_check: args.skip_hash_check,
    };
    let summary = backup::restore(&opts)?;
    eprintln!(
        "restored snapshot {} into {} (revision {}, {} revisions of keys, {})",
        opts.snapshot.display(),
        opts.data_dir.display(),
        summary.revision,
        summary.total_key,
        human_bytes(summary.total_size),
    );
    Ok(())
}

fn print_status(s: &Summary, format: Format) {
    let values = [
        format!("{:x}", s.hash),
        s.revision.to_string(),
        s.total_key.to_string(),
        human_bytes(s.total_size),
    ];
    match format {
        Format::Simple => println!("{}", values.join(", ")),
        Format::Json => println!("{}", serde_json::to_string(s).expect("plain struct")),
        Format::Fields => {
            println!("\"Hash\" : {}", s.hash);
            println!("\"Revision\" : {}", s.revision);
            println!("\"Keys\" : {}", s.total_key);
            println!("\"Size\" : {}", s.total_size);
        }
        Format::Table => print!(
            "{}",
            table(&["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"], &values)
        ),
    }
}

/// A one-row table as etcdctl draws it: headers centered, values right-aligned.
fn table(headers: &[&str], values: &[String]) -> String {
    let widths: Vec<usize> = headers
        .iter()
        .zip(values)
        .map(|(h, v)| h.len().max(v.len()) + 2)
        .collect();
    let rule = widths.iter().fold(String::from("+"), |mut s, w| {
        s.push_str(&"-".repeat(*w));
        s.push('+');
        s
    });
    let mut header = String::from("|");
    let mut row = String::from("|");
    for ((h, v), w) in headers.iter().zip(values).zip(&widths) {
        let gap = w - h.len();
        header.push_str(&format!(
            "{}{h}{}|",
            " ".repeat(gap / 2),
            " ".repeat(gap - gap / 2)
        ));
        row.push_str(&format!("{v:>width$} |", width = w - 1));
    }
    format!("{rule}\n{header}\n{rule}\n{row}\n{rule}\n")
}

/// Bytes as go-humanize's `Bytes` writes them (SI units), as etcdctl prints sizes.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if n < 10 {
        return format!("{n} B");
    }
    let e = ((n as f64).ln() / 1000f64.ln()).floor() as usize;
    let val = ((n as f64) / 1000f64.powi(e as i32) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {}", UNITS[e])
    } else {
        format!("{val:.0} {}", UNITS[e])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_print_like_go_humanize() {
        assert_eq!(human_bytes(5), "5 B");
        assert_eq!(human_bytes(57344), "57 kB");
        assert_eq!(human_bytes(1536), "1.5 kB");
        assert_eq!(human_bytes(2_100_000), "2.1 MB");
    }

    #[test]
    fn tables_look_like_etcdctl() {
        let t = table(
            &["HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE"],
            &["ea0b09b8".into(), "54".into(), "61".into(), "57 kB".into()],
        );
        assert_eq!(
            t,
            "+----------+----------+------------+------------+\n\
             |   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE |\n\
             +----------+----------+------------+------------+\n\
             | ea0b09b8 |       54 |         61 |      57 kB |\n\
             +----------+----------+------------+------------+\n"
        );
    }
}
