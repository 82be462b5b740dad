//! Operations as the linearization search sees them: what linearizing each must
//! produce, and by when.

use crate::checker::model::ModelState;
use crate::checker::resolve::Sighting;
use crate::history::{Request, Response, ResponseBody, Timestamp, TxnOpResponse};

/// Stands in for the return time of an operation that may take effect at any time.
pub(crate) const NEVER: Timestamp = Timestamp::MAX;

/// One operation as the search sees it.
#[derive(Clone, Debug)]
pub(crate) struct CheckOp<'h> {
    /// Index into `History::operations`.
    pub index: usize,
    pub invoke: Timestamp,
    /// The time by which it must have taken effect; `NEVER` for optional operations.
    pub ret: Timestamp,
    pub request: &'h Request,
    pub expect: Expect<'h>,
}

/// What linearizing an operation must produce.
#[derive(Clone, Debug)]
pub(crate) enum Expect<'h> {
    /// Exactly this answer.
    Exact(&'h Response),
    /// The answer was lost, but the write was seen at a revision.
    Sighted(&'h Sighting),
    /// Nothing known: the operation may take effect once, or never.
    Any,
}

impl CheckOp<'_> {
    pub fn is_required(&self) -> bool {
        !matches!(self.expect, Expect::Any)
    }

    /// The revision the store must be at right after this operation.
    pub fn revision(&self) -> Option<i64> {
        match self.expect {
            Expect::Exact(response) => Some(response.revision),
            Expect::Sighted(sighting) => Some(sighting.revision),
            Expect::Any => None,
        }
    }

    /// The revision this operation certainly created, if its answer shows it wrote.
    pub fn created_revision(&self) -> Option<i64> {
        match self.expect {
            Expect::Exact(response) => {
                response_wrote(self.request, response).then_some(response.revision)
            }
            Expect::Sighted(sighting) => Some(sighting.revision),
            Expect::Any => None,
        }
    }

    /// The state after this operation if `state` can produce what was observed.
    pub fn apply(&self, state: &ModelState) -> Option<ModelState> {
        let step = state.step(self.request);
        match self.expect {
            Expect::Exact(response) => match step.result {
                Ok(answer) if answer == *response => {
                    Some(step.next.unwrap_or_else(|| state.clone()))
                }
                _ => None,
            },
            Expect::Sighted(sighting) => step.next.filter(|next| {
                next.revision() == sighting.revision
                    && next.last_revision_wrote(&sighting.key, &sighting.value)
            }),
            // Linearizing an unknown operation that changes nothing is the same as never
            // linearizing it.
            Expect::Any => step.next,
        }
    }
}

/// Whether any effect the request has creates a revision. A lease revoke without keys
/// changes the leases only.
pub(crate) fn takes_effect_only_by_writing(request: &Request) -> bool {
    matches!(
        request,
        Request::Put(_) | Request::Delete(_) | Request::Txn(_)
    )
}

/// Whether a successful answer shows that the request changed a key. A lease revoke
/// may or may not have had keys to delete, so it does not count.
fn response_wrote(request: &Request, response: &Response) -> bool {
    match (request, &response.body) {
        (Request::Put(_), ResponseBody::Put) => true,
        (Request::Delete(_), ResponseBody::Delete { deleted }) => *deleted > 0,
        (Request::Txn(_), ResponseBody::Txn { results, .. }) => {
            results.iter().any(|result| match result {
                TxnOpResponse::Put => true,
                TxnOpResponse::Delete { deleted } => *deleted > 0,
                TxnOpResponse::Range(_) => false,
            })
        }
        _ => false,
    }
}
