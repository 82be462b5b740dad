//! The failure report of a scenario: a directory under the temp dir with everything
//! needed to study the failure offline.
//!
//! - `summary.txt`: the scenario, its counts, its problems and the checker's report;
//! - `history.json`: the recorded history (`History::from_json` reads it back, and
//!   `checker::check` judges it again);
//! - `<member>.log`: each member's log.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::harness::Cluster;
use crate::history::History;
use crate::scenario::{Scenario, ScenarioResult};

/// Writes the report and returns its directory.
pub fn write(
    scenario: &Scenario,
    result: &ScenarioResult,
    history: &History,
    cluster: &Cluster,
) -> Result<PathBuf> {
    let stamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    let dir = std::env::temp_dir()
        .join("oxcd-robustness")
        .join(format!("{}-{stamp}", result.name));
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("summary.txt"), summary(scenario, result))?;
    std::fs::write(dir.join("history.json"), history.to_json())?;
    for (name, log) in cluster.logs() {
        std::fs::write(dir.join(format!("{name}.log")), log)?;
    }
    Ok(dir)
}

/// The scenario, its counts, its problems and the checker's verdict, as text.
pub fn summary(scenario: &Scenario, result: &ScenarioResult) -> String {
    let mut text = format!(
        "scenario {}\nprofile {}, fault {}, seed {}\n{} operations ({} answered), {} watch responses, {} faults\n",
        result.name,
        scenario.profile,
        scenario.fault,
        scenario.seed,
        result.operations,
        result.answered,
        result.watch_responses,
        result.faults,
    );
    for problem in &result.problems {
        text.push_str(&format!("problem: {problem}\n"));
    }
    text.push_str(&format!("\n{}\n", result.report));
    text
}
