//! Backups on a cron schedule (five fields, or six with seconds first), each followed by
//! the retention policy; a failed backup is reported and the schedule goes on.

use chrono::{DateTime, Utc};
use croner::Cron;

use super::retention::Retention;
use super::{Record, Target};
use crate::error::{Error, Result};

/// A parsed cron schedule.
#[derive(Debug, Clone)]
pub struct Schedule(Cron);

impl Schedule {
    /// `expr` in cron's syntax; seconds may lead as a sixth field.
    pub fn parse(expr: &str) -> Result<Schedule> {
        let cron = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .build()
            .parse(expr)
            .map_err(|e| Error::Invalid(format!("schedule {expr:?}: {e}")))?;
        Ok(Schedule(cron))
    }

    /// The first time of the schedule after `now`.
    pub fn next_after(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
        self.0
            .find_next_occurrence(&now, false)
            .map_err(|e| Error::Invalid(format!("schedule: {e}")))
    }
}

/// Takes a backup from `endpoints` into `target` at every time of `schedule`, then applies
/// `retention`; reports each outcome to `report`. Runs until the task is dropped.
pub async fn run(
    schedule: &Schedule,
    access: &crate::members::Access,
    endpoints: &[String],
    target: &Target,
    retention: Retention,
    mut report: impl FnMut(Result<Record>),
) -> Result<()> {
    loop {
        let now = Utc::now();
        let next = schedule.next_after(now)?;
        let wait = (next - now).to_std().unwrap_or_default();
        tokio::time::sleep(wait).await;
        let taken = target.take(access, endpoints).await;
        if taken.is_ok()
            && let Err(e) = retention.apply(target, Utc::now()).await
        {
            tracing::warn!("retention: {e}");
        }
        report(taken);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_with_and_without_seconds() {
        let now: DateTime<Utc> = "2026-12-07T18:00:01Z".parse().unwrap();
        let every_3s = Schedule::parse("*/3 * * * * *").unwrap();
        assert_eq!(
            every_3s.next_after(now).unwrap(),
            "2026-12-07T18:00:03Z".parse::<DateTime<Utc>>().unwrap()
        );
        let hourly = Schedule::parse("0 * * * *").unwrap();
        assert_eq!(
            hourly.next_after(now).unwrap(),
            "2026-12-07T19:00:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(Schedule::parse("not a schedule").is_err());
    }
}
