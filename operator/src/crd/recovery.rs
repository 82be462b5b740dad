//! `spec.recovery` and what a recovery from quorum loss reports.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// What the operator does when a majority of the voting members is gone.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Recovery {
    /// `Manual` (the default) reports the plan in the QuorumLost condition and waits for the
    /// annotation `oxcd.io/force-new-cluster: <member>` naming the planned survivor;
    /// `Automatic` carries the plan out on its own.
    #[serde(default)]
    pub policy: RecoveryPolicy,
    /// How long a majority must have been gone (pod missing, volume lost, or not ready)
    /// before the plan is carried out: `30s`, `5m`, `1h`.
    #[serde(default = "default_after")]
    #[x_kube(validation = Rule::new("self.matches('^[0-9]+[smhd]$')").message("recovery.after must be a duration such as 30s, 5m or 1h"))]
    pub after: String,
}

fn default_after() -> String {
    "5m".into()
}

impl Default for Recovery {
    fn default() -> Recovery {
        Recovery {
            policy: RecoveryPolicy::Manual,
            after: default_after(),
        }
    }
}

#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default,
)]
pub enum RecoveryPolicy {
    #[default]
    Manual,
    Automatic,
}

/// `30s`, `90m`, `12h`, `7d`.
pub fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let expected = || format!("{s:?}: expected e.g. 30s, 90m, 12h, 7d");
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number.parse().map_err(|_| expected())?;
    let seconds = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86400,
        _ => return Err(expected()),
    };
    n.checked_mul(seconds)
        .map(std::time::Duration::from_secs)
        .ok_or_else(expected)
}

/// A quorum recovery: what was done, and what may have been lost.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct RecoveryReport {
    pub started: Option<Time>,
    /// The member restarted with `--force-new-cluster`: its data is the cluster's now.
    pub survivor: String,
    /// The raft index the survivor had applied.
    pub survivor_applied_index: u64,
    /// The voting members that were gone.
    pub lost_members: Vec<String>,
    /// The highest index any lost member was last seen to have applied. Entries past the
    /// survivor's index, up to this one, may be lost; a lost member may have applied more
    /// after it was last seen.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_applied_index: Option<u64>,
    /// The survivor's revision.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub survivor_revision: Option<i64>,
    /// The highest revision a lost member was last seen at: revisions past the survivor's,
    /// up to this one, may be lost.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost_revision: Option<i64>,
}
