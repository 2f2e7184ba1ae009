//! Every service's OpenAPI document of the last release against the working tree's.
//!
//! Routes, parameters, request bodies' presence, status codes, media types and security are
//! compared here by hand (no maintained Rust library diffs OpenAPI 3.1 documents). Every schema
//! (request and response bodies, parameters) goes through [`schema::compare`], json-schema-diff
//! under the same rules as the events, with `components.schemas` as the schema's `$defs`.
//!
//! A route is a method and a path; a path parameter's name is not part of it (`/orders/{id}` and
//! `/orders/{order_id}` are the same URL), so path parameters are matched by position.

use std::collections::BTreeMap;

use serde_json::{Map, Value, json};

use crate::report::{Report, Subject};
use crate::snapshot::{Files, OPENAPI_DIR};
use crate::{GateError, schema};

const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];
const JSON: &str = "application/json";

pub fn compare(old: &Files, new: &Files, report: &mut Report) -> Result<(), GateError> {
    for (file, old_text) in old {
        let service = file.strip_suffix(".json").unwrap_or(file);
        let Some(new_text) = new.get(file) else {
            report.breach(
                &Subject::Document(service.to_owned()),
                "",
                "the document is gone, and with it every route of the service",
            );
            continue;
        };
        report.documents += 1;
        let old_doc = Document::parse(file, old_text, "the last release")?;
        let new_doc = Document::parse(file, new_text, "the working tree")?;
        let pair = Pair {
            service,
            file,
            old: &old_doc,
            new: &new_doc,
        };
        pair.compare(report)?;
    }
    for file in new.keys().filter(|file| !old.contains_key(*file)) {
        let service = file.strip_suffix(".json").unwrap_or(file);
        report.additive(
            &Subject::Document(service.to_owned()),
            "",
            "new service document",
        );
    }
    Ok(())
}

/// One OpenAPI document, with its component schemas ready to serve as a schema's `$defs`.
struct Document {
    root: Value,
    defs: Value,
}

/// One operation: its method, path as written, and the object.
struct Operation<'a> {
    method: String,
    path: &'a str,
    op: &'a Value,
    /// Parameters of the path item, which every operation under it has too.
    shared_parameters: Option<&'a Value>,
}

impl Document {
    fn parse(file: &str, text: &str, side: &'static str) -> Result<Document, GateError> {
        let root: Value = serde_json::from_str(text).map_err(|source| GateError::Json {
            file: format!("{OPENAPI_DIR}/{file}"),
            side,
            source,
        })?;
        let defs = root
            .pointer("/components/schemas")
            .map(refs_into_defs)
            .unwrap_or_else(|| json!({}));
        Ok(Document { root, defs })
    }

    /// Operations by route: (`GET`, the path with parameter names blanked: `/orders/{}`).
    fn operations(&self) -> BTreeMap<(String, String), Operation<'_>> {
        let mut out = BTreeMap::new();
        let Some(paths) = self.root.get("paths").and_then(Value::as_object) else {
            return out;
        };
        for (path, item) in paths {
            for &method in METHODS {
                if let Some(op) = item.get(method) {
                    let method = method.to_uppercase();
                    out.insert(
                        (method.clone(), blank_parameters(path)),
                        Operation {
                            method,
                            path,
                            op,
                            shared_parameters: item.get("parameters"),
                        },
                    );
                }
            }
        }
        out
    }

    /// Follows a `$ref` to another component (`#/components/responses/NotFound`) once.
    fn resolve<'a>(&'a self, node: &'a Value) -> &'a Value {
        match node.get("$ref").and_then(Value::as_str) {
            Some(reference) => reference
                .strip_prefix('#')
                .and_then(|pointer| self.root.pointer(pointer))
                .unwrap_or(node),
            None => node,
        }
    }

    /// `schema` as a root schema for json-schema-diff: its references and the components'
    /// rewritten from `#/components/schemas/X` to `#/$defs/X`, the components as `$defs`.
    fn schema(&self, schema: Option<&Value>) -> Value {
        let mut root = schema.map(refs_into_defs).unwrap_or_else(|| json!({}));
        if let Value::Object(map) = &mut root {
            map.insert("$defs".to_owned(), self.defs.clone());
        }
        root
    }

    /// An operation's parameters by key (see [`ParamKey`]), the operation's over the path's.
    fn parameters<'a>(&'a self, operation: &Operation<'a>) -> BTreeMap<ParamKey, &'a Value> {
        let path_names = parameter_names(operation.path);
        let mut out = BTreeMap::new();
        let lists = [operation.shared_parameters, operation.op.get("parameters")];
        for parameter in lists
            .into_iter()
            .flatten()
            .filter_map(Value::as_array)
            .flatten()
        {
            let parameter = self.resolve(parameter);
            let name = parameter.get("name").and_then(Value::as_str).unwrap_or("");
            let place = parameter.get("in").and_then(Value::as_str).unwrap_or("");
            let key = match place {
                "path" => match path_names.iter().position(|n| n == name) {
                    Some(index) => ParamKey::Path(index),
                    None => ParamKey::Named(place.to_owned(), name.to_owned()),
                },
                // Header names are not case-sensitive.
                "header" => ParamKey::Named(place.to_owned(), name.to_lowercase()),
                _ => ParamKey::Named(place.to_owned(), name.to_owned()),
            };
            out.insert(key, parameter);
        }
        out
    }
}

