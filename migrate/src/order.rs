//! Creation order: a view after the views it reads (SQLite's `CREATE VIEW` does not check, but
//! a schema printed in that order reads top to bottom, and a native `ALTER TABLE … RENAME`
//! checks every view it rewrites).

use crate::schema::Object;
use litekeep_recover::mentions;

/// `views` with each one after every other view it mentions; ties and cycles keep the given
/// order.
pub(crate) fn views_in_order<'a>(views: impl Iterator<Item = &'a Object>) -> Vec<&'a Object> {
    let mut left: Vec<&Object> = views.collect();
    let mut out = Vec::with_capacity(left.len());
    while !left.is_empty() {
        let ready = left.iter().position(|v| {
            !left
                .iter()
                .any(|w| !std::ptr::eq(*v, *w) && mentions(&v.sql, &w.name))
        });
        // A cycle (or a view that names itself through another): the rest as given.
        let at = ready.unwrap_or(0);
        out.push(left.remove(at));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, sql: &str) -> Object {
        Object {
            name: name.into(),
            table: name.into(),
            sql: sql.into(),
        }
    }

    #[test]
    fn a_view_comes_after_the_views_it_reads() {
        let views = [
            view("a", "CREATE VIEW a AS SELECT * FROM b JOIN c"),
            view("b", "CREATE VIEW b AS SELECT * FROM c"),
            view("c", "CREATE VIEW c AS SELECT * FROM t"),
            view("d", "CREATE VIEW d AS SELECT 1"),
        ];
        let names: Vec<&str> = views_in_order(views.iter())
            .into_iter()
            .map(|v| v.name.as_str())
            .collect();
        assert_eq!(names, ["c", "b", "a", "d"]);
    }
}
