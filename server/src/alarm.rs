//! Alarms, as etcd's alarm store keeps them: which member raised which alarm (NOSPACE when
//! it ran out of its space quota, CORRUPT when hashes disagreed). Replicated state: they
//! change only by applying committed entries, survive restarts in the state backend, and
//! while NOSPACE is active every member refuses what would grow the database.

use std::collections::BTreeSet;

use crate::error::{Error, Result};
use crate::proto::etcdserverpb::{AlarmMember, AlarmType};
use crate::storage::{Backend, WriteBatch};

const ALARM_PREFIX: u8 = b'a';

/// `a`, the member id and the alarm type, big-endian.
fn alarm_key(member_id: u64, alarm: i32) -> Vec<u8> {
    let mut k = vec![ALARM_PREFIX];
    k.extend_from_slice(&member_id.to_be_bytes());
    k.extend_from_slice(&alarm.to_be_bytes());
    k
}

/// The backend pair of an active alarm.
pub fn alarm_pair(member_id: u64, alarm: i32) -> (Vec<u8>, Vec<u8>) {
    (alarm_key(member_id, alarm), Vec::new())
}

/// Every active alarm, as (member id, alarm type).
#[derive(Debug, Default)]
pub struct AlarmTable {
    active: BTreeSet<(u64, i32)>,
}

impl AlarmTable {
    pub fn load(backend: &dyn Backend) -> Result<AlarmTable> {
        let mut active = BTreeSet::new();
        for pair in backend.scan(&[ALARM_PREFIX], &[ALARM_PREFIX + 1]) {
            let (k, _) = pair?;
            let (Ok(member), Ok(alarm)) = (
                <[u8; 8]>::try_from(k.get(1..9).unwrap_or_default()),
                <[u8; 4]>::try_from(k.get(9..).unwrap_or_default()),
            ) else {
                return Err(Error::internal("bad alarm record"));
            };
            active.insert((u64::from_be_bytes(member), i32::from_be_bytes(alarm)));
        }
        Ok(AlarmTable { active })
    }

    /// Raises `alarm` for `member_id` (again, if it is up already); returns it.
    pub fn activate(&mut self, member_id: u64, alarm: i32, batch: &mut WriteBatch) -> AlarmMember {
        if self.active.insert((member_id, alarm)) {
            let (key, value) = alarm_pair(member_id, alarm);
            batch.put(key, value);
        }
        AlarmMember { member_id, alarm }
    }

    /// Clears `alarm` of `member_id`; returns it if it was up.
    pub fn deactivate(
        &mut self,
        member_id: u64,
        alarm: i32,
        batch: &mut WriteBatch,
    ) -> Option<AlarmMember> {
        self.active.remove(&(member_id, alarm)).then(|| {
            batch.delete(alarm_key(member_id, alarm));
            AlarmMember { member_id, alarm }
        })
    }

    /// The active alarms of type `alarm`, or all of them for [`AlarmType::None`].
    pub fn list(&self, alarm: i32) -> Vec<AlarmMember> {
        self.active
            .iter()
            .filter(|(_, a)| alarm == AlarmType::None as i32 || *a == alarm)
            .map(|&(member_id, alarm)| AlarmMember { member_id, alarm })
            .collect()
    }

    /// Whether any member has `alarm` up.
    pub fn is_active(&self, alarm: AlarmType) -> bool {
        self.active.iter().any(|(_, a)| *a == alarm as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::SledBackend;

    #[test]
    fn alarms_are_listed_by_type_and_survive_a_reload() {
        let db = sled::Config::new().temporary(true).open().unwrap();
        let backend = SledBackend::new(&db, "state").unwrap();
        let mut table = AlarmTable::default();
        let mut batch = WriteBatch::default();
        let nospace = AlarmType::Nospace as i32;
        let corrupt = AlarmType::Corrupt as i32;
        assert_eq!(table.activate(7, nospace, &mut batch).member_id, 7);
        table.activate(7, nospace, &mut batch);
        table.activate(9, corrupt, &mut batch);
        assert_eq!(table.deactivate(8, nospace, &mut batch), None);
        backend.write(batch).unwrap();
        assert!(table.is_active(AlarmType::Nospace));
        assert_eq!(table.list(AlarmType::None as i32).len(), 2);
        assert_eq!(
            table.list(corrupt),
            [AlarmMember {
                member_id: 9,
                alarm: corrupt
            }]
        );

        let mut reloaded = AlarmTable::load(&backend).unwrap();
        assert_eq!(reloaded.list(0), table.list(0));
        let mut batch = WriteBatch::default();
        assert!(reloaded.deactivate(7, nospace, &mut batch).is_some());
        backend.write(batch).unwrap();
        assert!(!reloaded.is_active(AlarmType::Nospace));
        assert_eq!(AlarmTable::load(&backend).unwrap().list(0).len(), 1);
    }
}
