//! SQL text helpers, in one place: quoting identifiers, normalizing `CREATE` statements so
//! two spellings of the same definition compare equal, and finding which names a statement
//! mentions. This is a tokenizer of whitespace,
//! quotes and comments only, not a SQL parser: SQLite parses every statement.

/// Quotes an identifier for SQL: `files` → `"files"`, `a"b` → `"a""b"`.
///
/// ```
/// assert_eq!(litekeep_recover::quote_ident("a\"b"), "\"a\"\"b\"");
/// ```
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Normalizes a `CREATE …` statement for comparison: comments dropped, runs of whitespace
/// collapsed (and removed next to punctuation), text outside string literals lower-cased, and
/// quotes removed from identifiers that need none. String literals and other quoted identifiers
/// are kept byte for byte.
///
/// ```
/// use litekeep_recover::normalize;
/// assert_eq!(
///     normalize("CREATE TABLE \"t\" ( a  INT, -- note\n b TEXT DEFAULT 'X' )"),
///     normalize("create table t(a int,b text default 'X')"),
/// );
/// ```
pub fn normalize(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut chars = sql.chars().peekable();
    let mut pending_space = false;
    while let Some(c) = chars.next() {
        match c {
            '-' if chars.peek() == Some(&'-') => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                pending_space = true;
            }
            '/' if chars.peek() == Some(&'*') => {
                chars.next();
                let mut prev = ' ';
                for c in chars.by_ref() {
                    if prev == '*' && c == '/' {
                        break;
                    }
                    prev = c;
                }
                pending_space = true;
            }
            c if c.is_whitespace() => pending_space = true,
            '\'' | '"' | '`' | '[' => {
                let close = if c == '[' { ']' } else { c };
                let mut body = String::new();
                while let Some(d) = chars.next() {
                    if d == close {
                        if close != ']' && chars.peek() == Some(&close) {
                            chars.next();
                            body.push(d);
                            body.push(d);
                            continue;
                        }
                        break;
                    }
                    body.push(d);
                }
                push_space(&mut out, &mut pending_space, '"');
                if c == '\'' {
                    out.push('\'');
                    out.push_str(&body);
                    out.push('\'');
                } else if is_plain_ident(&body) {
                    out.push_str(&body.to_ascii_lowercase());
                } else {
                    let body = if close == '"' {
                        body
                    } else {
                        body.replace('"', "\"\"")
                    };
                    out.push('"');
                    out.push_str(&body);
                    out.push('"');
                }
            }
            c => {
                push_space(&mut out, &mut pending_space, c);
                out.push(c.to_ascii_lowercase());
            }
        }
    }
    out.trim_end_matches([' ', ';']).to_owned()
}

/// Whether `sql` mentions the identifier `name` (compared ASCII-case-insensitively, quoted or
/// not), outside string literals and comments.
///
/// This is a token match, not name resolution: a column that happens to share a table's name
/// also counts. Callers use it to find the views and triggers that may refer to a table and
/// must treat a false positive as harmless.
///
/// ```
/// use litekeep_recover::mentions;
/// assert!(mentions("CREATE VIEW v AS SELECT a FROM \"Files\"", "files"));
/// assert!(!mentions("CREATE VIEW v AS SELECT 'files' FROM t", "files"));
/// assert!(!mentions("CREATE VIEW v AS SELECT a FROM files_old", "files"));
/// ```
pub fn mentions(sql: &str, name: &str) -> bool {
    identifiers(sql).any(|id| id.eq_ignore_ascii_case(name))
}

