//! The gate's rules: which of json-schema-diff's changes break a reader or a writer of the last
//! release, and which are additive.
//!
//! json-schema-diff's own `is_breaking` takes a validator's view (does every message valid under
//! the old schema stay valid?). A release runs beside its predecessor and either may be rolled
//! back, so here every reader of one release must accept what every writer of the other writes:
//! old producers feed new consumers, new producers feed old consumers (and likewise clients and
//! services over HTTP). That makes nearly every change breaking in one direction or the other;
//! only two are allowed within a major:
//!
//! - a new optional property: readers ignore properties they do not know (the events' contract;
//!   `shared_events::Envelope` decodes that way), and writers of the last release never send it,
//!   which new readers accept because it is optional;
//! - a new value of an existing enum: the values of the last release keep their meaning, and new
//!   readers accept everything old writers send. An old reader that receives the new value cannot
//!   decode it (the event goes to the DLQ, the request gets a 422), so a writer may only send it
//!   once every reader is of the new release; see docs/compatibility.md.
//!
//! Everything else fails: a property removed (a rename is a removal and an addition), a type
//! added or removed, a property newly required or no longer required, a const changed, an enum
//! value removed or an enum imposed on a free value, and any changed range, length, pattern,
//! format or tuple shape. The rules are the same for events and for HTTP bodies and parameters.

use std::collections::{BTreeMap, BTreeSet};

use json_schema_diff::{Change, ChangeKind, JsonSchemaType, Range};

/// A schema's changes, merged by field: every reason a field breaks, and what was added.
#[derive(Debug, Default, PartialEq)]
pub struct Judgement {
    /// `(field path, reasons)`, one per field, sorted by path.
    pub breaches: Vec<(String, String)>,
    /// `(field path, what)` for each additive change.
    pub additive: Vec<(String, String)>,
}

impl Judgement {
    pub fn is_empty(&self) -> bool {
        self.breaches.is_empty() && self.additive.is_empty()
    }

    /// Adds breaches found outside json-schema-diff, keeping one entry per field.
    pub fn merge_breaches(&mut self, more: impl IntoIterator<Item = (String, String)>) {
        let mut by_field: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (field, what) in self.breaches.drain(..).chain(more) {
            by_field.entry(field).or_default().push(what);
        }
        self.breaches = by_field
            .into_iter()
            .map(|(field, whats)| (field, whats.join("; ")))
            .collect();
    }
}

/// Whether a change may ship within a major.
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Additive,
    Breaking,
}

/// Judges every change of one schema comparison (old → new).
pub fn judge(changes: &[Change]) -> Judgement {
    // A rename shows as a property removed and one added, each with its `required` change; the
    // removal and the addition say it all, so their `required` changes are folded into them.
    let removed: BTreeSet<(&str, &str)> = changes
        .iter()
        .filter_map(|c| match &c.change {
            ChangeKind::PropertyRemove { removed, .. } => Some((c.path.as_str(), removed.as_str())),
            _ => None,
        })
        .collect();
    let newly_required: BTreeSet<(&str, &str)> = changes
        .iter()
        .filter_map(|c| match &c.change {
            ChangeKind::RequiredAdd { property } => Some((c.path.as_str(), property.as_str())),
            _ => None,
        })
        .collect();
    let added: BTreeSet<(&str, &str)> = changes
        .iter()
        .filter_map(|c| match &c.change {
            ChangeKind::PropertyAdd { added, .. } => Some((c.path.as_str(), added.as_str())),
            _ => None,
        })
        .collect();

    let mut breaches: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut additive = Vec::new();
    for change in changes {
        let path = change.path.as_str();
        let judged = match &change.change {
            ChangeKind::PropertyRemove { removed, .. } => Some((
                field_path(path, Some(removed)),
                Verdict::Breaking,
                "removed or renamed".to_owned(),
            )),
            ChangeKind::PropertyAdd {
                added,
                lhs_additional_properties,
            } => Some(if newly_required.contains(&(path, added.as_str())) {
                (
                    field_path(path, Some(added)),
                    Verdict::Breaking,
                    "new and required (writers of the last release do not send it)".to_owned(),
                )
            } else if !lhs_additional_properties {
                (
                    field_path(path, Some(added)),
                    Verdict::Breaking,
                    "new, where the last release allows no other properties".to_owned(),
                )
            } else {
                (
                    field_path(path, Some(added)),
                    Verdict::Additive,
                    "new optional property".to_owned(),
                )
            }),
            ChangeKind::RequiredAdd { property } => (!added.contains(&(path, property.as_str())))
                .then(|| {
                    (
                        field_path(path, Some(property)),
                        Verdict::Breaking,
                        "now required".to_owned(),
                    )
                }),
            ChangeKind::RequiredRemove { property } => {
                (!removed.contains(&(path, property.as_str()))).then(|| {
                    (
                        field_path(path, Some(property)),
                        Verdict::Breaking,
                        "no longer required (readers of the last release need it)".to_owned(),
                    )
                })
            }
            ChangeKind::EnumAdd {
                added,
                lhs_has_no_enum: false,
            } => Some((
                field_path(path, None),
                Verdict::Additive,
                format!("new enum value {added}"),
            )),
            other => Some((field_path(path, None), Verdict::Breaking, describe(other))),
        };
        match judged {
            Some((field, Verdict::Breaking, what)) => breaches.entry(field).or_default().push(what),
            Some((field, Verdict::Additive, what)) => additive.push((field, what)),
            None => {}
        }
    }
    Judgement {
        breaches: breaches
            .into_iter()
            .map(|(field, whats)| (field, whats.join("; ")))
            .collect(),
        additive,
    }
}

