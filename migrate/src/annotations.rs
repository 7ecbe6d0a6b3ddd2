//! Rename annotations written in the desired schema itself, in sqldef's syntax:
//!
//! ```sql
//! CREATE TABLE users ( -- @renamed from=user_accounts
//!   id INTEGER PRIMARY KEY,
//!   user_name TEXT NOT NULL, -- @renamed from=username
//!   age INTEGER
//! );
//! CREATE TABLE new_users /* @renamed from=old_users */ (id INTEGER);
//! CREATE INDEX email_idx /* @renamed from=idx_email */ ON users (user_name);
//! ```
//!
//! Where a comment sits says what it renames:
//! - the table: before the `(` of the column list, or on the line of that `(` before the first
//!   column (`CREATE TABLE t ( -- @renamed from=old`, `CREATE TABLE t /* … */ (…)`);
//! - a column: inside its definition, at the end of its line (after its comma, or before it),
//!   or a `/* … */` just before its name on the same line;
//! - an index: anywhere before its `ON`, or at the end of the `CREATE INDEX` line.
//!
//! `OLD` is bare or quoted (`"user accounts"`, `'x'`, `` `x` ``, `[x]`). A comment that says
//! `@renamed` anywhere else — on a table constraint, in a view or trigger, on a line of its own —
//! is refused with its line number rather than ignored, and so is a malformed one. Comments
//! inside string literals and quoted identifiers are not comments. An annotation means exactly
//! what a [`Rename`] hint means (see [`Options::rename`](crate::Options::rename)), except that
//! it applies only while the database has its old name and lacks its new one (or a pending
//! rename moves the new one away first): one whose new name exists is done, even where the old
//! name was taken again since, and one whose old name the database lacks names nothing (a fresh
//! database). Both are ignored, so annotations can stay in a schema file for good.

use crate::error::MigrateError;
use crate::options::Rename;
use crate::tokens::{Kind, Shape, Statement, Token, statements, tokenize, unquote};

/// A rename read from a comment of the desired schema.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Annotation {
    /// What it renames, as a hint would say it.
    pub rename: Rename,
    /// The 1-based line of the desired schema the comment is on.
    pub line: usize,
}

/// The word that marks an annotation.
const MARK: &str = "@renamed";

/// Every annotation in `sql`, in order.
///
/// # Errors
/// [`MigrateError::Annotation`] for a malformed one, one that sits where it renames nothing, and
/// two on one object.
pub(crate) fn read(sql: &str) -> Result<Vec<Annotation>, MigrateError> {
    if !sql.contains(MARK) {
        return Ok(Vec::new());
    }
    let tokens = tokenize(sql);
    let mut out: Vec<Annotation> = Vec::new();
    for stmt in statements(&tokens) {
        let shape = stmt.shape();
        for (at, comment) in stmt.tokens.iter().enumerate() {
            if !comment.is_comment() {
                continue;
            }
            let Some(from) = parse(comment)? else {
                continue;
            };
            let bad = |problem: &str| MigrateError::Annotation {
                line: comment.line,
                problem: problem.to_owned(),
            };
            let rename = match target(&stmt, &shape, at).map_err(|p| bad(&p))? {
                Target::Table(to) => Rename::Table { from, to },
                Target::Column(table, to) => Rename::Column { table, from, to },
                Target::Index(to) => Rename::Index { from, to },
            };
            if let Some(twice) = out.iter().find(|a| a.rename.same_target(&rename)) {
                return Err(bad(&format!(
                    "{} already has an annotation on line {}; keep one",
                    rename.target_text(),
                    twice.line
                )));
            }
            out.push(Annotation {
                rename,
                line: comment.line,
            });
        }
    }
    Ok(out)
}

/// The old name in a comment `… @renamed from=OLD …`, or `None` when the comment has no mark.
fn parse(comment: &Token<'_>) -> Result<Option<String>, MigrateError> {
    let body = match comment.kind {
        Kind::LineComment => comment.text.trim_start_matches('-'),
        _ => comment
            .text
            .strip_prefix("/*")
            .map_or(comment.text, |b| b.strip_suffix("*/").unwrap_or(b)),
    };
    let Some(at) = body.find(MARK) else {
        return Ok(None);
    };
    let bad = || MigrateError::Annotation {
        line: comment.line,
        problem: format!(
            "expected `@renamed from=OLD_NAME` in `{}`",
            comment.text.trim()
        ),
    };
    let rest = &body[at + MARK.len()..];
    if rest.starts_with(|c: char| !c.is_whitespace()) {
        return Err(bad());
    }
    let rest = rest.trim_start();
    let rest = rest
        .get(..4)
        .filter(|w| w.eq_ignore_ascii_case("from"))
        .map(|_| rest[4..].trim_start())
        .and_then(|r| r.strip_prefix('='))
        .ok_or_else(bad)?
        .trim_start();
    let (name, after) = name(rest).ok_or_else(bad)?;
    if after.contains(MARK) {
        return Err(MigrateError::Annotation {
            line: comment.line,
            problem: "two annotations in one comment; write one per comment".to_owned(),
        });
    }
    Ok(Some(name))
}

