//! `oxcd member-guard`: decides, before a member starts, whether its data dir may be used.
//!
//! A Kubernetes operator runs it as an init container. Its volumes can go wrong in ways the
//! member itself cannot tell apart from a normal start: another member's (or another
//! cluster's) volume mounted in its place, a volume emptied under a member that had data
//! (which, started empty, would join as a new member with the old one's id), or the data of
//! a member that was removed. Each of those is refused here, before the member starts.
//!
//! Exit codes: 0 accepted (one line on stdout saying why), 1 refused (the reason on stderr,
//! prefixed `oxcd member-guard: `), 2 bad usage.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::Parser;

use crate::membership::identity::{self, Identity};

/// The subcommand's name, as `argv[1]`.
pub const SUBCOMMAND: &str = "member-guard";

#[derive(Parser, Debug)]
#[command(
    name = "oxcd member-guard",
    about = "Checks that a data dir may be used by the member about to start in it"
)]
struct GuardArgs {
    /// The member's data dir (`--data-dir` of the member).
    #[arg(long)]
    data_dir: PathBuf,
    /// The cluster id (hex) the data must belong to.
    #[arg(long, value_parser = parse_hex_id)]
    cluster_id: Option<u64>,
    /// The member id (hex) the data must belong to.
    #[arg(long, value_parser = parse_hex_id)]
    member_id: Option<u64>,
    /// The member has started before: an empty or missing data dir means its data was lost.
    #[arg(long)]
    require_data: bool,
}

/// A hex id as etcd prints them (`8e9e05c52164694d`), with or without leading zeros or `0x`.
fn parse_hex_id(s: &str) -> Result<u64, String> {
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    u64::from_str_radix(digits, 16).map_err(|e| format!("{s:?} is not a hex id: {e}"))
}

/// What the guard found in the data dir.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    /// The member may start; why.
    Accept(String),
    /// The member must not start; why.
    Refuse(String),
}

/// Runs `oxcd member-guard ...` (`args` are the process's); returns the exit code.
pub fn run(args: Vec<OsString>) -> i32 {
    // Clap exits 2 on bad usage (0 for --help), as the contract asks.
    let args = match GuardArgs::try_parse_from(args.into_iter().skip(1)) {
        Ok(args) => args,
        Err(e) => e.exit(),
    };
    match check(&args) {
        Verdict::Accept(why) => {
            println!("{why}");
            0
        }
        Verdict::Refuse(why) => {
            eprintln!("oxcd member-guard: {why}");
            1
        }
    }
}

fn check(args: &GuardArgs) -> Verdict {
    let dir = args.data_dir.display();
    let empty = match is_missing_or_empty(&args.data_dir) {
        Ok(empty) => empty,
        Err(e) => return Verdict::Refuse(format!("cannot read data dir {dir}: {e}")),
    };
    if empty {
        return match args.require_data {
            true => Verdict::Refuse(format!(
                "data dir {dir} is empty but member {} has started before: refusing to start it, it must be replaced",
                args.member_id.map_or("this member".to_owned(), hex)
            )),
            false => Verdict::Accept(format!(
                "data dir {dir} is empty: a new member may start in it"
            )),
        };
    }
    let member_dir = args.data_dir.join("member");
    match identity::load(&member_dir) {
        Err(e) => Verdict::Refuse(format!("cannot read the identity in data dir {dir}: {e}")),
        Ok(None) => Verdict::Refuse(format!(
            "data dir {dir} is not empty but holds no member's data (no member/identity): refusing to start a member in it"
        )),
        Ok(Some(found)) => check_identity(args, &member_dir, found),
    }
}

/// Checks the data of member `found` against the ids asked for and the removal marker.
fn check_identity(args: &GuardArgs, member_dir: &Path, found: Identity) -> Verdict {
    let dir = args.data_dir.display();
    if let Some(want) = args.cluster_id.filter(|id| *id != found.cluster_id) {
        return Verdict::Refuse(format!(
            "data dir {dir} belongs to cluster {}, not to cluster {}",
            hex(found.cluster_id),
            hex(want)
        ));
    }
    if let Some(want) = args.member_id.filter(|id| *id != found.member_id) {
        return Verdict::Refuse(format!(
            "data dir {dir} belongs to member {}, not to member {}",
            hex(found.member_id),
            hex(want)
        ));
    }
    if identity::is_removed(member_dir) {
        return Verdict::Refuse(format!(
            "member {} was removed from the cluster; its data dir must not rejoin",
            hex(found.member_id)
        ));
    }
    Verdict::Accept(format!(
        "data dir {dir} holds member {} of cluster {}: it may start",
        hex(found.member_id),
        hex(found.cluster_id)
    ))
}

/// An id as etcd prints it: lowercase hex without leading zeros.
fn hex(id: u64) -> String {
    format!("{id:x}")
}

/// True when `dir` does not exist or has no entries.
fn is_missing_or_empty(dir: &Path) -> std::io::Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(dir: &Path, extra: &[&str]) -> Verdict {
        let mut argv = vec!["member-guard", "--data-dir", dir.to_str().unwrap()];
        argv.extend_from_slice(extra);
        check(&GuardArgs::try_parse_from(argv).unwrap())
    }

    #[test]
    fn hex_ids_parse_with_or_without_leading_zeros() {
        assert_eq!(parse_hex_id("8e9e05c52164694d"), Ok(0x8e9e05c52164694d));
        assert_eq!(parse_hex_id("00ab"), Ok(0xab));
        assert_eq!(parse_hex_id("0xAB"), Ok(0xab));
        assert!(parse_hex_id("xyz").is_err());
        assert!(parse_hex_id("").is_err());
    }

    #[test]
    fn an_unmarked_or_foreign_dir_is_refused_an_empty_one_accepted_unless_data_is_required() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        assert!(matches!(guard(&dir, &[]), Verdict::Accept(_)));
        let refused = guard(&dir, &["--require-data", "--member-id", "00ab"]);
        let want = format!(
            "data dir {} is empty but member ab has started before: refusing to start it, it must be replaced",
            dir.display()
        );
        assert_eq!(refused, Verdict::Refuse(want));
        std::fs::create_dir_all(dir.join("lost+found")).unwrap();
        assert!(
            matches!(guard(&dir, &[]), Verdict::Refuse(m) if m.contains("holds no member's data"))
        );
    }

    #[test]
    fn identities_are_compared_and_removal_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let member_dir = tmp.path().join("member");
        std::fs::create_dir_all(&member_dir).unwrap();
        let me = Identity {
            member_id: 0xab,
            cluster_id: 0xcd,
        };
        identity::save(&member_dir, &me).unwrap();
        let dir = tmp.path();
        assert!(matches!(
            guard(dir, &["--member-id", "ab", "--cluster-id", "0cd"]),
            Verdict::Accept(_)
        ));
        let want = format!(
            "data dir {} belongs to cluster cd, not to cluster ce",
            dir.display()
        );
        assert_eq!(guard(dir, &["--cluster-id", "ce"]), Verdict::Refuse(want));
        let want = format!(
            "data dir {} belongs to member ab, not to member 1",
            dir.display()
        );
        assert_eq!(guard(dir, &["--member-id", "1"]), Verdict::Refuse(want));
        identity::mark_removed(&member_dir).unwrap();
        let want = "member ab was removed from the cluster; its data dir must not rejoin";
        assert_eq!(guard(dir, &[]), Verdict::Refuse(want.into()));
    }
}
