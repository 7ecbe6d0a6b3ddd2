//! How a [`Plan`] is shown: text for people, one JSON value for programs.

use litekeep::migrate::{Origin, Plan, Rename};
use serde_json::{Value, json};

/// The plan as JSON: steps with their SQL, the renames with where each came from, what is kept
/// and what would be dropped.
pub fn plan_json(plan: &Plan) -> Value {
    let steps: Vec<Value> = plan
        .steps
        .iter()
        .map(|s| {
            json!({
                "kind": format!("{:?}", s.kind),
                "target": s.target,
                "description": s.description,
                "sql": s.sql,
            })
        })
        .collect();
    let renames: Vec<Value> = plan
        .renames
        .iter()
        .map(|r| {
            let (kind, table, from, to) = match &r.rename {
                Rename::Table { from, to } => ("table", None, from, to),
                Rename::Column { table, from, to } => ("column", Some(table), from, to),
                Rename::Index { from, to } => ("index", None, from, to),
            };
            let (origin, line) = match r.origin {
                Origin::Annotation { line } => ("annotation", Some(line)),
                _ => ("hint", None),
            };
            json!({ "kind": kind, "table": table, "from": from, "to": to, "origin": origin, "line": line })
        })
        .collect();
    let kept: Vec<Value> = plan
        .kept
        .iter()
        .map(|k| json!({ "kind": k.kind.to_string(), "name": k.name, "table": k.table }))
        .collect();
    json!({
        "from": plan.from.to_string(),
        "to": plan.to.to_string(),
        "steps": steps,
        "renames": renames,
        "kept": kept,
        "data_loss": plan.data_loss.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "warnings": plan.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "sql": plan.sql(),
    })
}
