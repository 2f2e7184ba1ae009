//! One JSON Schema against the last release's: json-schema-diff walks both (following `$ref`s
//! into `$defs`) and [`rules`](crate::rules) judges each change it reports.
//!
//! What the library does not do that these schemas need is done here by hand:
//! - It walks `anyOf` but not `oneOf`, and utoipa writes every nullable reference as
//!   `oneOf: [{type: null}, {$ref}]`: a field removed inside such a body would go unseen. Both
//!   sides have `oneOf` renamed `anyOf` first. Only the branches' shapes are compared, and for
//!   them the two mean the same when the branches are disjoint (null or an object), as here.
//! - It does not compare some keywords ([`UNCOMPARED`]: `multipleOf`, `minItems`, `maxItems`,
//!   `propertyNames`, `allOf`, ...), nor `additionalProperties` present on one side only. They
//!   are compared here on both schemas with every `$ref` inlined, along the same properties,
//!   array items, map values and `anyOf` branches; any difference breaks.
//! - It follows a recursive `$ref` forever and skips one that resolves nowhere: both are errors
//!   here, found before the library runs.

use serde_json::{Map, Value};

use crate::rules::{self, Judgement};

/// Keywords json-schema-diff 0.1.8 does not compare (see `DiffWalker::do_diff`). `oneOf` is in
/// the list for a schema that has both `oneOf` and `anyOf`, where it cannot be renamed.
pub const UNCOMPARED: &[&str] = &[
    "multipleOf",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "propertyNames",
    "patternProperties",
    "prefixItems",
    "contains",
    "minContains",
    "maxContains",
    "allOf",
    "oneOf",
    "not",
    "if",
    "then",
    "else",
    "dependentRequired",
    "dependentSchemas",
    "unevaluatedProperties",
    "unevaluatedItems",
];

/// Keywords whose values are data, not schemas: never rewritten or inlined.
pub(crate) const DATA: &[&str] = &["const", "enum", "default", "examples", "example"];

/// Why two schemas could not be compared.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("$ref {0:?} is recursive: json-schema-diff cannot compare recursive schemas")]
    Recursive(String),
    #[error("$ref {0:?} resolves to nothing in $defs")]
    Unresolved(String),
    #[error("json-schema-diff cannot read the schema: {0}")]
    Unreadable(serde_json::Error),
}

/// Judges every change from `old` (the last release's schema) to `new`.
pub fn compare(old: &Value, new: &Value) -> Result<Judgement, SchemaError> {
    let (old, new) = (one_of_as_any_of(old), one_of_as_any_of(new));
    let old_inlined = inlined(&old)?;
    let new_inlined = inlined(&new)?;
    let changes = json_schema_diff::diff(old, new)
        .map_err(|json_schema_diff::Error::Serde(e)| SchemaError::Unreadable(e))?;
    let mut judgement = rules::judge(&changes);
    let mut uncompared = Vec::new();
    compare_uncompared(&old_inlined, &new_inlined, "", &mut uncompared);
    judgement.merge_breaches(uncompared);
    Ok(judgement)
}

/// `schema` with each `oneOf` renamed `anyOf` (where the node has no `anyOf` of its own).
fn one_of_as_any_of(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let rename = !map.contains_key("anyOf");
            let out: Map<String, Value> = map
                .iter()
                .map(|(key, value)| match key.as_str() {
                    k if DATA.contains(&k) => (key.clone(), value.clone()),
                    "oneOf" if rename => ("anyOf".to_owned(), one_of_as_any_of(value)),
                    _ => (key.clone(), one_of_as_any_of(value)),
                })
                .collect();
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(one_of_as_any_of).collect()),
        other => other.clone(),
    }
}

/// `schema` with every `$ref` replaced by its definition from the root's `$defs` (or
/// `definitions`), and those removed.
fn inlined(schema: &Value) -> Result<Value, SchemaError> {
    let none = Map::new();
    let defs = schema
        .get("$defs")
        .or_else(|| schema.get("definitions"))
        .and_then(Value::as_object)
        .unwrap_or(&none);
    inline(schema, defs, &mut Vec::new())
}

