//! The offline tools of the `oxcd` binary: subcommands that work on a data dir or a snapshot
//! file without starting a member.
//!
//! # Layout
//! - [`snapshot`]: `oxcd snapshot restore|status`, etcdutl's;
//! - [`member_guard`]: `oxcd member-guard`, the check an init container runs before a member
//!   starts, so that a wrong or emptied volume does not join the cluster.

pub mod member_guard;
pub mod snapshot;

/// Whether `args` (the process's) run an offline tool rather than the server.
pub fn is_offline(args: &[std::ffi::OsString]) -> bool {
    args.get(1)
        .is_some_and(|a| a == "snapshot" || a == member_guard::SUBCOMMAND)
}

/// Runs the offline tool `args` name; returns the process's exit code.
pub fn run(args: Vec<std::ffi::OsString>) -> i32 {
    if args.get(1).is_some_and(|a| a == member_guard::SUBCOMMAND) {
        member_guard::run(args)
    } else {
        snapshot::run(args)
    }
}