/// How a parameter is found on the wire: a path parameter by its position in the path, any
/// other by where it is (`query`, `header`, `cookie`) and its name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum ParamKey {
    Path(usize),
    Named(String, String),
}

/// The two versions of one service's document.
struct Pair<'a> {
    service: &'a str,
    file: &'a str,
    old: &'a Document,
    new: &'a Document,
}

impl Pair<'_> {
    fn compare(&self, report: &mut Report) -> Result<(), GateError> {
        let old_ops = self.old.operations();
        let new_ops = self.new.operations();
        for (route, old_op) in &old_ops {
            report.routes += 1;
            let subject = self.subject(old_op);
            match new_ops.get(route) {
                None => report.breach(&subject, "", "route removed"),
                Some(new_op) => self.compare_operation(&subject, old_op, new_op, report)?,
            }
        }
        for (route, new_op) in &new_ops {
            if !old_ops.contains_key(route) {
                report.additive(&self.subject(new_op), "", "new route");
            }
        }
        Ok(())
    }

    fn subject(&self, op: &Operation<'_>) -> Subject {
        Subject::Route {
            service: self.service.to_owned(),
            method: op.method.clone(),
            path: op.path.to_owned(),
        }
    }

    fn compare_operation(
        &self,
        subject: &Subject,
        old: &Operation<'_>,
        new: &Operation<'_>,
        report: &mut Report,
    ) -> Result<(), GateError> {
        self.compare_parameters(subject, old, new, report)?;
        self.compare_request_body(subject, old.op, new.op, report)?;
        self.compare_responses(subject, old.op, new.op, report)?;
        if old.op.get("security") != new.op.get("security") {
            report.breach(
                subject,
                "security",
                format!(
                    "requirements changed from {} to {}",
                    shown(old.op.get("security")),
                    shown(new.op.get("security"))
                ),
            );
        }
        Ok(())
    }

    fn compare_parameters(
        &self,
        subject: &Subject,
        old: &Operation<'_>,
        new: &Operation<'_>,
        report: &mut Report,
    ) -> Result<(), GateError> {
        let old_params = self.old.parameters(old);
        let new_params = self.new.parameters(new);
        for (key, before) in &old_params {
            let label = parameter_label(before);
            let Some(after) = new_params.get(key) else {
                report.breach(subject, label, "removed or renamed");
                continue;
            };
            match (is_required(before), is_required(after)) {
                (false, true) => report.breach(subject, label.clone(), "now required"),
                (true, false) => report.breach(
                    subject,
                    label.clone(),
                    "no longer required (servers of the last release need it)",
                ),
                _ => {}
            }
            let judgement = schema::compare(
                &self.old.schema(before.get("schema")),
                &self.new.schema(after.get("schema")),
            )
            .map_err(|source| self.schema_error(subject, &label, source))?;
            report.add_judgement(subject, &label, judgement);
        }
        for (key, after) in &new_params {
            if !old_params.contains_key(key) {
                let label = parameter_label(after);
                if is_required(after) {
                    report.breach(subject, label, "new and required");
                } else {
                    report.additive(subject, label, "new optional parameter");
                }
            }
        }
        Ok(())
    }

    fn compare_request_body(
        &self,
        subject: &Subject,
        old: &Value,
        new: &Value,
        report: &mut Report,
    ) -> Result<(), GateError> {
        let label = "request body";
        let before = old.get("requestBody").map(|b| self.old.resolve(b));
        let after = new.get("requestBody").map(|b| self.new.resolve(b));
        match (before, after) {
            (None, None) => Ok(()),
            (Some(_), None) => {
                report.breach(subject, label, "removed");
                Ok(())
            }
            (None, Some(after)) => {
                if is_required(after) {
                    report.breach(subject, label, "new and required");
                } else {
                    report.additive(subject, label, "new optional request body");
                }
                Ok(())
            }
            (Some(before), Some(after)) => {
                match (is_required(before), is_required(after)) {
                    (false, true) => report.breach(subject, label, "now required"),
                    (true, false) => report.breach(
                        subject,
                        label,
                        "no longer required (servers of the last release need it)",
                    ),
                    _ => {}
                }
                self.compare_content(subject, label, before, after, report)
            }
        }
    }

    fn compare_responses(
        &self,
        subject: &Subject,
        old: &Value,
        new: &Value,
        report: &mut Report,
    ) -> Result<(), GateError> {
        let none = Map::new();
        let before = old
            .get("responses")
            .and_then(Value::as_object)
            .unwrap_or(&none);
        let after = new
            .get("responses")
            .and_then(Value::as_object)
            .unwrap_or(&none);
        for (status, old_response) in before {
            let label = format!("response {status}");
            match after.get(status) {
                None => report.breach(subject, label, "removed"),
                Some(new_response) => self.compare_content(
                    subject,
                    &label,
                    self.old.resolve(old_response),
                    self.new.resolve(new_response),
                    report,
                )?,
            }
        }
        for status in after.keys().filter(|s| !before.contains_key(*s)) {
            report.additive(subject, format!("response {status}"), "new status");
        }
        Ok(())
    }

    /// The media types of a request body or a response, and the schema of each.
    fn compare_content(
        &self,
        subject: &Subject,
        label: &str,
        old: &Value,
        new: &Value,
        report: &mut Report,
    ) -> Result<(), GateError> {
        let none = Map::new();
        let before = old
            .get("content")
            .and_then(Value::as_object)
            .unwrap_or(&none);
        let after = new
            .get("content")
            .and_then(Value::as_object)
            .unwrap_or(&none);
        for (media, old_media) in before {
            let at = if media == JSON {
                label.to_owned()
            } else {
                format!("{label} ({media})")
            };
            let Some(new_media) = after.get(media) else {
                report.breach(subject, at, "media type removed");
                continue;
            };
            let judgement = schema::compare(
                &self.old.schema(old_media.get("schema")),
                &self.new.schema(new_media.get("schema")),
            )
            .map_err(|source| self.schema_error(subject, &at, source))?;
            report.add_judgement(subject, &at, judgement);
        }
        for media in after.keys().filter(|m| !before.contains_key(*m)) {
            report.additive(subject, format!("{label} ({media})"), "new media type");
        }
        Ok(())
    }

    fn schema_error(&self, subject: &Subject, at: &str, source: schema::SchemaError) -> GateError {
        GateError::Schema {
            at: format!("{OPENAPI_DIR}/{}: {subject}: {at}", self.file),
            source,
        }
    }
}