/// `stack` holds the definitions being inlined above this node, to catch recursion.
fn inline(
    schema: &Value,
    defs: &Map<String, Value>,
    stack: &mut Vec<String>,
) -> Result<Value, SchemaError> {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            if let Some(Value::String(reference)) = map.get("$ref") {
                let name = reference
                    .strip_prefix("#/$defs/")
                    .or_else(|| reference.strip_prefix("#/definitions/"))
                    .ok_or_else(|| SchemaError::Unresolved(reference.clone()))?;
                if stack.iter().any(|above| above == name) {
                    return Err(SchemaError::Recursive(reference.clone()));
                }
                let definition = defs
                    .get(name)
                    .ok_or_else(|| SchemaError::Unresolved(reference.clone()))?;
                stack.push(name.to_owned());
                let resolved = inline(definition, defs, stack)?;
                stack.pop();
                match resolved {
                    Value::Object(resolved) => out = resolved,
                    // `true` or `false` as a definition: nothing to put siblings beside.
                    other => return Ok(other),
                }
            }
            for (key, value) in map {
                match key.as_str() {
                    "$ref" | "$defs" | "definitions" => {}
                    k if DATA.contains(&k) => {
                        out.insert(key.clone(), value.clone());
                    }
                    _ => {
                        out.insert(key.clone(), inline(value, defs, stack)?);
                    }
                }
            }
            Ok(Value::Object(out))
        }
        Value::Array(items) => items
            .iter()
            .map(|item| inline(item, defs, stack))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        other => Ok(other.clone()),
    }
}

/// Compares the [`UNCOMPARED`] keywords of two inlined schemas, and those of every property,
/// array item, map value and `anyOf` branch the two share. `path` is in json-schema-diff's form
/// (`.payload.items.?`), so fields are named as in [`rules::field_path`].
fn compare_uncompared(old: &Value, new: &Value, path: &str, out: &mut Vec<(String, String)>) {
    let (Some(o), Some(n)) = (old.as_object(), new.as_object()) else {
        return;
    };
    for &keyword in UNCOMPARED {
        let (before, after) = (o.get(keyword), n.get(keyword));
        if before != after {
            out.push((
                rules::field_path(path, None),
                format!("{keyword} {} became {}", shown(before), shown(after)),
            ));
        }
    }
    // json-schema-diff compares `additionalProperties` only when both sides have it.
    let (extra_before, extra_after) =
        (o.get("additionalProperties"), n.get("additionalProperties"));
    if extra_before.is_some() != extra_after.is_some() {
        out.push((
            rules::field_path(path, None),
            format!(
                "additionalProperties {} became {}",
                shown(extra_before),
                shown(extra_after)
            ),
        ));
    }

    if let (Some(Value::Object(op)), Some(Value::Object(np))) =
        (o.get("properties"), n.get("properties"))
    {
        for (name, before) in op {
            if let Some(after) = np.get(name) {
                compare_uncompared(before, after, &format!("{path}.{name}"), out);
            }
        }
    }
    if let (Some(before), Some(after)) = (o.get("items"), n.get("items")) {
        compare_uncompared(before, after, &format!("{path}.?"), out);
    }
    if let (Some(before), Some(after)) = (extra_before, extra_after) {
        compare_uncompared(
            before,
            after,
            &format!("{path}.<additionalProperties>"),
            out,
        );
    }
    if let (Some(Value::Array(ob)), Some(Value::Array(nb))) = (o.get("anyOf"), n.get("anyOf")) {
        for (before, after) in paired_branches(ob, nb) {
            compare_uncompared(before, after, path, out);
        }
    }
}

