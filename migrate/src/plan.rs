//! [`Plan`]: what a migration will do, step by step, with the exact SQL.

use std::fmt;

use crate::schema::{Fingerprint, Schema};

/// What kind of change a [`Step`] makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StepKind {
    /// `CREATE TABLE`.
    CreateTable,
    /// `DROP TABLE` (data loss).
    DropTable,
    /// `ALTER TABLE … RENAME TO` (a rename hint).
    RenameTable,
    /// `ALTER TABLE … ADD COLUMN`.
    AddColumn,
    /// `ALTER TABLE … RENAME COLUMN` (a rename hint).
    RenameColumn,
    /// Rename-copy-drop rebuild of a table.
    RebuildTable,
    /// `CREATE INDEX/VIEW/TRIGGER`.
    Create,
    /// `DROP INDEX/VIEW/TRIGGER`.
    Drop,
}

/// One step of a plan.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Step {
    /// What kind of change.
    pub kind: StepKind,
    /// The table (or index, view, trigger) it changes, by its desired name.
    pub target: String,
    /// A human description ("rebuild table files: column size INTEGER → TEXT").
    pub description: String,
    /// The statements, in order.
    pub sql: Vec<String>,
}

/// What a migration will do. Empty when the database already has the desired schema.
///
/// ```
/// use litekeep_migrate::{diff, Options, Schema};
/// let current = Schema::from_sql("CREATE TABLE t (a INTEGER);").unwrap();
/// let desired = Schema::from_sql("CREATE TABLE t (a TEXT);").unwrap();
/// let plan = diff(&current, &desired, &Options::default()).unwrap();
/// assert!(!plan.is_empty());
/// assert!(plan.sql().contains("ALTER TABLE \"t\" RENAME TO \"temp_t\""));
/// println!("{plan}");
/// ```
#[derive(Clone, Debug)]
pub struct Plan {
    /// The steps, in order.
    pub steps: Vec<Step>,
    /// What the plan would drop ("table t", "column t.c"); applying refuses unless
    /// [`Options::allow_data_loss`](crate::Options::allow_data_loss).
    pub data_loss: Vec<DataLoss>,
    /// The fingerprint of the schema the plan starts from.
    pub from: Fingerprint,
    /// The fingerprint of the desired schema.
    pub to: Fingerprint,
    /// The desired schema, to verify against before committing.
    pub desired: Schema,
    /// Tables rebuilt or altered, whose foreign keys are checked before committing.
    pub touched: Vec<String>,
}

/// Something a plan would drop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DataLoss {
    /// The table.
    pub table: String,
    /// The column, or `None` for the whole table.
    pub column: Option<String>,
}

impl fmt::Display for DataLoss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "column {}.{c}", self.table),
            None => write!(f, "table {}", self.table),
        }
    }
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// All statements, one per line, each ending in `;`.
    pub fn sql(&self) -> String {
        let mut out = String::new();
        for stmt in self.steps.iter().flat_map(|s| &s.sql) {
            out.push_str(stmt);
            out.push_str(";\n");
        }
        out
    }
}

impl fmt::Display for Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_empty() {
            return write!(f, "up to date ({})", self.to);
        }
        writeln!(f, "migration {} → {}:", self.from, self.to)?;
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {}. {}", i + 1, step.description)?;
        }
        for loss in &self.data_loss {
            writeln!(f, "  ! drops {loss}")?;
        }
        Ok(())
    }
}