/// `value` with every `$ref` to `#/components/schemas/X` made `#/$defs/X`.
fn refs_into_defs(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(key, value)| {
                    let value = match (key.as_str(), value) {
                        ("$ref", Value::String(reference)) => {
                            Value::String(match reference.strip_prefix("#/components/schemas/") {
                                Some(name) => format!("#/$defs/{name}"),
                                None => reference.clone(),
                            })
                        }
                        (k, value) if schema::DATA.contains(&k) => value.clone(),
                        (_, value) => refs_into_defs(value),
                    };
                    (key.clone(), value)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(refs_into_defs).collect()),
        other => other.clone(),
    }
}

/// `/orders/{}` from `/orders/{order_id}`.
fn blank_parameters(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut in_braces = false;
    for c in path.chars() {
        match c {
            '{' => {
                in_braces = true;
                out.push('{');
            }
            '}' => {
                in_braces = false;
                out.push('}');
            }
            _ if in_braces => {}
            c => out.push(c),
        }
    }
    out
}

/// `["order_id"]` from `/orders/{order_id}/cancel`.
fn parameter_names(path: &str) -> Vec<String> {
    path.split('{')
        .skip(1)
        .filter_map(|rest| rest.split_once('}').map(|(name, _)| name.to_owned()))
        .collect()
}

/// `query parameter limit`.
fn parameter_label(parameter: &Value) -> String {
    format!(
        "{} parameter {}",
        parameter.get("in").and_then(Value::as_str).unwrap_or("?"),
        parameter.get("name").and_then(Value::as_str).unwrap_or("?")
    )
}

