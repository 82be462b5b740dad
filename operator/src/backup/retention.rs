//! Which backups a retention policy lets go: beyond the newest `keep`, or older than
//! `max_age`. The newest backup always stays, whatever the policy says, so a cluster is
//! never left with none.

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Record, Target};
use crate::error::Result;

/// How many backups to keep, and for how long.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retention {
    pub keep: Option<usize>,
    pub max_age: Option<Duration>,
}

impl Retention {
    /// The names of the backups among `records` to delete at `now`, oldest first.
    pub fn expired(&self, records: &[Record], now: DateTime<Utc>) -> Vec<String> {
        let mut newest_first: Vec<&Record> = records.iter().collect();
        newest_first.sort_by_key(|r| std::cmp::Reverse(r.taken_at));
        let mut expired: Vec<&Record> = newest_first
            .iter()
            .enumerate()
            .skip(1)
            .filter(|(i, r)| {
                let beyond_count = self.keep.is_some_and(|keep| *i >= keep);
                let too_old = self.max_age.is_some_and(|max| {
                    now.signed_duration_since(r.taken_at)
                        .to_std()
                        .is_ok_and(|age| age > max)
                });
                beyond_count || too_old
            })
            .map(|(_, r)| *r)
            .collect();
        expired.sort_by_key(|r| r.taken_at);
        expired.into_iter().map(|r| r.name.clone()).collect()
    }

    /// Deletes the backups in `target` the policy lets go at `now`; answers their names.
    pub async fn apply(&self, target: &Target, now: DateTime<Utc>) -> Result<Vec<String>> {
        let expired = self.expired(&target.list().await?, now);
        for name in &expired {
            target.delete(name).await?;
        }
        Ok(expired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, minutes_ago: i64, now: DateTime<Utc>) -> Record {
        Record {
            name: name.into(),
            location: format!("s3://b/{name}"),
            revision: 1,
            size: 1,
            sha256: String::new(),
            taken_at: now - chrono::Duration::minutes(minutes_ago),
            cluster_id: String::new(),
            member_id: String::new(),
            endpoint: String::new(),
        }
    }

    #[test]
    fn count_and_age_each_let_backups_go_but_never_the_newest() {
        let now = Utc::now();
        let records: Vec<Record> = [("a", 50), ("b", 40), ("c", 30), ("d", 20), ("e", 10)]
            .into_iter()
            .map(|(n, m)| record(n, m, now))
            .collect();
        let hour = Duration::from_secs(3600);
        let cases = [
            (
                Retention {
                    keep: Some(3),
                    max_age: None,
                },
                vec!["a", "b"],
            ),
            (
                Retention {
                    keep: Some(0),
                    max_age: None,
                },
                vec!["a", "b", "c", "d"],
            ),
            (
                Retention {
                    keep: None,
                    max_age: Some(Duration::from_secs(25 * 60)),
                },
                vec!["a", "b", "c"],
            ),
            (
                Retention {
                    keep: Some(4),
                    max_age: Some(Duration::from_secs(35 * 60)),
                },
                vec!["a", "b"],
            ),
            (
                Retention {
                    keep: None,
                    max_age: Some(hour),
                },
                vec![],
            ),
            (Retention::default(), vec![]),
            (
                Retention {
                    keep: None,
                    max_age: Some(Duration::from_secs(60)),
                },
                vec!["a", "b", "c", "d"],
            ),
        ];
        for (policy, expected) in cases {
            assert_eq!(policy.expired(&records, now), expected, "{policy:?}");
        }
        assert!(
            Retention {
                keep: Some(1),
                max_age: None
            }
            .expired(&[], now)
            .is_empty()
        );
    }
}
