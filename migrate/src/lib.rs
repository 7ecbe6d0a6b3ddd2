//! Desired-schema diffing that rebuilds tables in one transaction.
//!
//! **Not built yet** (issue 4). This crate exists so the workspace has its final shape; it
//! exports nothing, and nothing depends on it doing anything yet.

#![deny(missing_docs)]
