//! Range, as etcd's apply layer executes it; used by reads outside raft and by a txn's
//! range ops.

use crate::error::{Error, Result};
use crate::mvcc::{KeyRange, RangeResult};
use crate::proto::etcdserverpb::range_request::{SortOrder, SortTarget};
use crate::proto::etcdserverpb::{RangeRequest, RangeResponse};
use crate::proto::mvccpb::KeyValue;

use super::header;

/// Executes a Range request the way etcd's apply layer does: fetch (with the limit pushed
/// down when no sort or filter needs every key), filter by revision bounds, sort, truncate.
pub fn range(
    r: &RangeRequest,
    read: impl FnOnce(&KeyRange, i64, usize, bool) -> Result<RangeResult>,
) -> Result<RangeResponse> {
    let order = SortOrder::try_from(r.sort_order).map_err(|_| Error::InvalidSortOption)?;
    let target = SortTarget::try_from(r.sort_target).map_err(|_| Error::InvalidSortOption)?;
    let filtered = r.min_mod_revision != 0
        || r.max_mod_revision != 0
        || r.min_create_revision != 0
        || r.max_create_revision != 0;
    let fetch_limit = if order != SortOrder::None || filtered || r.limit <= 0 {
        0
    } else {
        r.limit as usize + 1
    };
    let result = read(
        &KeyRange::from_request(&r.key, &r.range_end),
        r.revision,
        fetch_limit,
        r.count_only,
    )?;
    let mut kvs = result.kvs;
    kvs.retain(|kv| within_revision_bounds(r, kv));
    sort(&mut kvs, target, order);
    let mut more = false;
    if r.limit > 0 && kvs.len() > r.limit as usize {
        kvs.truncate(r.limit as usize);
        more = true;
    }
    if r.keys_only {
        for kv in &mut kvs {
            kv.value.clear();
        }
    }
    Ok(RangeResponse {
        header: header(result.rev),
        kvs,
        more,
        count: result.count,
    })
}

/// etcd's `min/max_mod/create_revision` filters (0: no bound).
fn within_revision_bounds(r: &RangeRequest, kv: &KeyValue) -> bool {
    (r.max_mod_revision == 0 || kv.mod_revision <= r.max_mod_revision)
        && (r.min_mod_revision == 0 || kv.mod_revision >= r.min_mod_revision)
        && (r.max_create_revision == 0 || kv.create_revision <= r.max_create_revision)
        && (r.min_create_revision == 0 || kv.create_revision >= r.min_create_revision)
}

/// Sorts as etcd does: keys come sorted ascending already, and a target other than the key
/// with no order sorts ascending.
fn sort(kvs: &mut [KeyValue], target: SortTarget, order: SortOrder) {
    let order = match (target, order) {
        (SortTarget::Key, SortOrder::Ascend) => SortOrder::None,
        (t, SortOrder::None) if t != SortTarget::Key => SortOrder::Ascend,
        (_, o) => o,
    };
    if order == SortOrder::None {
        return;
    }
    kvs.sort_by(|a, b| {
        let ord = match target {
            SortTarget::Key => a.key.cmp(&b.key),
            SortTarget::Version => a.version.cmp(&b.version),
            SortTarget::Create => a.create_revision.cmp(&b.create_revision),
            SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
            SortTarget::Value => a.value.cmp(&b.value),
        };
        if order == SortOrder::Descend {
            ord.reverse()
        } else {
            ord
        }
    });
}