/// Words for a change that breaks the last release (the additive ones are worded in [`judge`]).
fn describe(kind: &ChangeKind) -> String {
    match kind {
        ChangeKind::TypeAdd { added } => format!("type {} added", type_name(added)),
        ChangeKind::TypeRemove { removed } => format!("type {} removed", type_name(removed)),
        ChangeKind::ConstAdd { added } => format!("const {added} added"),
        ChangeKind::ConstRemove { removed } => format!("const {removed} removed"),
        ChangeKind::PropertyAdd { added, .. } => format!("property {added} added"),
        ChangeKind::PropertyRemove { removed, .. } => format!("property {removed} removed"),
        ChangeKind::RangeAdd { added } => format!("{} added", range(added)),
        ChangeKind::RangeRemove { removed } => format!("{} removed", range(removed)),
        ChangeKind::RangeChange {
            old_value,
            new_value,
        } => format!("{} became {}", range(old_value), range(new_value)),
        ChangeKind::TupleToArray { old_length } => {
            format!("a tuple of {old_length} became an array")
        }
        ChangeKind::ArrayToTuple { new_length } => {
            format!("an array became a tuple of {new_length}")
        }
        ChangeKind::TupleChange { new_length } => format!("tuple length became {new_length}"),
        ChangeKind::RequiredRemove { property } => format!("{property} no longer required"),
        ChangeKind::RequiredAdd { property } => format!("{property} now required"),
        ChangeKind::FormatAdd { added } => format!("format {added} added"),
        ChangeKind::FormatRemove { removed } => format!("format {removed} removed"),
        ChangeKind::FormatChange {
            old_format,
            new_format,
        } => format!("format {old_format} became {new_format}"),
        ChangeKind::EnumAdd {
            added,
            lhs_has_no_enum,
        } => {
            if *lhs_has_no_enum {
                format!("restricted to an enum (value {added})")
            } else {
                format!("new enum value {added}")
            }
        }
        ChangeKind::EnumRemove {
            removed,
            rhs_has_no_enum,
        } => {
            if *rhs_has_no_enum {
                format!("no longer an enum (value {removed} was one)")
            } else {
                format!("enum value {removed} removed")
            }
        }
        ChangeKind::PatternAdd { added } => format!("pattern {added:?} added"),
        ChangeKind::PatternRemove { removed } => format!("pattern {removed:?} removed"),
        ChangeKind::PatternChange {
            old_pattern,
            new_pattern,
        } => format!("pattern {old_pattern:?} became {new_pattern:?}"),
        ChangeKind::MinLengthAdd { added } => format!("minLength {added} added"),
        ChangeKind::MinLengthRemove { removed } => format!("minLength {removed} removed"),
        ChangeKind::MinLengthChange {
            old_value,
            new_value,
        } => format!("minLength {old_value} became {new_value}"),
        ChangeKind::MaxLengthAdd { added } => format!("maxLength {added} added"),
        ChangeKind::MaxLengthRemove { removed } => format!("maxLength {removed} removed"),
        ChangeKind::MaxLengthChange {
            old_value,
            new_value,
        } => format!("maxLength {old_value} became {new_value}"),
    }
}

