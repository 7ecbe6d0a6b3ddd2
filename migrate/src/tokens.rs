//! A comment-aware tokenizer of SQL text, and the shape of `CREATE TABLE`/`CREATE INDEX`
//! statements it can see: statement boundaries, the table's column list and each column
//! definition's span. Not a SQL parser — SQLite parses every statement; this only finds where
//! comments sit (for `@renamed` annotations) and where a column definition begins and ends
//! (to carry an undeclared column's definition into a rebuilt table).

/// What a token is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A bare word: keyword, identifier or number.
    Word,
    /// An identifier in `"…"`, `` `…` `` or `[…]`.
    Quoted,
    /// A string literal `'…'`.
    Str,
    /// `-- …` up to the end of the line.
    LineComment,
    /// `/* … */`.
    BlockComment,
    /// Any other single character.
    Punct(char),
}

/// One token: its kind, byte span and the 1-based line it starts on.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Token<'a> {
    pub(crate) kind: Kind,
    pub(crate) text: &'a str,
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) line: usize,
    /// The line it ends on (a block comment or string may span lines).
    pub(crate) end_line: usize,
}

impl Token<'_> {
    pub(crate) fn is_comment(&self) -> bool {
        matches!(self.kind, Kind::LineComment | Kind::BlockComment)
    }

    /// Whether this is the bare word `word` (case-insensitive).
    pub(crate) fn is_word(&self, word: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(word)
    }

    /// The identifier this token names: a bare word as written, a quoted one unquoted.
    /// `'x'` counts too, as SQLite accepts a string where a name is expected.
    pub(crate) fn ident(&self) -> Option<String> {
        match self.kind {
            Kind::Word => Some(self.text.to_owned()),
            Kind::Quoted | Kind::Str => Some(unquote(self.text)),
            _ => None,
        }
    }
}

/// Removes the quotes of `"a""b"`, `` `a` ``, `[a]` or `'a''b'`, undoing doubled quotes.
pub(crate) fn unquote(text: &str) -> String {
    let mut chars = text.chars();
    let (Some(open), Some(_)) = (chars.next(), chars.next_back()) else {
        return text.to_owned();
    };
    let inner = chars.as_str();
    match open {
        '[' => inner.to_owned(),
        q @ ('"' | '`' | '\'') => inner.replace(&format!("{q}{q}"), &q.to_string()),
        _ => text.to_owned(),
    }
}

/// Splits `sql` into tokens; whitespace is skipped. Unterminated quotes and comments run to the
/// end of the text (SQLite would reject such a statement anyway).
pub(crate) fn tokenize(sql: &str) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut at = 0;
    let mut line = 1;
    while at < bytes.len() {
        let c = bytes[at];
        if c == b'\n' {
            line += 1;
            at += 1;
            continue;
        }
        if c.is_ascii_whitespace() {
            at += 1;
            continue;
        }
        let start = at;
        let kind = match c {
            b'-' if bytes.get(at + 1) == Some(&b'-') => {
                at = find(bytes, at, b"\n").unwrap_or(bytes.len());
                Kind::LineComment
            }
            b'/' if bytes.get(at + 1) == Some(&b'*') => {
                at = find(bytes, at + 2, b"*/").map_or(bytes.len(), |e| e + 2);
                Kind::BlockComment
            }
            b'\'' => {
                at = close_quote(bytes, at, b'\'');
                Kind::Str
            }
            b'"' | b'`' => {
                at = close_quote(bytes, at, c);
                Kind::Quoted
            }
            b'[' => {
                at = find(bytes, at, b"]").map_or(bytes.len(), |e| e + 1);
                Kind::Quoted
            }
            c if is_word_byte(c) => {
                while at < bytes.len() && is_word_byte(bytes[at]) {
                    at += 1;
                }
                Kind::Word
            }
            _ => {
                // One character, whole (a multi-byte one is never split).
                at += sql[at..].chars().next().map_or(1, char::len_utf8);
                Kind::Punct(char::from(c))
            }
        };
        let text = sql.get(start..at).unwrap_or("");
        let end_line = line + text.matches('\n').count();
        out.push(Token {
            kind,
            text,
            start,
            end: at,
            line,
            end_line,
        });
        line = end_line;
    }
    out
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

