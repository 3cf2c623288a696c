//! Single flight: concurrent callers who want the same answer share one
//! attempt to get it. The first caller for a key leads (does the work and
//! lands the result); the others follow (wait for that result). The entry
//! leaves the map when the leader is done, whether it landed a result,
//! failed, or was dropped mid-way (its client went away), so the map only
//! ever holds the work in progress.
//!
//! Status lookups use it so that fifty partners' requests about one undecided
//! transaction cost the upstream one query ([`super::upstream::sync::Upstream`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;

/// The flights in progress, by key.
pub struct Flights<K, V> {
    in_flight: Mutex<HashMap<K, watch::Receiver<Option<V>>>>,
}

/// A caller's place on a flight.
pub enum Seat<'a, K: Hash + Eq + Clone, V: Clone> {
    /// Nobody was at it: this caller does the work and [`Lead::land`]s it.
    Leader(Lead<'a, K, V>),
    /// Someone is at it: wait for their result with [`Follow::result`].
    Follower(Follow<V>),
}

/// The leader's duty: land the result (or drop, which lets followers go).
pub struct Lead<'a, K: Hash + Eq + Clone, V: Clone> {
    flights: &'a Flights<K, V>,
    key: K,
    result: watch::Sender<Option<V>>,
}

/// A follower's wait.
pub struct Follow<V> {
    result: watch::Receiver<Option<V>>,
}

impl<K: Hash + Eq + Clone, V: Clone> Default for Flights<K, V> {
    fn default() -> Self {
        Flights { in_flight: Mutex::new(HashMap::new()) }
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Flights<K, V> {
    /// Joins the flight for `key`, or starts one.
    pub fn board(&self, key: K) -> Seat<'_, K, V> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(result) = in_flight.get(&key) {
            return Seat::Follower(Follow { result: result.clone() });
        }
        let (sender, receiver) = watch::channel(None);
        in_flight.insert(key.clone(), receiver);
        Seat::Leader(Lead { flights: self, key, result: sender })
    }

    /// How many flights are in progress.
    pub fn len(&self) -> usize {
        self.in_flight.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Whether no flight is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Lead<'_, K, V> {
    /// Hands `value` to every follower and ends the flight.
    pub fn land(self, value: V) {
        // No follower listening is fine: the value is the leader's answer too.
        let _ = self.result.send(Some(value));
    }
}

impl<K: Hash + Eq + Clone, V: Clone> Drop for Lead<'_, K, V> {
    fn drop(&mut self) {
        self.flights.in_flight.lock().unwrap_or_else(PoisonError::into_inner).remove(&self.key);
    }
}

impl<V: Clone> Follow<V> {
    /// The leader's result, or `None` if it gave up or `wait` passed first.
    pub async fn result(mut self, wait: Duration) -> Option<V> {
        let landed = tokio::time::timeout(wait, self.result.wait_for(Option::is_some)).await;
        match landed {
            Ok(Ok(value)) => value.clone(),
            Ok(Err(_)) | Err(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn followers_get_the_leaders_result_and_the_flight_is_cleaned_up() {
        let flights: Flights<u8, &str> = Flights::default();
        let Seat::Leader(lead) = flights.board(1) else { panic!("the first caller leads") };
        let Seat::Follower(follow) = flights.board(1) else { panic!("the second follows") };
        assert!(matches!(flights.board(2), Seat::Leader(_)), "another key is another flight");
        lead.land("answer");
        assert_eq!(follow.result(Duration::from_secs(5)).await, Some("answer"));
        assert!(flights.is_empty());
    }

    #[tokio::test]
    async fn a_leader_that_gives_up_lets_followers_go_at_once() {
        let flights: Flights<u8, &str> = Flights::default();
        let Seat::Leader(lead) = flights.board(1) else { panic!("the first caller leads") };
        let Seat::Follower(follow) = flights.board(1) else { panic!("the second follows") };
        drop(lead);
        assert_eq!(follow.result(Duration::from_secs(3600)).await, None);
        assert!(flights.is_empty());
        assert!(matches!(flights.board(1), Seat::Leader(_)), "the next caller leads anew");
    }
}
