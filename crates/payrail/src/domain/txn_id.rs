//! Transaction numbers that do not count: a new `ackno` (DMT) or `txnid`
//! (BBPS) is a keyed permutation of a per-kind counter onto the nine-digit
//! numbers, so a partner cannot read the platform's volume from the ids it
//! is given (consecutive transactions get unrelated numbers).
//!
//! The permutation is a balanced Feistel network over `[0, 30000²)`, which is
//! exactly the 900,000,000 nine-digit numbers once offset by 10⁸: no cycle
//! walking is needed and every counter value maps to one number. The round
//! function is SHA-256 under the installation's secret (kept in the store),
//! the kind and the round number. Records made before keep their numbers;
//! those were sequential from 1, below the nine-digit range.

use sha2::{Digest as _, Sha256};

use super::TxnKind;

/// The smallest number handed out.
pub const FIRST_ID: i64 = 100_000_000;

/// Each Feistel half ranges over `[0, HALF)`.
const HALF: u64 = 30_000;

/// How many numbers there are per kind.
pub const CAPACITY: u64 = HALF * HALF;

/// Feistel rounds: well past the four a pseudo-random permutation needs.
const ROUNDS: u8 = 8;

/// Every number of a kind has been handed out.
#[derive(Debug, thiserror::Error)]
#[error("all {CAPACITY} {kind} transaction numbers are taken", kind = .0.as_str())]
pub struct NumbersExhausted(pub TxnKind);

/// The keyed permutation of one installation.
#[derive(Clone)]
pub struct TxnNumbers {
    /// SHA-256 with the secret already absorbed.
    keyed: Sha256,
}

impl std::fmt::Debug for TxnNumbers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TxnNumbers(***)")
    }
}

impl TxnNumbers {
    /// The permutation keyed by `secret` (the installation's, from the store).
    pub fn new(secret: &[u8]) -> Self {
        // One whole block, so that each round costs one compression.
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(&Sha256::digest(secret));
        block[32..54].copy_from_slice(b"payrail txn numbers v1");
        let mut keyed = Sha256::new();
        keyed.update(block);
        TxnNumbers { keyed }
    }

    /// The number of the `counter`-th transaction of `kind` (counting from 0).
    pub fn number(&self, kind: TxnKind, counter: u64) -> Result<i64, NumbersExhausted> {
        if counter >= CAPACITY {
            return Err(NumbersExhausted(kind));
        }
        let (mut left, mut right) = (counter / HALF, counter % HALF);
        for round in 0..ROUNDS {
            (left, right) = (right, (left + self.round(kind, round, right)) % HALF);
        }
        Ok(FIRST_ID + (left * HALF + right) as i64)
    }

    fn round(&self, kind: TxnKind, round: u8, half: u64) -> u64 {
        let mut hash = self.keyed.clone();
        hash.update([kind_byte(kind), round]);
        hash.update(half.to_be_bytes());
        let digest = hash.finalize();
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        u64::from_be_bytes(first) % HALF
    }
}

fn kind_byte(kind: TxnKind) -> u8 {
    match kind {
        TxnKind::Dmt => b'D',
        TxnKind::Bbps => b'B',
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    /// The inverse, to show the network is a permutation.
    fn counter_of(numbers: &TxnNumbers, kind: TxnKind, number: i64) -> u64 {
        let x = (number - FIRST_ID) as u64;
        let (mut left, mut right) = (x / HALF, x % HALF);
        for round in (0..ROUNDS).rev() {
            (left, right) = ((right + HALF - numbers.round(kind, round, left)) % HALF, left);
        }
        left * HALF + right
    }

    #[test]
    fn numbers_are_nine_digits_distinct_and_invertible() {
        let numbers = TxnNumbers::new(b"test secret");
        let mut seen = HashSet::new();
        for counter in (0..5_000).chain(CAPACITY - 5_000..CAPACITY) {
            let n = numbers.number(TxnKind::Dmt, counter).unwrap_or_else(|e| panic!("{e}"));
            assert!((100_000_000..=999_999_999).contains(&n), "{n}");
            assert!(seen.insert(n), "{n} twice");
            assert_eq!(counter_of(&numbers, TxnKind::Dmt, n), counter);
        }
    }

    #[test]
    fn consecutive_counters_give_unrelated_numbers_per_key_and_kind() {
        let a = TxnNumbers::new(b"one installation");
        let b = TxnNumbers::new(b"another installation");
        let run = |n: &TxnNumbers, kind| (0..50).map(|c| n.number(kind, c).unwrap_or(0)).collect::<Vec<_>>();
        let ids = run(&a, TxnKind::Dmt);
        assert!(!ids.windows(2).all(|w| w[0] < w[1]), "sorted: {ids:?}");
        assert!(ids.windows(2).any(|w| (w[1] - w[0]).abs() > 1_000), "{ids:?}");
        assert_ne!(ids, run(&b, TxnKind::Dmt));
        assert_ne!(ids, run(&a, TxnKind::Bbps));
    }

    #[test]
    fn the_counter_runs_out_with_a_clear_error() {
        let numbers = TxnNumbers::new(b"k");
        assert!(numbers.number(TxnKind::Bbps, CAPACITY - 1).is_ok());
        let error = numbers.number(TxnKind::Bbps, CAPACITY).err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("all 900000000 bbps transaction numbers are taken"));
    }
}
