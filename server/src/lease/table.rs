//! The replicated lease table: every granted lease with its TTL and attached keys. It
//! changes only by applying committed entries.

use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::mvcc::{KeyRange, Store};
use crate::storage::{Backend, WriteBatch};

const LEASE_PREFIX: u8 = b'l';

fn lease_key(id: i64) -> Vec<u8> {
    let mut k = vec![LEASE_PREFIX];
    k.extend_from_slice(&(id as u64).to_be_bytes());
    k
}

/// The backend pair of a lease granted with `ttl` seconds.
pub fn lease_pair(id: i64, ttl: i64) -> (Vec<u8>, Vec<u8>) {
    (lease_key(id), ttl.to_be_bytes().to_vec())
}

/// One granted lease.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lease {
    /// Granted TTL in seconds (after raising it to the minimum).
    pub ttl: i64,
    /// Keys whose live version is attached to this lease.
    pub keys: BTreeSet<Vec<u8>>,
}

/// Every granted lease, by id.
#[derive(Debug, Default)]
pub struct LeaseTable {
    leases: BTreeMap<i64, Lease>,
}

impl LeaseTable {
    /// Loads leases from the backend and re-attaches the live keys that name them.
    pub fn load(backend: &dyn Backend, store: &Store) -> Result<LeaseTable> {
        let mut table = LeaseTable::default();
        for pair in backend.scan(&[LEASE_PREFIX], &[LEASE_PREFIX + 1]) {
            let (k, v) = pair?;
            let (Ok(id), Ok(ttl)) = (
                <[u8; 8]>::try_from(&k[1..]),
                <[u8; 8]>::try_from(v.as_slice()),
            ) else {
                return Err(Error::internal("bad lease record"));
            };
            let lease = Lease {
                ttl: i64::from_be_bytes(ttl),
                keys: BTreeSet::new(),
            };
            table.leases.insert(u64::from_be_bytes(id) as i64, lease);
        }
        for (key, meta) in store.live_keys(&KeyRange::from_request(b"\0", b"\0")) {
            if let Some(lease) = table.leases.get_mut(&meta.lease) {
                lease.keys.insert(key.clone());
            }
        }
        Ok(table)
    }

    pub fn get(&self, id: i64) -> Option<&Lease> {
        self.leases.get(&id)
    }

    pub fn contains(&self, id: i64) -> bool {
        self.leases.contains_key(&id)
    }

    pub fn ids(&self) -> impl Iterator<Item = i64> + '_ {
        self.leases.keys().copied()
    }

    pub fn iter(&self) -> impl Iterator<Item = (i64, &Lease)> + '_ {
        self.leases.iter().map(|(id, l)| (*id, l))
    }

    pub fn grant(&mut self, id: i64, ttl: i64, batch: &mut WriteBatch) -> Result<()> {
        if self.leases.contains_key(&id) {
            return Err(Error::LeaseExist);
        }
        let (key, value) = lease_pair(id, ttl);
        batch.put(key, value);
        self.leases.insert(
            id,
            Lease {
                ttl,
                keys: BTreeSet::new(),
            },
        );
        Ok(())
    }

    /// Removes the lease; returns the keys that were attached to it.
    pub fn revoke(&mut self, id: i64, batch: &mut WriteBatch) -> Result<BTreeSet<Vec<u8>>> {
        let lease = self.leases.remove(&id).ok_or(Error::LeaseNotFound)?;
        batch.delete(lease_key(id));
        Ok(lease.keys)
    }

    pub fn attach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.insert(key.to_vec());
        }
    }

    pub fn detach(&mut self, id: i64, key: &[u8]) {
        if let Some(l) = self.leases.get_mut(&id) {
            l.keys.remove(key);
        }
    }
}
