//! The harness a store's tests implement, and running the named checks against it.

use std::fmt;

use super::checks::checks;
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

/// One failed check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// The check's name, as listed by [`checks`].
    pub check: &'static str,
    /// What went wrong, with the values involved.
    pub message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.check, self.message)
    }
}

/// A named check: runs on a harness and returns what went wrong.
pub struct Check<H: Harness> {
    /// A name that says what is checked, e.g. `append_rejects_gaps_and_overlaps`.
    pub name: &'static str,
    /// Runs the check.
    pub run: fn(&mut H) -> Result<(), String>,
}

/// Runs every check in [`checks`], returning all failures.
pub fn run_all<H: Harness>(harness: &mut H) -> Result<(), Vec<Failure>> {
    let failures: Vec<Failure> = checks::<H>()
        .into_iter()
        .filter_map(|check| {
            (check.run)(harness).err().map(|message| Failure {
                check: check.name,
                message,
            })
        })
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures)
    }
}

/// Runs every check and panics with the list of failures, if any. Meant for a `#[test]`.
///
/// # Panics
///
/// When the store fails any check.
pub fn assert_conforms<H: Harness>(harness: &mut H) {
    if let Err(failures) = run_all(harness) {
        let lines: Vec<String> = failures.iter().map(|f| format!("  - {f}")).collect();
        panic!(
            "storage conformance failed ({} checks):\n{}",
            failures.len(),
            lines.join("\n")
        );
    }
}