/// The identifier tokens of `sql`, unquoted: bare words and `"…"`, `` `…` `` and `[…]` quoted
/// names. String literals, numbers, comments and punctuation are skipped.
///
/// ```
/// let ids: Vec<String> = litekeep_recover::identifiers("SELECT \"a b\", 'lit' FROM [t] -- c").collect();
/// assert_eq!(ids, ["SELECT", "a b", "FROM", "t"]);
/// ```
pub fn identifiers(sql: &str) -> impl Iterator<Item = String> + '_ {
    let mut chars = sql.chars().peekable();
    std::iter::from_fn(move || {
        while let Some(c) = chars.next() {
            match c {
                '-' if chars.peek() == Some(&'-') => {
                    for c in chars.by_ref() {
                        if c == '\n' {
                            break;
                        }
                    }
                }
                '/' if chars.peek() == Some(&'*') => {
                    chars.next();
                    let mut prev = ' ';
                    for c in chars.by_ref() {
                        if prev == '*' && c == '/' {
                            break;
                        }
                        prev = c;
                    }
                }
                '\'' | '"' | '`' | '[' => {
                    let close = if c == '[' { ']' } else { c };
                    let mut body = String::new();
                    while let Some(d) = chars.next() {
                        if d == close {
                            if close != ']' && chars.peek() == Some(&close) {
                                chars.next();
                                body.push(d);
                                continue;
                            }
                            break;
                        }
                        body.push(d);
                    }
                    if c != '\'' {
                        return Some(body);
                    }
                }
                c if c.is_alphabetic() || c == '_' => {
                    let mut word = String::from(c);
                    while let Some(&d) = chars.peek() {
                        if d.is_alphanumeric() || d == '_' || d == '$' {
                            word.push(d);
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    return Some(word);
                }
                c if c.is_ascii_digit() => {
                    while chars
                        .peek()
                        .is_some_and(|d| d.is_alphanumeric() || *d == '.')
                    {
                        chars.next();
                    }
                }
                _ => {}
            }
        }
        None
    })
}

fn push_space(out: &mut String, pending: &mut bool, next: char) {
    if std::mem::take(pending) && !out.is_empty() {
        let last = out.chars().last().unwrap_or(' ');
        if !is_punct(last) && !is_punct(next) {
            out.push(' ');
        }
    }
}

fn is_punct(c: char) -> bool {
    matches!(
        c,
        '(' | ')' | ',' | ';' | '=' | '<' | '>' | '+' | '*' | '/' | '|' | '.'
    )
}

/// An identifier that means the same quoted or not: starts with a letter or `_`, then letters,
/// digits or `_`, and is not a keyword that would change meaning (conservatively: any word SQLite
/// lists as a keyword keeps its quotes).
fn is_plain_ident(s: &str) -> bool {
    let mut bytes = s.bytes();
    let first_ok = bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
    first_ok && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') && !is_keyword(s)
}

fn is_keyword(s: &str) -> bool {
    const KEYWORDS: &[&str] = &[
        "abort",
        "action",
        "add",
        "after",
        "all",
        "alter",
        "always",
        "analyze",
        "and",
        "as",
        "asc",
        "attach",
        "autoincrement",
        "before",
        "begin",
        "between",
        "by",
        "cascade",
        "case",
        "cast",
        "check",
        "collate",
        "column",
        "commit",
        "conflict",
        "constraint",
        "create",
        "cross",
        "current",
        "current_date",
        "current_time",
        "current_timestamp",
        "database",
        "default",
        "deferrable",
        "deferred",
        "delete",
        "desc",
        "detach",
        "distinct",
        "do",
        "drop",
        "each",
        "else",
        "end",
        "escape",
        "except",
        "exclude",
        "exclusive",
        "exists",
        "explain",
        "fail",
        "filter",
        "first",
        "following",
        "for",
        "foreign",
        "from",
        "full",
        "generated",
        "glob",
        "group",
        "groups",
        "having",
        "if",
        "ignore",
        "immediate",
        "in",
        "index",
        "indexed",
        "initially",
        "inner",
        "insert",
        "instead",
        "intersect",
        "into",
        "is",
        "isnull",
        "join",
        "key",
        "last",
        "left",
        "like",
        "limit",
        "match",
        "materialized",
        "natural",
        "no",
        "not",
        "nothing",
        "notnull",
        "null",
        "nulls",
        "of",
        "offset",
        "on",
        "or",
        "order",
        "others",
        "outer",
        "over",
        "partition",
        "plan",
        "pragma",
        "preceding",
        "primary",
        "query",
        "raise",
        "range",
        "recursive",
        "references",
        "regexp",
        "reindex",
        "release",
        "rename",
        "replace",
        "restrict",
        "returning",
        "right",
        "rollback",
        "row",
        "rows",
        "savepoint",
        "select",
        "set",
        "table",
        "temp",
        "temporary",
        "then",
        "ties",
        "to",
        "transaction",
        "trigger",
        "unbounded",
        "union",
        "unique",
        "update",
        "using",
        "vacuum",
        "values",
        "view",
        "virtual",
        "when",
        "where",
        "window",
        "with",
        "without",
    ];
    KEYWORDS.contains(&s.to_ascii_lowercase().as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_definition_normalize_equal() {
        let a = "CREATE TABLE \"files\" (\n  id INTEGER PRIMARY KEY, -- the id\n  path TEXT NOT NULL\n)";
        let b = "create table files(id integer primary key,path text not null);";
        assert_eq!(normalize(a), normalize(b));
    }

    #[test]
    fn literals_and_needed_quotes_are_kept() {
        assert_ne!(normalize("DEFAULT 'A'"), normalize("DEFAULT 'a'"));
        assert_eq!(normalize("\"my col\" TEXT"), "\"my col\" text");
        assert_eq!(normalize("\"order\" INT"), "\"order\" int");
        assert_eq!(normalize("[Path] TEXT"), "path text");
    }

    #[test]
    fn identifiers_skip_literals_and_comments() {
        let ids: Vec<String> = identifiers(
            "CREATE TRIGGER t AFTER INSERT ON [a b] BEGIN -- files\n INSERT INTO \"x\"\"y\" VALUES ('files', 1e5, x2); END",
        )
        .collect();
        assert_eq!(
            ids,
            [
                "CREATE", "TRIGGER", "t", "AFTER", "INSERT", "ON", "a b", "BEGIN", "INSERT",
                "INTO", "x\"y", "VALUES", "x2", "END"
            ]
        );
    }

    #[test]
    fn quote_ident_doubles_quotes() {
        assert_eq!(quote_ident("files"), "\"files\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
