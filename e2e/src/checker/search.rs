//! The linearization search: Wing & Gong's depth-first search with Lowe's memo of
//! (linearized set, model state), as in porcupine, over one window of operations.
//!
//! At each node the candidates are the operations invoked before the earliest return
//! among the required operations not yet linearized; the search tries each against the
//! model and descends into the first whose observed answer matches. Four reductions keep
//! it small on etcd histories:
//! - a read that matches the current state is linearized at once, without trying
//!   alternatives: it changes nothing, and doing it early only relaxes constraints;
//! - the model's revision may never pass the header revision of a required operation
//!   not yet linearized, because revisions only grow;
//! - operations with an unknown outcome are optional and tried last, so they are applied
//!   only when something observed needs them;
//! - an optional write is not tried where the next revision is one that a required
//!   operation's answer shows it created itself.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Instant;

use crate::checker::model::ModelState;
use crate::checker::operation::{CheckOp, NEVER, takes_effect_only_by_writing};
use crate::history::Timestamp;

/// Limits on the work of a check.
#[derive(Debug)]
pub(crate) struct Budget {
    pub steps_left: u64,
    pub deadline: Option<Instant>,
}

impl Budget {
    /// Takes one step; false when the budget is spent.
    fn step(&mut self) -> bool {
        if self.steps_left == 0 {
            return false;
        }
        self.steps_left -= 1;
        let check_clock = self.steps_left.is_multiple_of(1024);
        if check_clock
            && self
                .deadline
                .is_some_and(|deadline| Instant::now() >= deadline)
        {
            self.steps_left = 0;
        }
        self.steps_left > 0
    }
}

/// Whether one linearization is enough, or every distinct end is needed (to carry into
/// the next window).
#[derive(Clone, Copy, Debug)]
pub(crate) enum Goal {
    First,
    AllEnds { cap: usize },
}

/// Where a window's search starts: a state the operations before it can leave, and the
/// optional operations among them that were not applied and may still take effect.
#[derive(Clone, Debug)]
pub(crate) struct Start<'h> {
    pub state: ModelState,
    pub carried: Vec<CheckOp<'h>>,
}

impl Start<'_> {
    pub fn initial() -> Self {
        Start {
            state: ModelState::initial(),
            carried: Vec::new(),
        }
    }
}

/// How far the search got before every branch failed.
#[derive(Clone, Debug, Default)]
pub(crate) struct Stuck {
    /// The longest linearization found, as indices in `History::operations`.
    pub longest: Vec<usize>,
    /// The operation that had to be linearized next but could not be, likewise.
    pub blocker: usize,
}

pub(crate) enum SearchOutcome<'h> {
    /// The window is linearizable; its distinct ends (one for `Goal::First`).
    Linearizable(Vec<Start<'h>>),
    TooManyEnds,
    Stuck(Stuck),
    OutOfBudget,
}

/// Searches for linearizations of `window` (sorted by invoke time) from any of `starts`.
pub(crate) fn search<'h>(
    window: &[CheckOp<'h>],
    starts: &[Start<'h>],
    goal: Goal,
    budget: &mut Budget,
) -> SearchOutcome<'h> {
    let mut ends = Ends {
        goal,
        found: Vec::new(),
        keys: HashSet::new(),
    };
    let mut stuck: Option<Stuck> = None;
    for start in starts {
        // Carried operations were invoked before the window, so the list stays sorted.
        let ops: Vec<CheckOp<'h>> = start.carried.iter().chain(window).cloned().collect();
        let mut search = Search::new(&ops);
        match search.run(start.state.clone(), budget, &mut ends, &mut stuck) {
            Err(OutOfBudget) => return SearchOutcome::OutOfBudget,
            Ok(Flow::Stop) if ends.too_many() => return SearchOutcome::TooManyEnds,
            Ok(Flow::Stop) => break,
            Ok(Flow::Continue) => {}
        }
    }
    if ends.found.is_empty() {
        SearchOutcome::Stuck(stuck.unwrap_or_default())
    } else {
        SearchOutcome::Linearizable(ends.found)
    }
}

enum Flow {
    Stop,
    Continue,
}

/// The distinct ends found so far.
struct Ends<'h> {
    goal: Goal,
    found: Vec<Start<'h>>,
    /// (state hash, carried operations) of each end found.
    keys: HashSet<(u128, Vec<usize>)>,
}

