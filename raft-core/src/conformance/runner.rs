//! Running the named checks against a store's harness.

use std::fmt;

use super::checks::checks;
use super::harness::Harness;

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