fn type_name(ty: &JsonSchemaType) -> &'static str {
    match ty {
        JsonSchemaType::String => "string",
        JsonSchemaType::Number => "number",
        JsonSchemaType::Integer => "integer",
        JsonSchemaType::Object => "object",
        JsonSchemaType::Array => "array",
        JsonSchemaType::Boolean => "boolean",
        JsonSchemaType::Null => "null",
    }
}

fn range(range: &Range) -> String {
    match range {
        Range::Minimum(v) => format!("minimum {v}"),
        Range::Maximum(v) => format!("maximum {v}"),
        Range::ExclusiveMinimum(v) => format!("exclusiveMinimum {v}"),
        Range::ExclusiveMaximum(v) => format!("exclusiveMaximum {v}"),
    }
}

/// A field's path as a reader would name it, from json-schema-diff's path (`.payload.items.?`)
/// and the property a change is about: `payload.items[].quantity`. The library's markers for
/// `anyOf` branches are dropped (a nullable field is one field to its readers), `?` (every item
/// of an array) becomes `[]`, and `<additionalProperties>` (every value of a map) becomes `*`.
pub fn field_path(path: &str, property: Option<&str>) -> String {
    let mut out = String::new();
    for segment in path.split('.').filter(|s| !s.is_empty()).chain(property) {
        match segment {
            "?" => out.push_str("[]"),
            s if s.starts_with("<anyOf:") => {}
            "<additionalProperties>" => push_segment(&mut out, "*"),
            s => push_segment(&mut out, s),
        }
    }
    out
}

