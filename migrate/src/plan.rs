//! [`Plan`]: what a migration will do, step by step, with the exact SQL.

use std::fmt;

use crate::options::Rename;
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
    /// The fingerprint of the schema the plan arrives at: the desired one, plus what it keeps.
    pub to: Fingerprint,
    /// The fingerprint of the desired schema as declared (equal to `to` unless the plan keeps
    /// something undeclared).
    pub declared: Fingerprint,
    /// The schema the plan arrives at, to verify against before committing.
    pub desired: Schema,
    /// Tables rebuilt or altered, whose foreign keys are checked before committing.
    pub touched: Vec<String>,
    /// The renames the plan carries out, and where each came from (a hint or an annotation).
    pub renames: Vec<PlannedRename>,
    /// What the database has, the desired schema lacks, and the plan keeps
    /// ([`Options::keep_undeclared`](crate::Options::keep_undeclared)); [`Plan::desired`]
    /// includes them.
    pub kept: Vec<Kept>,
}

/// A rename a plan carries out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlannedRename {
    /// What is renamed.
    pub rename: Rename,
    /// Who asked for it.
    pub origin: Origin,
}

/// Where a rename came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Origin {
    /// A hint: [`Options::rename`](crate::Options::rename), `--rename`.
    Hint,
    /// A `@renamed` comment on this 1-based line of the desired schema.
    Annotation {
        /// The line.
        line: usize,
    },
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Hint => write!(f, "rename hint"),
            Origin::Annotation { line } => write!(f, "@renamed on schema line {line}"),
        }
    }
}

impl fmt::Display for PlannedRename {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match &self.rename {
            Rename::Table { from, to } => format!("table {from} → {to}"),
            Rename::Column { table, from, to } => format!("column {table}.{from} → {to}"),
            Rename::Index { from, to } => format!("index {from} → {to}"),
        };
        write!(f, "{what} ({})", self.origin)
    }
}

/// The kind of a schema object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A table.
    Table,
    /// A column of a table.
    Column,
    /// An index.
    Index,
    /// A view.
    View,
    /// A trigger.
    Trigger,
}

impl fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ObjectKind::Table => "table",
            ObjectKind::Column => "column",
            ObjectKind::Index => "index",
            ObjectKind::View => "view",
            ObjectKind::Trigger => "trigger",
        })
    }
}

/// Something the database has, the desired schema does not declare, and an additive plan keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kept {
    /// What kind of object.
    pub kind: ObjectKind,
    /// Its name (a column's own name).
    pub name: String,
    /// The table it belongs to (for a column, index or trigger).
    pub table: Option<String>,
}

impl fmt::Display for Kept {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.kind, &self.table) {
            (ObjectKind::Column, Some(t)) => write!(f, "column {t}.{}", self.name),
            (kind, Some(t)) => write!(f, "{kind} {} on {t}", self.name),
            (kind, None) => write!(f, "{kind} {}", self.name),
        }
    }
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
    /// Nothing to do. Example: [`Plan::sql`].
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// All statements, one per line, each ending in `;`.
    ///
    /// ```
    /// use litekeep_migrate::{Options, Schema, diff};
    /// let from = Schema::from_sql("CREATE TABLE t (a INTEGER);")?;
    /// let to = Schema::from_sql("CREATE TABLE t (a INTEGER); CREATE INDEX t_a ON t(a);")?;
    /// let plan = diff(&from, &to, &Options::default())?;
    /// assert!(!plan.is_empty());
    /// assert_eq!(plan.sql(), "CREATE INDEX t_a ON t(a);\n");
    /// # Ok::<(), litekeep_migrate::MigrateError>(())
    /// ```
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
            write!(f, "up to date ({})", self.to)?;
            if !self.kept.is_empty() {
                writeln!(f)?;
            }
        } else {
            writeln!(f, "migration {} → {}:", self.from, self.to)?;
        }
        for (i, step) in self.steps.iter().enumerate() {
            writeln!(f, "  {}. {}", i + 1, step.description)?;
        }
        for rename in &self.renames {
            writeln!(f, "  renames {rename}")?;
        }
        for kept in &self.kept {
            writeln!(f, "  = keeps {kept} (not declared)")?;
        }
        for loss in &self.data_loss {
            writeln!(f, "  ! drops {loss}")?;
        }
        Ok(())
    }
}
