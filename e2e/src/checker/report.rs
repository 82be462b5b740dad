//! Explaining a linearizability violation: the smallest window of operations that still
//! cannot be linearized, and a readable account of it.
//!
//! Shrinking only makes moves that keep the window a proof: cutting it at a return time
//! (operations invoked later cannot help, and those still running at the cut lose their
//! answers, which only makes linearizing easier) and dropping reads (which change no
//! state). Writes are never dropped: a window missing one would fail for a made-up
//! reason.

use std::collections::HashMap;
use std::fmt;

use serde::Serialize;

use crate::checker::describe::{describe_kv, describe_outcome, describe_request, millis};
use crate::checker::linearizability::CheckOptions;
use crate::checker::operation::{CheckOp, Expect, NEVER};
use crate::checker::search::{Budget, Goal, SearchOutcome, Start, Stuck, search};
use crate::history::{History, KeyValue, Operation, Timestamp};

/// Attempts at dropping single reads, beyond which the window is reported as it is.
const MAX_READ_DROPS: usize = 64;

/// Unanswered earlier operations listed by name; older ones are only counted, the latest
/// being the likeliest to matter.
const MAX_UNANSWERED_SHOWN: usize = 10;

/// Why a history is not linearizable.
#[derive(Clone, Debug, Serialize)]
pub struct ViolationReport {
    /// Index in `History::operations` of the operation that had to be linearized next
    /// when every order failed.
    pub failing_operation: usize,
    /// Operations that, from `start`, already cannot be linearized, by invoke time.
    pub window: Vec<WindowOperation>,
    pub start: StartState,
    /// The longest order of window operations the search could linearize, as indices in
    /// `History::operations`.
    pub longest_linearization: Vec<usize>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WindowOperation {
    pub index: usize,
    pub operation: Operation,
    /// The operation returned after the window's end, so its answer was not required:
    /// it may take effect or not.
    pub relaxed: bool,
    /// For a write without an answer whose value a read or watch saw: the revision it was
    /// seen at.
    pub seen_at_revision: Option<i64>,
}

impl WindowOperation {
    fn new(op: &CheckOp<'_>, history: &History, relaxed: bool) -> Self {
        let seen_at_revision = match op.expect {
            Expect::Sighted(sighting) => Some(sighting.revision),
            _ => None,
        };
        WindowOperation {
            index: op.index,
            operation: history.operations[op.index].clone(),
            relaxed,
            seen_at_revision,
        }
    }
}

/// The store before the window, as left by the operations before it.
#[derive(Clone, Debug, Serialize)]
pub struct StartState {
    pub revision: i64,
    pub kvs: Vec<KeyValue>,
    pub leases: Vec<i64>,
    pub compact_revision: i64,
    /// Earlier operations without an answer that had not taken effect and still may.
    pub unanswered: Vec<WindowOperation>,
    /// How many distinct starts the earlier operations can leave; this is one of them.
    pub alternatives: usize,
}

/// Builds the report for a window that got `stuck`.
pub(crate) fn explain(
    window: &[CheckOp<'_>],
    starts: &[Start<'_>],
    stuck: &Stuck,
    history: &History,
    options: &CheckOptions,
) -> ViolationReport {
    let mut shrinker = Shrinker {
        starts,
        budget: options.budget(),
    };
    let mut best = (window.to_vec(), stuck.clone());
    if let Some(failing) = shrinker.shortest_failing_prefix(window) {
        best = failing;
    }
    if let Some(failing) = shrinker.without_reads(&best.0, &best.1) {
        best = failing;
    }
    let (ops, stuck) = best;
    // Shrinking may have relaxed an operation; its original form says what was observed.
    let original: HashMap<usize, &CheckOp<'_>> = window.iter().map(|op| (op.index, op)).collect();
    let window = ops
        .iter()
        .map(|op| {
            let original = original[&op.index];
            let relaxed = original.is_required() && !op.is_required();
            WindowOperation::new(original, history, relaxed)
        })
        .collect();
    ViolationReport {
        failing_operation: stuck.blocker,
        window,
        start: start_state(starts, history),
        longest_linearization: stuck.longest,
    }
}

fn start_state(starts: &[Start<'_>], history: &History) -> StartState {
    let start = &starts[0];
    StartState {
        revision: start.state.revision(),
        kvs: start.state.kvs().cloned().collect(),
        leases: start.state.leases().collect(),
        compact_revision: start.state.compact_revision(),
        unanswered: start
            .carried
            .iter()
            .map(|op| WindowOperation::new(op, history, false))
            .collect(),
        alternatives: starts.len(),
    }
}

struct Shrinker<'s, 'h> {
    starts: &'s [Start<'h>],
    /// Shrinking has a budget of its own: a report is worth some work even when the
    /// check spent most of its budget.
    budget: Budget,
}

/// A window that fails and how it got stuck.
type Failing<'h> = (Vec<CheckOp<'h>>, Stuck);

impl<'h> Shrinker<'_, 'h> {
    /// Some(stuck) if `ops` cannot be linearized; None if it can or the budget ran out.
    fn fails(&mut self, ops: &[CheckOp<'h>]) -> Option<Stuck> {
        match search(ops, self.starts, Goal::First, &mut self.budget) {
            SearchOutcome::Stuck(stuck) => Some(stuck),
            _ => None,
        }
    }

    /// The window cut at the earliest return time at which it already fails. Failing is
    /// monotone in the cut time, so a binary search finds it.
    fn shortest_failing_prefix(&mut self, window: &[CheckOp<'h>]) -> Option<Failing<'h>> {
        let mut cut_times: Vec<Timestamp> = window
            .iter()
            .filter(|op| op.is_required() && op.ret != NEVER)
            .map(|op| op.ret)
            .collect();
        cut_times.sort_unstable();
        cut_times.dedup();
        let (mut low, mut high) = (0, cut_times.len());
        let mut best = None;
        while low < high {
            let middle = (low + high) / 2;
            let prefix = prefix(window, cut_times[middle]);
            match self.fails(&prefix) {
                Some(stuck) => {
                    high = middle;
                    best = Some((prefix, stuck));
                }
                None if self.budget.steps_left == 0 => break,
                None => low = middle + 1,
            }
        }
        best
    }

    /// The window without the reads it does not need to fail: first all at once, else
    /// one by one.
    fn without_reads(&mut self, ops: &[CheckOp<'h>], stuck: &Stuck) -> Option<Failing<'h>> {
        let keep = stuck.blocker;
        let is_droppable = |op: &CheckOp<'_>| op.request.is_read_only() && op.index != keep;
        let all_dropped: Vec<CheckOp<'h>> =
            ops.iter().filter(|op| !is_droppable(op)).cloned().collect();
        if all_dropped.len() == ops.len() {
            return None;
        }
        if let Some(stuck) = self.fails(&all_dropped) {
            return Some((all_dropped, stuck));
        }
        let mut best: Option<Failing<'h>> = None;
        let mut current = ops.to_vec();
        let droppable: Vec<usize> = ops
            .iter()
            .filter(|op| is_droppable(op))
            .map(|op| op.index)
            .collect();
        for index in droppable.into_iter().take(MAX_READ_DROPS) {
            let candidate: Vec<CheckOp<'h>> = current
                .iter()
                .filter(|op| op.index != index)
                .cloned()
                .collect();
            if let Some(stuck) = self.fails(&candidate) {
                current = candidate.clone();
                best = Some((candidate, stuck));
            }
        }
        best
    }
}

/// The operations invoked by `cut`; those still running then lose their answers.
fn prefix<'h>(window: &[CheckOp<'h>], cut: Timestamp) -> Vec<CheckOp<'h>> {
    window
        .iter()
        .filter(|op| op.invoke <= cut)
        .filter_map(|op| {
            if op.ret <= cut || !op.is_required() {
                return Some(op.clone());
            }
            // A read that may not have happened yet constrains nothing.
            (!op.request.is_read_only()).then(|| CheckOp {
                expect: Expect::Any,
                ret: NEVER,
                ..op.clone()
            })
        })
        .collect()
}

impl fmt::Display for ViolationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "history is not linearizable: operation #{} cannot be linearized",
            self.failing_operation
        )?;
        if let Some(failing) = self
            .window
            .iter()
            .find(|op| op.index == self.failing_operation)
        {
            let operation = &failing.operation;
            write!(
                f,
                " (client {}: {})",
                operation.client,
                describe_request(&operation.request)
            )?;
        }
        writeln!(f)?;
        self.start.fmt(f)?;
        writeln!(
            f,
            "window of {} operations (times in ms since start; ? = answer not required, it came later):",
            self.window.len()
        )?;
        for entry in &self.window {
            let marker = if entry.index == self.failing_operation {
                "->"
            } else {
                "  "
            };
            writeln!(f, "{marker} {entry}")?;
        }
        let longest: Vec<String> = self
            .longest_linearization
            .iter()
            .map(|index| format!("#{index}"))
            .collect();
        write!(f, "longest linearization found: [{}]", longest.join(", "))
    }
}