/// `anyOf` branches of the two sides paired by their `type`, where it is unique on both sides
/// (json-schema-diff pairs them by least difference; here a wrong pair would be a false breach,
/// so branches that cannot be told apart by type are left to the library alone).
fn paired_branches<'a>(old: &'a [Value], new: &'a [Value]) -> Vec<(&'a Value, &'a Value)> {
    let kind = |branch: &Value| branch.get("type").map(Value::to_string);
    let unique = |side: &'a [Value], ty: &str| {
        let mut same = side.iter().filter(move |b| kind(b).as_deref() == Some(ty));
        match (same.next(), same.next()) {
            (Some(only), None) => Some(only),
            _ => None,
        }
    };
    old.iter()
        .filter_map(|branch| {
            let ty = kind(branch)?;
            Some((unique(old, &ty)?, unique(new, &ty)?))
        })
        .collect()
}

fn shown(value: Option<&Value>) -> String {
    match value {
        None => "absent".to_owned(),
        Some(value) => {
            let text = value.to_string();
            if text.chars().count() > 80 {
                let cut: String = text.chars().take(77).collect();
                format!("{cut}...")
            } else {
                text
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn breaches(old: Value, new: Value) -> Vec<(String, String)> {
        compare(&old, &new).expect("comparable").breaches
    }

    #[test]
    fn identical_schemas_have_no_changes() {
        let schema = json!({
            "type": "object",
            "properties": { "a": { "$ref": "#/$defs/A" } },
            "required": ["a"],
            "$defs": { "A": { "type": "integer", "minimum": 1, "multipleOf": 1 } }
        });
        assert!(compare(&schema, &schema).expect("comparable").is_empty());
    }

    #[test]
    fn a_change_inside_a_definition_is_named_by_the_field_that_refers_to_it() {
        let old = json!({
            "properties": { "line": { "$ref": "#/$defs/Line" } },
            "$defs": { "Line": { "type": "object", "properties": { "quantity": { "type": "integer" } } } }
        });
        let new = json!({
            "properties": { "line": { "$ref": "#/$defs/Line" } },
            "$defs": { "Line": { "type": "object", "properties": { "quantity": { "type": "string" } } } }
        });
        let found = breaches(old, new);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].0, "line.quantity");
        assert!(found[0].1.contains("type integer removed"), "{found:?}");
    }

    #[test]
    fn a_field_removed_behind_a_nullable_one_of_is_seen() {
        let body = |props: Value| {
            json!({
                "oneOf": [ { "type": "null" }, { "$ref": "#/$defs/Abort" } ],
                "$defs": { "Abort": { "type": "object", "properties": props } }
            })
        };
        let found = breaches(
            body(json!({ "reason": { "type": "string" }, "note": { "type": "string" } })),
            body(json!({ "reason": { "type": "string" } })),
        );
        assert_eq!(
            found,
            vec![("note".to_owned(), "removed or renamed".to_owned())]
        );
    }

    #[test]
    fn keywords_the_library_skips_are_compared_by_hand() {
        let old = json!({
            "type": "object",
            "properties": {
                "amount": { "type": "number", "multipleOf": 0.01 },
                "items": { "type": "array", "items": { "type": "string" }, "minItems": 1 }
            }
        });
        let new = json!({
            "type": "object",
            "properties": {
                "amount": { "type": "number", "multipleOf": 0.001 },
                "items": { "type": "array", "items": { "type": "string" }, "minItems": 1, "maxItems": 100 }
            },
            "additionalProperties": false
        });
        assert_eq!(
            breaches(old, new),
            vec![
                (
                    "".to_owned(),
                    "additionalProperties absent became false".to_owned()
                ),
                (
                    "amount".to_owned(),
                    "multipleOf 0.01 became 0.001".to_owned()
                ),
                ("items".to_owned(), "maxItems absent became 100".to_owned()),
            ]
        );
    }

    #[test]
    fn a_recursive_or_dangling_ref_is_an_error_not_a_pass() {
        let recursive = json!({
            "$ref": "#/$defs/Node",
            "$defs": { "Node": { "type": "object", "properties": { "next": { "$ref": "#/$defs/Node" } } } }
        });
        assert!(matches!(
            compare(&recursive, &recursive),
            Err(SchemaError::Recursive(_))
        ));
        let dangling = json!({ "properties": { "a": { "$ref": "#/$defs/Missing" } } });
        assert!(matches!(
            compare(&dangling, &dangling),
            Err(SchemaError::Unresolved(_))
        ));
    }
}
