//! What a scan finds and what recovery does about it.

use std::fmt;

use serde::Serialize;

use crate::names::Tool;

/// One leftover of an interrupted table rebuild, and the repair decided for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The temporary table (or, for [`Case::DanglingReferences`], the missing table that other
    /// objects still name).
    pub table: String,
    /// The table it was made for.
    pub original: String,
    /// Whose naming it follows.
    pub tool: Tool,
    /// Rows in the temporary table (0 when it does not exist).
    pub temp_rows: u64,
    /// Rows in the original table; `None` when the original is missing.
    pub original_rows: Option<u64>,
    /// Foreign keys, views and triggers elsewhere that name the temporary table.
    pub references: Vec<String>,
    /// Which state the rebuild was interrupted in.
    pub case: Case,
    /// What recovery does (or, in a dry run, would do).
    pub action: Action,
}

/// The state an interrupted rebuild left, as the issue numbers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Case {
    /// 1: the original is missing and the temporary table holds the rows.
    OriginalMissing,
    /// 2: the original exists but is empty; the temporary table holds rows.
    OriginalEmpty,
    /// 3: both hold rows, and some of the temporary table's rows are not in the original.
    BothHoldRows,
    /// 4: the temporary table is empty or every row of it is also in the original.
    TempEmptyOrSubset,
    /// The temporary table is gone, but foreign keys, views or triggers still name it (a
    /// rename with `legacy_alter_table=OFF` rewrote them, and the table was dropped after).
    DanglingReferences,
}

/// The repair for one finding. Every repair keeps every row; references that named the
/// temporary table are pointed at the original again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Action {
    /// Rename the temporary table back to the original's name (case 1; also case 2 when the
    /// original's definition cannot hold the rows, which loses nothing: the original is empty).
    RenameBack,
    /// Copy the temporary table's rows into the empty original, keeping rowids, then drop the
    /// temporary table (case 2).
    RestoreRows {
        /// Rows copied.
        rows: u64,
    },
    /// Copy the rows the original lacks (their keys are free there), then drop the temporary
    /// table (case 3).
    InsertMissing {
        /// Rows copied.
        rows: u64,
    },
    /// Drop the temporary table: it is empty or each of its rows is in the original (case 4).
    DropTemp,
    /// Point the references at the original table again (dangling references).
    Repoint,
    /// Nothing is changed: the evidence does not prove a repair loses nothing.
    Leave {
        /// Why, and what to do about it.
        reason: String,
    },
}

impl Action {
    /// Whether this action changes the file.
    ///
    /// ```
    /// use litekeep_recover::Action;
    /// assert!(Action::DropTemp.changes_anything());
    /// assert!(!Action::Leave { reason: "rows differ".into() }.changes_anything());
    /// ```
    pub fn changes_anything(&self) -> bool {
        !matches!(self, Action::Leave { .. })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let original = match self.original_rows {
            Some(n) => format!("{} ({n} rows)", self.original),
            None => format!("{} (missing)", self.original),
        };
        write!(
            f,
            "{} ({}, {} rows) left by {} for {original}: ",
            self.table,
            match self.case {
                Case::OriginalMissing => "original missing",
                Case::OriginalEmpty => "original empty",
                Case::BothHoldRows => "both hold rows",
                Case::TempEmptyOrSubset => "nothing the original lacks",
                Case::DanglingReferences => "gone, still referenced",
            },
            self.temp_rows,
            self.tool.name(),
        )?;
        match &self.action {
            Action::RenameBack => write!(f, "rename it back to {}", self.original)?,
            Action::RestoreRows { rows } => {
                write!(f, "copy its {rows} rows into {} and drop it", self.original)?
            }
            Action::InsertMissing { rows } => write!(
                f,
                "copy the {rows} rows {} lacks and drop it",
                self.original
            )?,
            Action::DropTemp => write!(f, "drop it")?,
            Action::Repoint => write!(f, "point the references at {}", self.original)?,
            Action::Leave { reason } => write!(f, "left as it is: {reason}")?,
        }
        if !self.references.is_empty() && self.action.changes_anything() {
            write!(
                f,
                "; {} now point at {}",
                self.references.join(", "),
                self.original
            )?;
        }
        Ok(())
    }
}
