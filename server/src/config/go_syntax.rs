//! Flag values in the syntax etcd's Go flag package reads: bools (`strconv.ParseBool`),
//! durations (`time.ParseDuration`) and `--auto-compaction-retention` (hours or a duration).

use std::time::Duration;

use super::clustering::AutoCompactionMode;
use super::error::ConfigError;

/// Resolved `--auto-compaction-mode` + `--auto-compaction-retention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    /// Retention 0: auto compaction is off.
    Disabled,
    /// Keep this much history (periodic mode).
    Periodic(Duration),
    /// Keep this many revisions (revision mode).
    Revision(u64),
}

/// Go's `strconv.ParseBool`: `1 t T TRUE true True 0 f F FALSE false False`.
pub fn parse_go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!("parse error: invalid boolean {s:?}")),
    }
}

/// Parse a Go duration string (`"100ms"`, `"1h30m"`, `"1.5s"`, `"0"`).
/// Units: ns, us (µs, μs), ms, s, m, h. Negative durations are rejected.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let mut rest = s;
    let mut negative = false;
    if let Some(r) = rest.strip_prefix('-') {
        negative = true;
        rest = r;
    } else if let Some(r) = rest.strip_prefix('+') {
        rest = r;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (nanos, r) = parse_duration_term(s, rest)?;
        rest = r;
        total = total.checked_add(nanos).ok_or_else(invalid)?;
        if total > i64::MAX as u128 {
            return Err(invalid());
        }
    }
    if negative && total != 0 {
        return Err(format!("negative duration {s:?} is not allowed"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// One `<number><unit>` term at the start of `rest` (a suffix of the whole duration `s`,
/// which error messages quote): its length in nanoseconds and what follows it.
fn parse_duration_term<'a>(s: &str, rest: &'a str) -> Result<(u128, &'a str), String> {
    let invalid = || format!("time: invalid duration {s:?}");
    let int_len = rest.bytes().take_while(u8::is_ascii_digit).count();
    let (int_part, mut rest) = rest.split_at(int_len);
    let mut frac_part = "";
    if let Some(r) = rest.strip_prefix('.') {
        let frac_len = r.bytes().take_while(u8::is_ascii_digit).count();
        frac_part = &r[..frac_len];
        rest = &r[frac_len..];
    }
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(invalid());
    }
    let unit_len = rest
        .char_indices()
        .find(|(_, c)| *c == '.' || c.is_ascii_digit())
        .map_or(rest.len(), |(i, _)| i);
    let (unit, rest) = rest.split_at(unit_len);
    let unit_ns: u128 = match unit {
        "" => return Err(format!("time: missing unit in duration {s:?}")),
        "ns" => 1,
        "us" | "µs" | "μs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3600 * 1_000_000_000,
        other => return Err(format!("time: unknown unit {other:?} in duration {s:?}")),
    };
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| invalid())?
    };
    let mut value = int.checked_mul(unit_ns).ok_or_else(invalid)?;
    if !frac_part.is_empty() {
        // Keep at most 18 fractional digits; finer precision is below 1ns anyway.
        let digits = &frac_part[..frac_part.len().min(18)];
        let frac: u128 = digits.parse().map_err(|_| invalid())?;
        value += frac * unit_ns / 10u128.pow(digits.len() as u32);
    }
    Ok((value, rest))
}

