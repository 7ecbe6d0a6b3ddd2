//! Repair of tables left behind by interrupted migrations, plus integrity checks.
//!
//! **Not built yet** (issue 5). This crate exists so the workspace has its final shape; it
//! exports nothing, and nothing depends on it doing anything yet.

#![deny(missing_docs)]
