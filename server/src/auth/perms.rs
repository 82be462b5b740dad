//! Whether a role's key permissions cover a request: etcd's range permission check, on
//! half-open byte intervals. A permission with an empty `range_end` covers its one key; a
//! `range_end` of `"\0"` means "every key from `key` on".

use crate::proto::authpb::{Permission, permission::Type as PermType};

/// A permission of type `granted` allows an operation that needs `wanted`.
pub(super) fn grants(granted: i32, wanted: PermType) -> bool {
    granted == PermType::Readwrite as i32 || granted == wanted as i32
}

/// etcd's `isValidPermissionRange`: a key, and an end after it (or none, or `"\0"`).
pub(super) fn is_valid_range(key: &[u8], range_end: &[u8]) -> bool {
    !key.is_empty() && (range_end.is_empty() || range_end == [0] || key < range_end)
}

/// An interval end: a key, or past every key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum End {
    Key(Vec<u8>),
    Infinite,
}

/// `[key, range_end)` as an interval; one key is `[key, key + "\0")`.
fn interval(key: &[u8], range_end: &[u8]) -> (Vec<u8>, End) {
    let end = match range_end {
        [] => End::Key([key, &[0]].concat()),
        [0] => End::Infinite,
        e => End::Key(e.to_vec()),
    };
    (key.to_vec(), end)
}

/// Whether the union of `perms` covers `[key, range_end)` entirely.
pub(super) fn covers<'a>(
    perms: impl Iterator<Item = &'a Permission>,
    key: &[u8],
    range_end: &[u8],
) -> bool {
    let mut spans: Vec<(Vec<u8>, End)> = perms.map(|p| interval(&p.key, &p.range_end)).collect();
    spans.sort();
    let (start, end) = interval(key, range_end);
    if let End::Key(e) = &end
        && e.as_slice() <= start.as_slice()
    {
        // An empty or inverted range selects nothing, but etcd still asks for the start key.
        return covers_point(&spans, &start);
    }
    let mut reached = start;
    for (from, to) in spans {
        if from > reached {
            break;
        }
        match to {
            End::Infinite => return true,
            End::Key(to) if to > reached => reached = to,
            End::Key(_) => {}
        }
        if End::Key(reached.clone()) >= end {
            return true;
        }
    }
    false
}

fn covers_point(spans: &[(Vec<u8>, End)], key: &[u8]) -> bool {
    spans.iter().any(|(from, to)| {
        from.as_slice() <= key
            && match to {
                End::Infinite => true,
                End::Key(to) => key < to.as_slice(),
            }
    })
}