fn is_required(node: &Value) -> bool {
    node.get("required")
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

fn shown(value: Option<&Value>) -> String {
    value.map_or_else(|| "none".to_owned(), Value::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_parameter_names_are_not_part_of_a_route() {
        assert_eq!(
            blank_parameters("/orders/{order_id}/cancel"),
            "/orders/{}/cancel"
        );
        assert_eq!(
            blank_parameters("/orders/{orderId}"),
            blank_parameters("/orders/{order_id}")
        );
        assert_eq!(parameter_names("/a/{x}/b/{y}"), ["x", "y"]);
    }

    #[test]
    fn component_references_become_defs_references() {
        let rewritten = refs_into_defs(&json!({
            "properties": {
                "line": { "$ref": "#/components/schemas/Line" },
                "kind": { "const": { "$ref": "#/components/schemas/Line" } }
            }
        }));
        assert_eq!(
            rewritten,
            json!({
                "properties": {
                    "line": { "$ref": "#/$defs/Line" },
                    "kind": { "const": { "$ref": "#/components/schemas/Line" } }
                }
            })
        );
    }

    fn document(paths: Value, schemas: Value) -> Files {
        let doc =
            json!({ "openapi": "3.1.0", "paths": paths, "components": { "schemas": schemas } });
        Files::from([("svc.json".to_owned(), doc.to_string())])
    }

    fn compared(old: &Files, new: &Files) -> Report {
        let mut report = Report::default();
        compare(old, new, &mut report).expect("comparable");
        report
    }

    fn thing_route(parameters: Value, responses: Value) -> Value {
        json!({ "/things/{id}": { "get": { "parameters": parameters, "responses": responses } } })
    }

    fn ok_thing() -> Value {
        json!({ "200": { "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Thing" } } } } })
    }

    fn thing() -> Value {
        json!({ "Thing": { "type": "object", "properties": { "id": { "type": "string" } }, "required": ["id"] } })
    }

    fn id_param(name: &str) -> Value {
        json!({ "name": name, "in": "path", "required": true, "schema": { "type": "string" } })
    }

    #[test]
    fn a_renamed_path_parameter_is_the_same_route() {
        let old = document(thing_route(json!([id_param("id")]), ok_thing()), thing());
        let new = document(
            thing_route(json!([id_param("thing_id")]), ok_thing()),
            thing(),
        );
        let new = Files::from([(
            "svc.json".to_owned(),
            new["svc.json"].replace("/things/{id}", "/things/{thing_id}"),
        )]);
        let report = compared(&old, &new);
        assert!(report.passed(), "{:?}", report.breaches);
        assert_eq!(report.routes, 1);
    }

    #[test]
    fn a_removed_route_status_or_parameter_breaks_and_new_ones_pass() {
        let limit = |required: bool| json!({ "name": "limit", "in": "query", "required": required, "schema": { "type": "integer" } });
        let old = document(
            thing_route(json!([id_param("id"), limit(false)]), {
                let mut r = ok_thing();
                r["404"] = json!({ "description": "none" });
                r
            }),
            thing(),
        );
        let new = document(
            {
                let mut paths = thing_route(json!([id_param("id"), limit(true)]), ok_thing());
                paths["/others"] = json!({ "get": { "responses": {} } });
                paths
            },
            thing(),
        );
        let report = compared(&old, &new);
        let found: Vec<String> = report.breaches.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "GET /things/{id} (svc): query parameter limit: now required",
                "GET /things/{id} (svc): response 404: removed",
            ]
        );
        let added: Vec<String> = report.additive.iter().map(ToString::to_string).collect();
        assert_eq!(added, ["GET /others (svc): new route"]);

        let report = compared(&new, &old);
        let found: Vec<String> = report.breaches.iter().map(ToString::to_string).collect();
        assert_eq!(
            found,
            [
                "GET /others (svc): route removed",
                "GET /things/{id} (svc): query parameter limit: no longer required (servers of \
                 the last release need it)",
            ]
        );
    }

    #[test]
    fn a_retyped_parameter_breaks() {
        let old = document(thing_route(json!([id_param("id")]), ok_thing()), thing());
        let mut param = id_param("id");
        param["schema"] = json!({ "type": "integer" });
        let new = document(thing_route(json!([param]), ok_thing()), thing());
        let report = compared(&old, &new);
        assert_eq!(report.breaches.len(), 1, "{:?}", report.breaches);
        assert_eq!(report.breaches[0].field, "path parameter id");
        assert!(report.breaches[0].what.contains("type string removed"));
    }
}