impl<'h> Ends<'h> {
    /// Records an end; `Flow::Stop` once the search has what it needs, or too much.
    fn record(&mut self, state: &ModelState, carried: Vec<CheckOp<'h>>) -> Flow {
        let key = (state.hash(), carried.iter().map(|op| op.index).collect());
        if self.keys.insert(key) {
            self.found.push(Start {
                state: state.clone(),
                carried,
            });
        }
        match self.goal {
            Goal::First => Flow::Stop,
            Goal::AllEnds { .. } if self.too_many() => Flow::Stop,
            Goal::AllEnds { .. } => Flow::Continue,
        }
    }

    fn too_many(&self) -> bool {
        matches!(self.goal, Goal::AllEnds { cap } if self.found.len() > cap)
    }
}

struct OutOfBudget;

/// A node of the search: a state and the candidates still to try from it.
struct Frame {
    state: ModelState,
    candidates: Vec<usize>,
    next: usize,
}

struct Search<'a, 'h> {
    ops: &'a [CheckOp<'h>],
    /// A random key per operation; the XOR of the linearized ones names the set.
    set_keys: Vec<u128>,
    set_hash: u128,
    /// Positions not yet linearized, in invoke order.
    pending: BTreeSet<usize>,
    /// Return times of pending required operations: the earliest bounds the candidates.
    required_returns: BTreeSet<(Timestamp, usize)>,
    /// Header revisions of pending required operations, with multiplicity: the lowest
    /// bounds the model's revision.
    required_revisions: BTreeMap<i64, usize>,
    /// Revisions that pending required operations certainly created, with multiplicity:
    /// no optional operation may create them instead.
    required_writers: BTreeMap<i64, usize>,
    required_left: usize,
    /// The linearization so far.
    path: Vec<usize>,
    /// (set hash, state hash) of every node visited: a node seen before has nothing new
    /// below it.
    visited: HashSet<(u128, u128)>,
}

