//! Alarm requests: raising, clearing and listing, as etcd's applier answers them.

use crate::error::Result;
use crate::proto::etcdserverpb::alarm_request::AlarmAction;
use crate::proto::etcdserverpb::{AlarmRequest, AlarmResponse, AlarmType};
use crate::proto::oxcdpb::internal_response::Response;
use crate::storage::WriteBatch;

use super::{Applied, KvState, header};

/// GET lists the alarms of a type (all for NONE); ACTIVATE answers the alarm raised (raising
/// NONE does nothing); DEACTIVATE answers the alarm cleared, if it was up.
pub(super) fn alarm(
    state: &mut KvState,
    batch: &mut WriteBatch,
    r: AlarmRequest,
    applied: &mut Applied,
) -> Result<Response> {
    let alarms = match AlarmAction::try_from(r.action) {
        Ok(AlarmAction::Get) => state.alarms.list(r.alarm),
        Ok(AlarmAction::Activate) if r.alarm != AlarmType::None as i32 => {
            vec![state.alarms.activate(r.member_id, r.alarm, batch)]
        }
        Ok(AlarmAction::Deactivate) => state
            .alarms
            .deactivate(r.member_id, r.alarm, batch)
            .into_iter()
            .collect(),
        Ok(AlarmAction::Activate) | Err(_) => Vec::new(),
    };
    applied.revision = state.mvcc.current_rev();
    Ok(Response::Alarm(AlarmResponse {
        header: header(applied.revision),
        alarms,
    }))
}