/// The end of a quoted token opened at `at` by `q`, a doubled `q` being an escaped one.
fn close_quote(bytes: &[u8], at: usize, q: u8) -> usize {
    let mut i = at + 1;
    while i < bytes.len() {
        if bytes[i] == q {
            if bytes.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    bytes.len()
}

/// One statement: its tokens, comments included, up to and including its `;` and any comment
/// after that `;` on the same line.
pub(crate) struct Statement<'t, 'a> {
    pub(crate) tokens: &'t [Token<'a>],
}

/// Splits tokens into statements at `;` outside parentheses and outside a trigger's
/// `BEGIN … END` body. Comments on their own lines between statements go with the statement
/// after them.
pub(crate) fn statements<'t, 'a>(tokens: &'t [Token<'a>]) -> Vec<Statement<'t, 'a>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    let mut depth = 0usize;
    let mut in_body = false;
    let mut cases = 0usize;
    let mut is_trigger = false;
    let mut words = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        if !t.is_comment() {
            if words < 4 && t.kind == Kind::Word {
                is_trigger |= t.is_word("trigger");
                words += 1;
            }
            match t.kind {
                Kind::Punct('(') => depth += 1,
                Kind::Punct(')') => depth = depth.saturating_sub(1),
                Kind::Word if is_trigger && t.is_word("begin") => in_body = true,
                Kind::Word if in_body && t.is_word("case") => cases += 1,
                Kind::Word if in_body && t.is_word("end") => {
                    if cases > 0 {
                        cases -= 1;
                    } else {
                        in_body = false;
                    }
                }
                Kind::Punct(';') if depth == 0 && !in_body => {
                    // Comments after the `;` on its line belong to this statement.
                    let mut end = i + 1;
                    while tokens
                        .get(end)
                        .is_some_and(|c| c.is_comment() && c.line == t.line)
                    {
                        end += 1;
                    }
                    out.push(Statement {
                        tokens: &tokens[start..end],
                    });
                    start = end;
                    i = end;
                    depth = 0;
                    is_trigger = false;
                    words = 0;
                    continue;
                }
                _ => {}
            }
        }
        i += 1;
    }
    if start < tokens.len() {
        out.push(Statement {
            tokens: &tokens[start..],
        });
    }
    out
}

/// What a statement creates, as far as annotations and column spans care.
pub(crate) enum Shape<'t, 'a> {
    /// `CREATE TABLE name (items…)`, or `CREATE TABLE name AS …` (no items, `open` is `None`).
    Table {
        /// The token naming the table.
        name: &'t Token<'a>,
        /// Index (in the statement's tokens) of the `(` opening the column list.
        open: Option<usize>,
        /// Index of the `)` closing it.
        close: Option<usize>,
        /// The column definitions and table constraints.
        items: Vec<Item>,
    },
    /// `CREATE [UNIQUE] INDEX name ON …`.
    Index {
        /// The token naming the index.
        name: &'t Token<'a>,
        /// Index of the `ON` keyword.
        on: Option<usize>,
    },
    /// Anything else: a view, a trigger, comments alone.
    Other,
}

/// One entry of a column list: indexes (in the statement's tokens) of its first and last
/// non-comment tokens, and whether it defines a column (not a table constraint).
#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub(crate) first: usize,
    pub(crate) last: usize,
    pub(crate) column: bool,
}

impl<'t, 'a> Statement<'t, 'a> {
    /// Indexes of the non-comment tokens.
    fn code(&self) -> Vec<usize> {
        (0..self.tokens.len())
            .filter(|&i| !self.tokens[i].is_comment())
            .collect()
    }

    /// The statement's shape.
    pub(crate) fn shape(&self) -> Shape<'t, 'a> {
        let tokens: &'t [Token<'a>] = self.tokens;
        let code = self.code();
        let word = |k: usize, w: &str| code.get(k).is_some_and(|&i| tokens[i].is_word(w));
        if !word(0, "create") {
            return Shape::Other;
        }
        let mut k = 1;
        while ["temp", "temporary", "unique", "virtual"]
            .iter()
            .any(|w| word(k, w))
        {
            k += 1;
        }
        let table = word(k, "table");
        if !table && !word(k, "index") {
            return Shape::Other;
        }
        k += 1;
        if word(k, "if") && word(k + 1, "not") && word(k + 2, "exists") {
            k += 3;
        }
        // `schema.name`: the name is the last part.
        if code
            .get(k + 1)
            .is_some_and(|&i| tokens[i].kind == Kind::Punct('.'))
        {
            k += 2;
        }
        let Some(&name_at) = code.get(k) else {
            return Shape::Other;
        };
        let name = &tokens[name_at];
        if !table {
            let on = code[k..].iter().copied().find(|&i| tokens[i].is_word("on"));
            return Shape::Index { name, on };
        }
        let open = code
            .get(k + 1)
            .copied()
            .filter(|&i| tokens[i].kind == Kind::Punct('('));
        let (close, items) = match open {
            Some(open) => column_items(tokens, &code, open),
            None => (None, Vec::new()),
        };
        Shape::Table {
            name,
            open,
            close,
            items,
        }
    }
}