fn push_segment(out: &mut String, segment: &str) {
    if !out.is_empty() {
        out.push('.');
    }
    out.push_str(segment);
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn change(path: &str, change: ChangeKind) -> Change {
        Change {
            path: path.to_owned(),
            change,
        }
    }

    #[test]
    fn field_paths_read_like_the_json_a_reader_sees() {
        assert_eq!(field_path("", None), "");
        assert_eq!(field_path("", Some("orderId")), "orderId");
        assert_eq!(
            field_path(".payload.items.?", Some("quantity")),
            "payload.items[].quantity"
        );
        assert_eq!(field_path(".<anyOf:1>.checks", None), "checks");
        assert_eq!(
            field_path(".byStatus.<additionalProperties>", None),
            "byStatus.*"
        );
    }

    #[test]
    fn a_new_optional_property_is_additive() {
        let judged = judge(&[change(
            ".payload",
            ChangeKind::PropertyAdd {
                lhs_additional_properties: true,
                added: "note".into(),
            },
        )]);
        assert!(judged.breaches.is_empty());
        assert_eq!(
            judged.additive,
            vec![(
                "payload.note".to_owned(),
                "new optional property".to_owned()
            )]
        );
    }

    #[test]
    fn a_new_property_where_none_other_were_allowed_breaks() {
        let judged = judge(&[change(
            "",
            ChangeKind::PropertyAdd {
                lhs_additional_properties: false,
                added: "note".into(),
            },
        )]);
        assert_eq!(judged.breaches.len(), 1);
        assert_eq!(judged.breaches[0].0, "note");
    }

    #[test]
    fn a_new_required_property_breaks_once() {
        let judged = judge(&[
            change(
                ".payload",
                ChangeKind::PropertyAdd {
                    lhs_additional_properties: true,
                    added: "priority".into(),
                },
            ),
            change(
                ".payload",
                ChangeKind::RequiredAdd {
                    property: "priority".into(),
                },
            ),
        ]);
        assert!(judged.additive.is_empty());
        assert_eq!(
            judged.breaches,
            vec![(
                "payload.priority".to_owned(),
                "new and required (writers of the last release do not send it)".to_owned()
            )]
        );
    }

    #[test]
    fn a_rename_is_a_removal_that_breaks_and_an_addition() {
        let judged = judge(&[
            change(
                ".payload",
                ChangeKind::PropertyRemove {
                    lhs_additional_properties: true,
                    removed: "customerId".into(),
                },
            ),
            change(
                ".payload",
                ChangeKind::PropertyAdd {
                    lhs_additional_properties: true,
                    added: "customer".into(),
                },
            ),
            change(
                ".payload",
                ChangeKind::RequiredRemove {
                    property: "customerId".into(),
                },
            ),
            change(
                ".payload",
                ChangeKind::RequiredAdd {
                    property: "customer".into(),
                },
            ),
        ]);
        let fields: Vec<&str> = judged.breaches.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(fields, ["payload.customer", "payload.customerId"]);
        assert_eq!(judged.breaches[1].1, "removed or renamed");
    }

    #[test]
    fn an_existing_property_made_required_or_optional_breaks() {
        for kind in [
            ChangeKind::RequiredAdd {
                property: "detail".into(),
            },
            ChangeKind::RequiredRemove {
                property: "detail".into(),
            },
        ] {
            let judged = judge(&[change(".payload", kind)]);
            assert_eq!(judged.breaches.len(), 1);
            assert_eq!(judged.breaches[0].0, "payload.detail");
        }
    }

    #[test]
    fn a_retyped_field_is_one_breach_with_every_reason() {
        let judged = judge(&[
            change(
                ".payload.items.?.quantity",
                ChangeKind::TypeRemove {
                    removed: JsonSchemaType::Integer,
                },
            ),
            change(
                ".payload.items.?.quantity",
                ChangeKind::TypeAdd {
                    added: JsonSchemaType::String,
                },
            ),
            change(
                ".payload.items.?.quantity",
                ChangeKind::RangeRemove {
                    removed: Range::Minimum(1.0),
                },
            ),
        ]);
        assert_eq!(
            judged.breaches,
            vec![(
                "payload.items[].quantity".to_owned(),
                "type integer removed; type string added; minimum 1 removed".to_owned()
            )]
        );
    }

    #[test]
    fn a_type_added_breaks_even_though_a_validator_would_call_it_relaxing() {
        let kind = ChangeKind::TypeAdd {
            added: JsonSchemaType::Null,
        };
        assert!(!kind.is_breaking());
        assert_eq!(judge(&[change(".detail", kind)]).breaches.len(), 1);
    }

    #[test]
    fn a_changed_const_breaks() {
        let judged = judge(&[
            change(".version", ChangeKind::ConstRemove { removed: json!(1) }),
            change(".version", ChangeKind::ConstAdd { added: json!(2) }),
        ]);
        assert_eq!(
            judged.breaches,
            vec![(
                "version".to_owned(),
                "const 1 removed; const 2 added".to_owned()
            )]
        );
    }

    #[test]
    fn a_new_enum_value_is_additive_and_a_removed_one_breaks() {
        let judged = judge(&[
            change(
                ".payload.reason",
                ChangeKind::EnumAdd {
                    added: json!("FRAUD"),
                    lhs_has_no_enum: false,
                },
            ),
            change(
                ".payload.reason",
                ChangeKind::EnumRemove {
                    removed: json!("TIMEOUT"),
                    rhs_has_no_enum: false,
                },
            ),
        ]);
        assert_eq!(
            judged.additive,
            vec![(
                "payload.reason".to_owned(),
                "new enum value \"FRAUD\"".to_owned()
            )]
        );
        assert_eq!(
            judged.breaches,
            vec![(
                "payload.reason".to_owned(),
                "enum value \"TIMEOUT\" removed".to_owned()
            )]
        );
    }

    #[test]
    fn an_enum_imposed_on_a_free_value_or_lifted_from_one_breaks() {
        for kind in [
            ChangeKind::EnumAdd {
                added: json!("A"),
                lhs_has_no_enum: true,
            },
            ChangeKind::EnumRemove {
                removed: json!("A"),
                rhs_has_no_enum: true,
            },
        ] {
            assert_eq!(judge(&[change(".status", kind)]).breaches.len(), 1);
        }
    }

    #[test]
    fn any_changed_constraint_breaks_whether_it_tightens_or_relaxes() {
        for kind in [
            ChangeKind::RangeChange {
                old_value: Range::Maximum(10000.0),
                new_value: Range::Maximum(20000.0),
            },
            ChangeKind::MaxLengthChange {
                old_value: 128,
                new_value: 256,
            },
            ChangeKind::MinLengthRemove { removed: 1 },
            ChangeKind::PatternChange {
                old_pattern: "^[A-Z]{3}$".into(),
                new_pattern: "^[A-Z]{3,4}$".into(),
            },
            ChangeKind::FormatRemove {
                removed: "uuid".into(),
            },
            ChangeKind::TupleToArray { old_length: 2 },
        ] {
            let judged = judge(&[change(".x", kind)]);
            assert_eq!(judged.breaches.len(), 1, "{judged:?}");
            assert!(judged.additive.is_empty());
        }
    }
}
