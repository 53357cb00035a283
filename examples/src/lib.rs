//! Runnable examples of the workspace; see the examples/ directory.
