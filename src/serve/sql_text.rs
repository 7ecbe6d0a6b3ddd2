//! What litekeep reads of a statement's text itself: its first keyword, to refuse transaction
//! control inside a call (transactions are the body's `tx`, never a statement) and to tell a
//! query from a change. Both engines see only one statement per text (SQLite's prepare and
//! DuckDB's statement count refuse a second), so the first keyword is the statement's kind.

/// The first keyword of `sql`, upper-cased, after whitespace, `--` and `/* */` comments and
/// opening parentheses; empty when there is none.
pub(crate) fn first_keyword(sql: &str) -> String {
    let mut rest = sql;
    loop {
        let trimmed = rest.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(after) = trimmed.strip_prefix("--") {
            rest = after.split_once('\n').map_or("", |(_, r)| r);
        } else if let Some(after) = trimmed.strip_prefix("/*") {
            rest = after.split_once("*/").map_or("", |(_, r)| r);
        } else {
            rest = trimmed;
            break;
        }
    }
    rest.chars()
        .take_while(|c| c.is_ascii_alphabetic() || *c == '_')
        .collect::<String>()
        .to_ascii_uppercase()
}

/// Whether the statement controls transactions (`BEGIN`, `COMMIT`, `SAVEPOINT`, …), or forces
/// a checkpoint that aborts other transactions (DuckDB's `FORCE CHECKPOINT`): refused in a
/// call, whose transaction litekeep runs.
pub(crate) fn controls_transactions(keyword: &str) -> bool {
    matches!(
        keyword,
        "BEGIN"
            | "START"
            | "COMMIT"
            | "END"
            | "ROLLBACK"
            | "ABORT"
            | "SAVEPOINT"
            | "RELEASE"
            | "FORCE"
    )
}

#[cfg_attr(not(feature = "duckdb"), allow(dead_code))]
/// Whether a statement of this first keyword is a change (`INSERT`, `UPDATE`, `DELETE`, …)
/// whose result, without `RETURNING`, is only its count of changed rows.
pub(crate) fn is_change(keyword: &str) -> bool {
    matches!(
        keyword,
        "INSERT"
            | "UPDATE"
            | "DELETE"
            | "REPLACE"
            | "UPSERT"
            | "MERGE"
            | "CREATE"
            | "DROP"
            | "ALTER"
            | "COPY"
            | "TRUNCATE"
    )
}

/// The error for a statement that controls transactions.
pub(crate) fn transaction_control_refused(keyword: &str) -> super::body::SqlError {
    super::body::SqlError::litekeep(
        super::codes::TRANSACTION_STATEMENT,
        format!(
            "{keyword} is not run inside a call: a call's statements are one unit already; to hold a transaction across calls, send \"tx\": \"begin\" / \"commit\" / \"rollback\" in the request"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_keyword_is_found_past_comments_and_parentheses() {
        assert_eq!(first_keyword("  select 1"), "SELECT");
        assert_eq!(first_keyword("-- c\n/* d */ ( (commit"), "COMMIT");
        assert_eq!(first_keyword("/* unterminated"), "");
        assert_eq!(first_keyword("with x as (select 1) insert"), "WITH");
        assert!(controls_transactions(&first_keyword(
            "/*x*/Begin Immediate"
        )));
        assert!(!controls_transactions(&first_keyword("SELECT 'BEGIN'")));
    }
}