impl fmt::Display for StartState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "state before the window: revision {}", self.revision)?;
        if self.compact_revision > 0 {
            write!(f, ", compacted at {}", self.compact_revision)?;
        }
        if !self.leases.is_empty() {
            write!(f, ", leases {:?}", self.leases)?;
        }
        if self.alternatives > 1 {
            write!(
                f,
                " (one of {} the earlier operations can leave)",
                self.alternatives
            )?;
        }
        writeln!(f)?;
        for kv in &self.kvs {
            writeln!(f, "    {}", describe_kv(kv))?;
        }
        if !self.unanswered.is_empty() {
            writeln!(
                f,
                "earlier operations without an answer, which may still take effect:"
            )?;
            let skipped = self.unanswered.len().saturating_sub(MAX_UNANSWERED_SHOWN);
            if skipped > 0 {
                writeln!(f, "    ... {skipped} earlier ones, then")?;
            }
            for entry in &self.unanswered[skipped..] {
                writeln!(f, "   {entry}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Display for WindowOperation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = &self.operation;
        let relaxed = if self.relaxed { "?" } else { " " };
        let returned = op.return_time.map_or_else(|| "never".to_owned(), millis);
        write!(
            f,
            "#{:<5}{relaxed} client {:<3} {:>12} .. {:>12}  {}  =>  {}",
            self.index,
            op.client,
            millis(op.invoke),
            returned,
            describe_request(&op.request),
            describe_outcome(&op.outcome),
        )?;
        match self.seen_at_revision {
            Some(revision) => write!(f, " (its value was seen at revision {revision})"),
            None => Ok(()),
        }
    }
}
