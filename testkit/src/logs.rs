//! What tests read from a member's log (its stderr).

/// The highest index a member's log shows its raft log purged up to, as openraft logs each
/// purge ("purge log, last_purged: …, purge_upto: T<term>-N<node>.<index>"); 0 before any.
pub fn purged_upto(log: &str) -> u64 {
    log.lines()
        .filter(|l| l.contains("purge log, last_purged"))
        .filter_map(|l| l.rsplit_once("purge_upto: "))
        .filter_map(|(_, id)| id.trim().rsplit_once('.'))
        .filter_map(|(_, index)| index.trim().parse::<u64>().ok())
        .max()
        .unwrap_or(0)
}

/// The last `lines` lines of `log`.
pub fn tail(log: &str, lines: usize) -> String {
    let all: Vec<&str> = log.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_purge_counts() {
        let log = "INFO purge log, last_purged: None, purge_upto: T1-N1.40\n\
                   INFO something else\n\
                   INFO purge log, last_purged: T1-N1.40, purge_upto: T2-N3.95\n";
        assert_eq!(purged_upto(log), 95);
        assert_eq!(purged_upto("no purge yet"), 0);
    }

    #[test]
    fn tail_keeps_the_last_lines() {
        assert_eq!(tail("a\nb\nc\n", 2), "b\nc");
        assert_eq!(tail("a", 5), "a");
    }
}
