//! Keys and values: a key space of `prefix + zero-padded number`, walked in order or drawn at
//! random, and the fixed value every put of a run writes.

use crate::cli::KeyArgs;

/// Names the keys of a key space; cheap to clone, one per client.
#[derive(Debug, Clone)]
pub struct KeySpace {
    prefix: String,
    /// Digits of the number, so that every key has the same length (and sorts in order).
    width: usize,
    size: u64,
    sequential: bool,
}

impl KeySpace {
    pub fn new(args: &KeyArgs) -> KeySpace {
        KeySpace::with(
            &args.key_prefix,
            args.key_size,
            args.key_space_size,
            args.sequential_keys,
        )
    }

    /// `size` keys of at least `key_size` bytes under `prefix`.
    pub fn with(prefix: &str, key_size: usize, size: u64, sequential: bool) -> KeySpace {
        let size = size.max(1);
        let digits = (size - 1).max(1).ilog10() as usize + 1;
        KeySpace {
            prefix: prefix.to_owned(),
            width: digits.max(key_size.saturating_sub(prefix.len())),
            size,
            sequential,
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The key with number `n` (taken modulo the key space).
    pub fn key(&self, n: u64) -> Vec<u8> {
        format!(
            "{}{:0width$}",
            self.prefix,
            n % self.size,
            width = self.width
        )
        .into_bytes()
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// The key for a workload's `seq`-th request: in order, or at random.
    pub fn pick(&self, seq: u64) -> Vec<u8> {
        self.key(self.pick_number(seq))
    }

    /// The number of [`Self::pick`]'s key.
    pub fn pick_number(&self, seq: u64) -> u64 {
        if self.sequential {
            seq % self.size
        } else {
            rand::random_range(0..self.size)
        }
    }
}

/// A value of `size` bytes of printable noise, made once per run.
pub fn value(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    (0..size)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())])
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_padded_to_key_size_and_sort_in_order() {
        let space = KeySpace::with("k/", 8, 1000, true);
        assert_eq!(space.key(7), b"k/000007");
        assert_eq!(space.key(1007), b"k/000007");
        assert!(space.key(99) < space.key(100));
    }

    #[test]
    fn a_short_key_size_still_fits_every_number() {
        let space = KeySpace::with("bench/", 8, 100_000, false);
        assert_eq!(space.key(99_999), b"bench/99999");
        for seq in 0..100 {
            assert_eq!(space.pick(seq).len(), 11);
        }
    }

    #[test]
    fn values_have_the_asked_size() {
        assert_eq!(value(256).len(), 256);
        assert!(value(0).is_empty());
    }
}