/// A bare or quoted name at the start of `text`, and what follows it.
fn name(text: &str) -> Option<(String, &str)> {
    let open = text.chars().next()?;
    let close = match open {
        '"' | '\'' | '`' => open,
        '[' => ']',
        _ => {
            let end = text
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
                .unwrap_or(text.len());
            return (end > 0).then(|| (text[..end].to_owned(), &text[end..]));
        }
    };
    let mut i = open.len_utf8();
    let bytes = text.as_bytes();
    let q = u8::try_from(close).ok()?;
    while i < bytes.len() {
        if bytes[i] == q {
            if close != ']' && bytes.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            let name = unquote(&text[..=i]);
            return (!name.is_empty()).then(|| (name, &text[i + 1..]));
        }
        i += 1;
    }
    None
}

enum Target {
    Table(String),
    Column(String, String),
    Index(String),
}

const WHERE: &str = "an annotation goes after `CREATE TABLE name (`, at the end of a column's line, or after `CREATE INDEX name`";

/// What the comment at token `at` of `stmt` renames.
fn target(stmt: &Statement<'_, '_>, shape: &Shape<'_, '_>, at: usize) -> Result<Target, String> {
    let tokens = stmt.tokens;
    let comment = &tokens[at];
    let code_start = tokens.iter().position(|t| !t.is_comment());
    if code_start.is_none_or(|c| at < c) {
        return Err(format!(
            "this annotation is not on the line of what it renames; {WHERE}"
        ));
    }
    let ident = |t: &Token<'_>| t.ident().unwrap_or_default();
    match shape {
        Shape::Index { name, on } => {
            if on.is_none_or(|on| at < on) || comment.line == name.line {
                Ok(Target::Index(ident(name)))
            } else {
                Err(format!(
                    "this annotation is inside the index's column list; {WHERE}"
                ))
            }
        }
        Shape::Table {
            name,
            open,
            close,
            items,
        } => {
            let table = ident(name);
            let Some(open) = *open else {
                return Ok(Target::Table(table));
            };
            if at < open {
                return Ok(Target::Table(table));
            }
            let column = |item: &crate::tokens::Item| {
                if item.column {
                    Ok(Target::Column(table.clone(), ident(&tokens[item.first])))
                } else {
                    Err(format!(
                        "this annotation is on a table constraint, which cannot be renamed; {WHERE}"
                    ))
                }
            };
            if let Some(item) = items.iter().find(|i| i.first < at && at < i.last) {
                return column(item);
            }
            let prev = items.iter().rev().find(|i| i.last < at);
            let next = items.iter().find(|i| i.first > at);
            if close.is_some_and(|c| at > c) {
                // After the closing `)`: the last column's line, unless the table is one line.
                return match prev {
                    Some(p)
                        if tokens[p.last].line == comment.line
                            && tokens[open].line != comment.line =>
                    {
                        column(p)
                    }
                    _ => Err(format!(
                        "this annotation after the closing `)` could mean the table or a column; {WHERE}"
                    )),
                };
            }
            let Some(prev) = prev else {
                // Between `(` and the first column.
                if tokens[open].line == comment.line {
                    return Ok(Target::Table(table));
                }
                return match next {
                    Some(n)
                        if comment.kind == Kind::BlockComment
                            && tokens[n.first].line == comment.end_line =>
                    {
                        column(n)
                    }
                    _ => Err(format!("this annotation is on a line of its own; {WHERE}")),
                };
            };
            let comma = (prev.last + 1..tokens.len()).find(|&i| tokens[i].kind == Kind::Punct(','));
            let same_line = tokens[prev.last].line == comment.line;
            let before_comma = comma.is_none_or(|c| at < c);
            if comment.kind == Kind::LineComment || before_comma {
                return if same_line {
                    column(prev)
                } else {
                    Err(format!("this annotation is on a line of its own; {WHERE}"))
                };
            }
            match next {
                Some(n) if tokens[n.first].line == comment.end_line => column(n),
                _ if same_line => column(prev),
                _ => Err(format!("this annotation is on a line of its own; {WHERE}")),
            }
        }
        Shape::Other => Err(format!(
            "annotations rename tables, columns and indexes, and this one is in another statement; {WHERE}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn renames(sql: &str) -> Vec<(String, usize)> {
        read(sql)
            .unwrap_or_else(|e| panic!("{e}"))
            .into_iter()
            .map(|a| (a.rename.to_string(), a.line))
            .collect()
    }

    fn refused(sql: &str) -> String {
        read(sql).expect_err(sql).to_string()
    }

    #[test]
    fn the_issue_examples() {
        let sql = r#"CREATE TABLE users ( -- @renamed from=user_accounts
  id bigint NOT NULL,
  user_name text NOT NULL, -- @renamed from=username
  age integer
);
CREATE TABLE new_users /* @renamed from=old_users */ (id integer);
CREATE TABLE "user_profiles" ( -- @renamed from="user accounts"
  id integer
);
CREATE INDEX email_idx /* @renamed from=idx_email */ ON users (email);
"#;
        assert_eq!(
            renames(sql),
            [
                ("user_accounts=users".to_owned(), 1),
                ("users.username=users.user_name".to_owned(), 3),
                ("old_users=new_users".to_owned(), 6),
                ("user accounts=user_profiles".to_owned(), 7),
                ("index:idx_email=email_idx".to_owned(), 10),
            ]
        );
    }

    #[test]
    fn every_quote_and_place() {
        let sql = "CREATE TABLE t (\n a INT /* @renamed from='x y' */,\n b INT -- @renamed from=`b``q`\n, /* @renamed from=[c d] */ c INT,\n d INT NOT NULL -- @renamed from=\"D\"\"2\"\n);\nCREATE INDEX i ON t (a); -- @renamed from=j\nCREATE TABLE one (x INT /* @renamed from=y */, z INT);";
        assert_eq!(
            renames(sql),
            [
                ("t.x y=t.a".to_owned(), 2),
                ("t.b`q=t.b".to_owned(), 3),
                ("t.c d=t.c".to_owned(), 4),
                ("t.D\"2=t.d".to_owned(), 5),
                ("index:j=i".to_owned(), 7),
                ("one.y=one.x".to_owned(), 8),
            ]
        );
    }

    #[test]
    fn strings_and_quoted_names_hide_nothing() {
        let sql =
            "CREATE TABLE t (a TEXT DEFAULT '-- @renamed from=x', \"/* @renamed from=y */\" INT);";
        assert!(renames(sql).is_empty());
    }

    #[test]
    fn misplaced_or_malformed_annotations_are_refused_with_their_line() {
        for (sql, line, says) in [
            (
                "-- @renamed from=x\nCREATE TABLE t (a);",
                1,
                "not on the line",
            ),
            (
                "CREATE TABLE t (\n a,\n -- @renamed from=x\n b);",
                3,
                "line of its own",
            ),
            (
                "CREATE TABLE t (a, PRIMARY KEY (a) -- @renamed from=x\n);",
                1,
                "table constraint",
            ),
            (
                "CREATE VIEW v AS SELECT 1; -- @renamed from=w",
                1,
                "another statement",
            ),
            ("CREATE TABLE t (a); -- @renamed from=x", 1, "could mean"),
            ("CREATE TABLE t (a -- @renamed to=x\n);", 1, "expected"),
            ("CREATE TABLE t (a -- @renamed from=\n);", 1, "expected"),
            ("CREATE TABLE t (a -- @renamedfrom=x\n);", 1, "expected"),
            (
                "CREATE TABLE t (a -- @renamed from=x @renamed from=y\n);",
                1,
                "two",
            ),
            (
                "CREATE TABLE t (\n a, -- @renamed from=x\n b /* @renamed from=y */\n , c);",
                2,
                "",
            ),
        ] {
            if says.is_empty() {
                assert_eq!(renames(sql).len(), 2, "{sql}");
                continue;
            }
            let e = refused(sql);
            assert!(
                e.contains(&format!("line {line}")) && e.contains(says),
                "{sql}: {e}"
            );
        }
    }

    #[test]
    fn two_annotations_on_one_column_are_refused() {
        let e = refused("CREATE TABLE t (a /* @renamed from=x */ INT -- @renamed from=y\n);");
        assert!(e.contains("already has an annotation on line 1"), "{e}");
    }
}