/// The items of the column list opened at token `open`, and the index of its closing `)`.
fn column_items(tokens: &[Token<'_>], code: &[usize], open: usize) -> (Option<usize>, Vec<Item>) {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut first: Option<usize> = None;
    let mut last = open;
    for &i in code.iter().filter(|&&i| i > open) {
        let t = &tokens[i];
        match t.kind {
            Kind::Punct('(') => depth += 1,
            Kind::Punct(')') if depth == 0 => {
                if let Some(f) = first {
                    items.push(item(tokens, f, last));
                }
                return (Some(i), items);
            }
            Kind::Punct(')') => depth -= 1,
            Kind::Punct(',') if depth == 0 => {
                if let Some(f) = first.take() {
                    items.push(item(tokens, f, last));
                }
                continue;
            }
            _ => {}
        }
        first.get_or_insert(i);
        last = i;
    }
    (None, items)
}

fn item(tokens: &[Token<'_>], first: usize, last: usize) -> Item {
    let constraint = ["constraint", "primary", "unique", "check", "foreign"]
        .iter()
        .any(|w| tokens[first].is_word(w));
    Item {
        first,
        last,
        column: !constraint,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape_of(sql: &str) -> (String, Vec<String>) {
        let tokens = tokenize(sql);
        let stmts = statements(&tokens);
        let Shape::Table { name, items, .. } = stmts[0].shape() else {
            panic!("not a table: {sql}");
        };
        let items = items
            .iter()
            .map(|it| sql[stmts[0].tokens[it.first].start..stmts[0].tokens[it.last].end].to_owned())
            .collect();
        (name.ident().unwrap_or_default(), items)
    }

    #[test]
    fn column_items_are_split_at_top_level_commas() {
        let (name, items) = shape_of(
            "CREATE TABLE IF NOT EXISTS main.\"t x\" (a INTEGER DEFAULT (1, 2), -- c, d\n b TEXT CHECK (b IN ('x,y')), /* e, f */ PRIMARY KEY (a, b));",
        );
        assert_eq!(name, "t x");
        assert_eq!(
            items,
            [
                "a INTEGER DEFAULT (1, 2)",
                "b TEXT CHECK (b IN ('x,y'))",
                "PRIMARY KEY (a, b)"
            ]
        );
    }

    #[test]
    fn statements_split_outside_trigger_bodies_and_strings() {
        let sql = "CREATE TABLE a (x); -- after\nCREATE TRIGGER t AFTER INSERT ON a BEGIN SELECT CASE WHEN 1 THEN 'a;b' END; UPDATE a SET x = 1; END;\n-- alone\nCREATE INDEX i ON a (x)";
        let tokens = tokenize(sql);
        let stmts = statements(&tokens);
        let firsts: Vec<&str> = stmts.iter().map(|s| s.tokens[0].text).collect();
        assert_eq!(firsts, ["CREATE", "CREATE", "-- alone"]);
        assert_eq!(stmts[0].tokens.last().map(|t| t.text), Some("-- after"));
        assert!(matches!(stmts[2].shape(), Shape::Index { .. }));
    }

    #[test]
    fn quotes_and_comments_are_single_tokens() {
        let tokens = tokenize("'it''s -- no' \"a\"\"b\" `c` [d e] /* x\ny */ w -- z");
        let kinds: Vec<Kind> = tokens.iter().map(|t| t.kind).collect();
        assert_eq!(
            kinds,
            [
                Kind::Str,
                Kind::Quoted,
                Kind::Quoted,
                Kind::Quoted,
                Kind::BlockComment,
                Kind::Word,
                Kind::LineComment
            ]
        );
        assert_eq!(tokens[1].ident().as_deref(), Some("a\"b"));
        assert_eq!(tokens[3].ident().as_deref(), Some("d e"));
        assert_eq!((tokens[5].line, tokens[4].end_line), (2, 2));
    }
}