/// etcd's `parseCompactionRetention`: a bare non-negative integer means hours
/// (periodic) or revisions (revision); otherwise a Go duration (periodic only).
pub fn parse_compaction_retention(
    mode: AutoCompactionMode,
    retention: &str,
) -> Result<AutoCompaction, ConfigError> {
    let invalid = |reason: String| ConfigError::InvalidFlag {
        flag: "auto-compaction-retention".into(),
        value: retention.into(),
        reason,
    };
    if let Ok(n) = retention.parse::<u64>() {
        return Ok(match (n, mode) {
            (0, _) => AutoCompaction::Disabled,
            (n, AutoCompactionMode::Revision) => AutoCompaction::Revision(n),
            (n, AutoCompactionMode::Periodic) => AutoCompaction::Periodic(Duration::from_secs(
                n.checked_mul(3600)
                    .ok_or_else(|| invalid("too large".into()))?,
            )),
        });
    }
    match mode {
        AutoCompactionMode::Revision => Err(invalid(
            "revision mode expects a non-negative integer number of revisions".into(),
        )),
        AutoCompactionMode::Periodic => {
            let d = parse_go_duration(retention)
                .map_err(|e| invalid(format!("error parsing CompactionRetention: {e}")))?;
            Ok(if d.is_zero() {
                AutoCompaction::Disabled
            } else {
                AutoCompaction::Periodic(d)
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{err, load, load_env};

    #[test]
    fn bool_forms() {
        assert!(load(&["--enable-v2"]).unwrap().clustering.enable_v2);
        assert!(load(&["--enable-v2=true"]).unwrap().clustering.enable_v2);
        assert!(!load(&["--enable-v2=false"]).unwrap().clustering.enable_v2);
        assert!(load(&["--enable-v2=1"]).unwrap().clustering.enable_v2);
        assert!(!load(&["--pre-vote=false"]).unwrap().clustering.pre_vote);
        assert!(
            !load(&["--strict-reconfig-check=F"])
                .unwrap()
                .clustering
                .strict_reconfig_check
        );
        let c = load(&["--force-new-cluster", "--name", "a"]).unwrap();
        assert!(c.unsafe_features.force_new_cluster);
        assert_eq!(c.member.name, "a");
        assert!(load(&["--enable-v2=maybe"]).is_err());
        assert!(
            load_env(&[], &[("ETCD_ENABLE_V2", "true")])
                .unwrap()
                .clustering
                .enable_v2
        );
        assert!(
            !load_env(&[], &[("ETCD_PRE_VOTE", "false")])
                .unwrap()
                .clustering
                .pre_vote
        );
        assert!(
            !load_env(&["--enable-v2=false"], &[("ETCD_ENABLE_V2", "true")])
                .unwrap()
                .clustering
                .enable_v2
        );
    }

    #[test]
    fn durations() {
        let d = |s| parse_go_duration(s).unwrap();
        assert_eq!(d("100ms"), Duration::from_millis(100));
        assert_eq!(d("1h30m"), Duration::from_secs(5400));
        assert_eq!(d("5s"), Duration::from_secs(5));
        assert_eq!(d("10m"), Duration::from_secs(600));
        assert_eq!(d("1.5s"), Duration::from_millis(1500));
        assert_eq!(d(".5s"), Duration::from_millis(500));
        assert_eq!(
            d("2h45m30.5s"),
            Duration::from_millis((2 * 3600 + 45 * 60 + 30) * 1000 + 500)
        );
        assert_eq!(d("10us"), Duration::from_micros(10));
        assert_eq!(d("10µs"), Duration::from_micros(10));
        assert_eq!(d("7ns"), Duration::from_nanos(7));
        assert_eq!(d("0"), Duration::ZERO);
        assert_eq!(d("+3s"), Duration::from_secs(3));
        for bad in ["", "5", "1x", "s", "-1s", ".s", "1.2.3s", "100000000h"] {
            assert!(parse_go_duration(bad).is_err(), "{bad:?}");
        }
        let c = load(&[
            "--grpc-keepalive-min-time=1s",
            "--experimental-watch-progress-notify-interval",
            "5s",
        ])
        .unwrap();
        assert_eq!(c.member.grpc_keepalive_min_time, Duration::from_secs(1));
        assert_eq!(
            c.experimental.experimental_watch_progress_notify_interval,
            Duration::from_secs(5)
        );
        assert!(load(&["--grpc-keepalive-timeout=20"]).is_err());
    }

    #[test]
    fn compaction_retention() {
        use AutoCompactionMode::*;
        let p = |m, s| parse_compaction_retention(m, s).unwrap();
        assert_eq!(p(Periodic, "0"), AutoCompaction::Disabled);
        assert_eq!(
            p(Periodic, "1"),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(
            p(Periodic, "30m"),
            AutoCompaction::Periodic(Duration::from_secs(1800))
        );
        assert_eq!(
            p(Periodic, "1h"),
            AutoCompaction::Periodic(Duration::from_secs(3600))
        );
        assert_eq!(p(Revision, "1000"), AutoCompaction::Revision(1000));
        assert_eq!(p(Revision, "0"), AutoCompaction::Disabled);
        assert!(parse_compaction_retention(Revision, "1h").is_err());
        assert!(parse_compaction_retention(Periodic, "abc").is_err());
        let c = load(&[
            "--auto-compaction-mode=revision",
            "--auto-compaction-retention=5",
        ])
        .unwrap();
        assert_eq!(c.auto_compaction().unwrap(), AutoCompaction::Revision(5));
        assert!(load(&["--auto-compaction-mode=hourly"]).is_err());
        assert!(err(&["--auto-compaction-retention=xyz"]).contains("auto-compaction-retention"));
    }
}
