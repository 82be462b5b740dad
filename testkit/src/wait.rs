//! Waiting for a condition: poll it until it holds or a deadline passes. Tests never sleep
//! for correctness; they wait for what they need, with a deadline.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// How often conditions are polled.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Polls `probe` until it yields a value; `None` once `timeout` has passed. A probe still
/// running at the deadline is dropped, so one that hangs (a request to a frozen member) cannot
/// hold the wait past it.
pub async fn poll_until<T, F, Fut>(timeout: Duration, mut probe: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(value)) = tokio::time::timeout_at(deadline, probe()).await {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

/// Polls `probe` until it yields a value, or fails with [`Error::Timeout`] naming `what`.
pub async fn wait_until<T, F, Fut>(timeout: Duration, what: &str, probe: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(timeout, probe)
        .await
        .ok_or_else(|| Error::Timeout {
            what: what.to_owned(),
            waited: timeout,
        })
}

/// Polls `check` until it returns `Some`, or panics after `timeout` with `what`.
pub async fn wait_for<T, F, Fut>(timeout: Duration, what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    poll_until(timeout, check)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_probe_that_hangs_ends_at_the_deadline() {
        let started = Instant::now();
        let got: Option<()> = poll_until(Duration::from_secs(5), std::future::pending).await;
        assert_eq!(got, None);
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test(start_paused = true)]
    async fn the_first_value_is_returned_and_a_timeout_names_what() {
        let mut calls = 0;
        let value = wait_until(Duration::from_secs(5), "three calls", || {
            calls += 1;
            let now = calls;
            async move { (now == 3).then_some(now) }
        })
        .await
        .unwrap();
        assert_eq!(value, 3);
        let error = wait_until(Duration::from_secs(1), "nothing", || async { None::<()> })
            .await
            .unwrap_err();
        assert_eq!(error.to_string(), "timed out after 1s waiting for nothing");
    }
}
