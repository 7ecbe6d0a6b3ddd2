//! The `schema_text` campaign: any bytes, read as UTF-8 (lossily), as a desired schema.
//!
//! [`Schema::from_sql`] returns `Ok` or `Err`, never panics nor hangs (it executes the
//! statements, so a `CREATE TABLE … AS SELECT` of an endless recursive query must be cut off);
//! when it is `Ok`, [`diff`] from the empty schema and [`apply`] to a fresh in-memory database
//! return `Ok` or `Err` without panicking, every error displays, and an `Ok` from `apply` leaves
//! exactly the desired schema (as `apply` itself verifies before committing).

use litekeep_migrate::{MigrateError, Options, Schema, apply, diff};
use rusqlite::Connection;

/// How far one [`schema_text`] input got.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaTextOutcome {
    /// `Schema::from_sql` refused it (the message).
    NotASchema(String),
    /// `diff` from the empty schema refused it.
    DiffRefused(String),
    /// `apply` refused the plan.
    ApplyRefused {
        /// The message.
        message: String,
    },
    /// Applied: this many steps.
    Applied(usize),
}

/// Feeds `bytes` through parsing, planning and applying; panics only if the library panics,
/// or an applied plan does not leave the desired schema, or `apply` finds that it did not
/// (`MigrateError::Verify`).
pub fn schema_text(bytes: &[u8]) {
    schema_text_outcome(bytes);
}

/// [`schema_text`], returning how far the input got.
pub fn schema_text_outcome(bytes: &[u8]) -> SchemaTextOutcome {
    let text = String::from_utf8_lossy(bytes);
    let desired = match Schema::from_sql(&text) {
        Ok(schema) => schema,
        Err(e) => return SchemaTextOutcome::NotASchema(e.to_string()),
    };
    let options = Options::default();
    let plan = match diff(&Schema::default(), &desired, &options) {
        Ok(plan) => plan,
        Err(e) => return SchemaTextOutcome::DiffRefused(e.to_string()),
    };
    let steps = plan.steps.len();
    // Display must not panic either.
    let _ = (plan.to_string(), plan.sql());
    let Ok(mut conn) = Connection::open_in_memory() else {
        panic!("schema_text: cannot open an in-memory database");
    };
    match apply(&mut conn, plan, &options) {
        Ok(_) => {
            let now = match Schema::read(&conn) {
                Ok(now) => now,
                Err(e) => panic!("schema_text: applied, then the schema cannot be read: {e}"),
            };
            let difference = now.describe_difference(&desired);
            assert!(
                difference.is_empty(),
                "schema_text: applied, but the schema is not the desired one: {difference:#?}\n-- desired schema:\n{text}\n-- end"
            );
            SchemaTextOutcome::Applied(steps)
        }
        Err(e @ MigrateError::Verify { .. }) => panic!(
            "schema_text: apply failed its own verification: {e}\n-- desired schema:\n{text}\n-- end"
        ),
        Err(e) => SchemaTextOutcome::ApplyRefused {
            message: e.to_string(),
        },
    }
}