impl<'a, 'h> Search<'a, 'h> {
    fn new(ops: &'a [CheckOp<'h>]) -> Self {
        let mut search = Search {
            ops,
            set_keys: (0..ops.len()).map(set_key).collect(),
            set_hash: 0,
            pending: (0..ops.len()).collect(),
            required_returns: BTreeSet::new(),
            required_revisions: BTreeMap::new(),
            required_writers: BTreeMap::new(),
            required_left: 0,
            path: Vec::new(),
            visited: HashSet::new(),
        };
        for position in 0..ops.len() {
            search.track_required(position, true);
        }
        search
    }

    /// Explores every linearization from `start`, recording ends and how far failing
    /// branches got.
    fn run(
        &mut self,
        start: ModelState,
        budget: &mut Budget,
        ends: &mut Ends<'h>,
        stuck: &mut Option<Stuck>,
    ) -> Result<Flow, OutOfBudget> {
        let mut stack = vec![self.frame(start)];
        while let Some(frame) = stack.last_mut() {
            if self.required_left == 0 {
                // Optional operations left over are not tried here: they stay candidates
                // in the next window, where they can take effect just as well.
                let carried = self
                    .pending
                    .iter()
                    .map(|&position| self.ops[position].clone())
                    .collect();
                if let Flow::Stop = ends.record(&frame.state, carried) {
                    return Ok(Flow::Stop);
                }
                self.backtrack(&mut stack);
                continue;
            }
            match self.next_child(frame, budget)? {
                Some((position, next)) => {
                    self.linearize(position);
                    stack.push(self.frame(next));
                }
                None => {
                    if stuck
                        .as_ref()
                        .is_none_or(|s| self.path.len() > s.longest.len())
                    {
                        *stuck = Some(self.stuck());
                    }
                    self.backtrack(&mut stack);
                }
            }
        }
        Ok(Flow::Continue)
    }

    fn backtrack(&mut self, stack: &mut Vec<Frame>) {
        stack.pop();
        if let Some(position) = self.path.pop() {
            self.unlinearize(position);
        }
    }

    /// Where this branch failed: the pending required operation that returned first
    /// could not be linearized.
    fn stuck(&self) -> Stuck {
        let blocker = self
            .required_returns
            .first()
            .map_or(0, |&(_, position)| position);
        Stuck {
            longest: self
                .path
                .iter()
                .map(|&position| self.ops[position].index)
                .collect(),
            blocker: self.ops[blocker].index,
        }
    }

    fn track_required(&mut self, position: usize, pending: bool) {
        let op = &self.ops[position];
        if !op.is_required() {
            return;
        }
        let revision = op.revision().expect("required operations have a revision");
        let created = op.created_revision();
        if pending {
            self.required_returns.insert((op.ret, position));
            multiset_add(&mut self.required_revisions, revision);
            if let Some(created) = created {
                multiset_add(&mut self.required_writers, created);
            }
            self.required_left += 1;
        } else {
            self.required_returns.remove(&(op.ret, position));
            multiset_remove(&mut self.required_revisions, revision);
            if let Some(created) = created {
                multiset_remove(&mut self.required_writers, created);
            }
            self.required_left -= 1;
        }
    }

    fn linearize(&mut self, position: usize) {
        self.pending.remove(&position);
        self.track_required(position, false);
        self.set_hash ^= self.set_keys[position];
        self.path.push(position);
    }

    fn unlinearize(&mut self, position: usize) {
        self.pending.insert(position);
        self.track_required(position, true);
        self.set_hash ^= self.set_keys[position];
    }

    fn frame(&self, state: ModelState) -> Frame {
        let horizon = self.required_returns.first().map_or(NEVER, |&(ret, _)| ret);
        let optional_writes = self.optional_may_write(&state);
        let mut required = Vec::new();
        let mut optional = Vec::new();
        for &position in &self.pending {
            let op = &self.ops[position];
            if op.invoke > horizon {
                break;
            }
            if op.is_required() {
                required.push(position);
            } else if optional_writes || !takes_effect_only_by_writing(op.request) {
                optional.push(position);
            }
        }
        required.append(&mut optional);
        Frame {
            state,
            candidates: required,
            next: 0,
        }
    }

    /// Whether an optional operation may create the next revision: not when a pending
    /// required operation must be at the current one, nor when one must create the next.
    fn optional_may_write(&self, state: &ModelState) -> bool {
        let next = state.revision() + 1;
        let lowest_required = self
            .required_revisions
            .keys()
            .next()
            .copied()
            .unwrap_or(i64::MAX);
        lowest_required >= next && !self.required_writers.contains_key(&next)
    }

    /// The next unvisited child of `frame`, if any.
    fn next_child(
        &mut self,
        frame: &mut Frame,
        budget: &mut Budget,
    ) -> Result<Option<(usize, ModelState)>, OutOfBudget> {
        while let Some(&position) = frame.candidates.get(frame.next) {
            frame.next += 1;
            if !budget.step() {
                return Err(OutOfBudget);
            }
            let op = &self.ops[position];
            let Some(next) = op.apply(&frame.state) else {
                continue;
            };
            if next.revision() > self.revision_ceiling(position) {
                continue;
            }
            // A matching read is taken without trying alternatives (see the module doc):
            // if its child was visited, so in effect was this node.
            let forced = op.is_required() && op.request.is_read_only();
            if forced {
                frame.next = frame.candidates.len();
            }
            if self
                .visited
                .insert((self.set_hash ^ self.set_keys[position], next.hash()))
            {
                return Ok(Some((position, next)));
            }
        }
        Ok(None)
    }

    /// The highest revision the model may reach by linearizing `position`: the lowest
    /// header revision among the other pending required operations.
    fn revision_ceiling(&self, position: usize) -> i64 {
        let own = self.ops[position].revision();
        let mut lowest = self.required_revisions.iter();
        match lowest.next() {
            Some((&revision, &1)) if Some(revision) == own => {
                lowest.next().map_or(i64::MAX, |(&next, _)| next)
            }
            Some((&revision, _)) => revision,
            None => i64::MAX,
        }
    }
}

/// A well-mixed key for set position `position` (splitmix64, twice).
fn set_key(position: usize) -> u128 {
    let mix = |mut z: u64| {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let position = position as u64;
    (u128::from(mix(position.wrapping_mul(2))) << 64)
        | u128::from(mix(position.wrapping_mul(2) + 1))
}

fn multiset_add(set: &mut BTreeMap<i64, usize>, value: i64) {
    *set.entry(value).or_default() += 1;
}

fn multiset_remove(set: &mut BTreeMap<i64, usize>, value: i64) {
    if let Some(count) = set.get_mut(&value) {
        *count -= 1;
        if *count == 0 {
            set.remove(&value);
        }
    }
}
