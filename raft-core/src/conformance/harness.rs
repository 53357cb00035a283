//! The harness a store's tests implement, and the shape of one named check.

use crate::storage::Storage;

/// Creates and reopens the store under test.
pub trait Harness {
    /// The store under test.
    type Store: Storage;

    /// A new, empty store (e.g. in a fresh temporary directory).
    fn create(&mut self) -> Result<Self::Store, <Self::Store as Storage>::Error>;

    /// Closes `store` without syncing it and opens it again from what it left behind, as a
    /// process restart (or, for a simulated store, a crash) would. The kit calls
    /// [`Storage::restore`] on the result itself.
    fn reopen(
        &mut self,
        store: Self::Store,
    ) -> Result<Self::Store, <Self::Store as Storage>::Error>;
}

/// A named check: runs on a harness and returns what went wrong.
pub struct Check<H: Harness> {
    /// A name that says what is checked, e.g. `append_rejects_gaps_and_overlaps`.
    pub name: &'static str,
    /// Runs the check.
    pub run: fn(&mut H) -> Result<(), String>,
}
