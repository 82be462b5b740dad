//! Linearizability of a recorded history against the etcd model: which operations
//! constrain the search and how, where the history can be cut into independent windows,
//! and the verdict.
//!
//! etcd's global revision ties every key together, so the history cannot be split by
//! key as porcupine does for plain registers. It can be split in time: at a quiet point,
//! where every answered operation invoked so far has returned, those operations must be
//! linearized before everything invoked later. Operations without an answer never
//! return; a window hands the ones it did not apply on to the next, where they may still
//! take effect. Each window is searched from every end the previous one can reach;
//! when there are too many, the two windows are searched as one.

use std::time::Duration;
use std::time::Instant;

use crate::checker::model::ModelState;
use crate::checker::operation::{CheckOp, Expect, NEVER};
use crate::checker::report::{self, ViolationReport};
use crate::checker::resolve::{self, Sighting};
use crate::checker::revision_log::RevisionLog;
use crate::checker::search::{Budget, Goal, SearchOutcome, Start, search};
use crate::history::{History, KeyValue, Outcome};

/// Limits on a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Model steps the search may take before giving up with `Unknown`. A step is one
    /// request applied to one state; a few million take seconds.
    pub max_steps: u64,
    /// Wall-clock limit, checked along with the steps.
    pub timeout: Option<Duration>,
    /// How many distinct end states a window may carry into the next before the two are
    /// searched as one.
    pub max_end_states: usize,
}

impl Default for CheckOptions {
    fn default() -> Self {
        CheckOptions {
            max_steps: 20_000_000,
            timeout: Some(Duration::from_secs(120)),
            max_end_states: 64,
        }
    }
}

impl CheckOptions {
    pub(crate) fn budget(&self) -> Budget {
        Budget {
            steps_left: self.max_steps,
            deadline: self.timeout.map(|timeout| Instant::now() + timeout),
        }
    }
}

/// The verdict on a history.
#[derive(Debug)]
pub enum Linearizability {
    /// One linearization was found; it fixes the revisions of the unknown writes it
    /// applied.
    Ok(Linearization),
    Violation(Box<ViolationReport>),
    /// The search ran out of steps or time; nothing is proven either way.
    Unknown {
        reason: String,
    },
}

impl Linearizability {
    pub fn is_ok(&self) -> bool {
        matches!(self, Linearizability::Ok(_))
    }

    pub fn is_violation(&self) -> bool {
        matches!(self, Linearizability::Violation(_))
    }
}

/// The end of a linearization: the store's final state and, through the revision
/// history, every event it produced.
#[derive(Clone, Debug)]
pub struct Linearization {
    state: ModelState,
}

impl Linearization {
    /// The store's revision after the last operation.
    pub fn revision(&self) -> i64 {
        self.state.revision()
    }

    /// The kvs after the last operation, in key order.
    pub fn kvs(&self) -> Vec<KeyValue> {
        self.state.kvs().cloned().collect()
    }

    /// Every revision's events: what watches must have delivered.
    pub fn revision_log(&self) -> RevisionLog {
        self.state.revision_log()
    }
}

/// Checks that `history`'s operations are linearizable against etcd's semantics.
pub fn check_linearizability(history: &History, options: &CheckOptions) -> Linearizability {
    let sightings = resolve::sighted_unknown_writes(history);
    let mut unseen = resolve::unseen_unknown_writes(history);
    unseen.extend(resolve::unused_unknown_grants(history));
    let ops = prepare(history, &sightings, &unseen);
    let cuts = quiet_points(&ops);
    let mut budget = options.budget();
    let mut starts = vec![Start::initial()];
    let mut begin = 0;
    let mut next_cut = cuts.iter().copied().peekable();
    while let Some(mut end) = next_cut.next() {
        loop {
            let goal = if end == ops.len() {
                Goal::First
            } else {
                Goal::AllEnds {
                    cap: options.max_end_states,
                }
            };
            match search(&ops[begin..end], &starts, goal, &mut budget) {
                SearchOutcome::Linearizable(ends) => {
                    starts = ends;
                    break;
                }
                SearchOutcome::TooManyEnds => {
                    end = next_cut
                        .next()
                        .expect("the last window is searched for one linearization only");
                }
                SearchOutcome::Stuck(stuck) => {
                    let report =
                        report::explain(&ops[begin..end], &starts, &stuck, history, options);
                    return Linearizability::Violation(Box::new(report));
                }
                SearchOutcome::OutOfBudget => {
                    let (first, last) = (ops[begin].index, ops[end - 1].index);
                    let reason = format!(
                        "the search ran out of steps or time in the window of operations #{first}..#{last} \
                         ({} operations)",
                        end - begin
                    );
                    return Linearizability::Unknown { reason };
                }
            }
        }
        begin = end;
    }
    let state = starts.swap_remove(0).state;
    Linearizability::Ok(Linearization { state })
}

/// The operations that constrain the search, sorted by invoke time.
///
/// A read without an answer constrains nothing and is left out, as is any request that was
/// never sent or that certainly did not happen (`resolve::unseen_unknown_writes`). A write
/// without an answer is
/// optional, unless its value was seen: then it must be linearized, at the revision it was
/// seen with, before it was seen.
fn prepare<'h>(
    history: &'h History,
    sightings: &'h std::collections::HashMap<usize, Sighting>,
    unseen: &std::collections::HashSet<usize>,
) -> Vec<CheckOp<'h>> {
    let mut ops: Vec<CheckOp<'h>> = Vec::new();
    for (index, operation) in history.operations.iter().enumerate() {
        if unseen.contains(&index) {
            continue;
        }
        let (expect, ret) = match &operation.outcome {
            Outcome::Response(response) => (
                Expect::Exact(response),
                operation.return_time.unwrap_or(NEVER),
            ),
            // A read without an answer constrains nothing; a request never sent did nothing.
            Outcome::NotSent(_) => continue,
            _ if operation.request.is_read_only() => continue,
            _ => match sightings.get(&index) {
                Some(sighting) => (
                    Expect::Sighted(sighting),
                    sighting.time.max(operation.invoke),
                ),
                None => (Expect::Any, NEVER),
            },
        };
        ops.push(CheckOp {
            index,
            invoke: operation.invoke,
            ret,
            request: &operation.request,
            expect,
        });
    }
    ops.sort_by_key(|op| (op.invoke, op.index));
    ops
}

/// Positions at which a window may end: every required operation before has returned
/// before the one at the position was invoked. Always ends with `ops.len()`.
fn quiet_points(ops: &[CheckOp<'_>]) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut latest_return = 0;
    for (position, op) in ops.iter().enumerate() {
        // Touching intervals count as concurrent, as in porcupine.
        if position > 0 && op.invoke > latest_return {
            cuts.push(position);
        }
        if op.is_required() {
            latest_return = latest_return.max(op.ret);
        }
    }
    cuts.push(ops.len());
    cuts
}
