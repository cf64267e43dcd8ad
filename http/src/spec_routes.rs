//! The OpenAPI document's route table, for what the router does not tell: which template a path
//! matches (the `route` label of the request metrics), which methods it takes (the `Allow` header
//! of a 405), and which field is at fault when a JSON request body is refused.
//!
//! poem-openapi refuses a body of the wrong shape, but its message names a type, not the field
//! (`Expected input type "string", found 7 (occurred while parsing "PublishEvent")`). When it
//! refuses one, [`SpecRoutes::explain`] walks the body against the operation's request schema
//! in the served OpenAPI document and names the first field that does not fit:
//! `events[3].type: expected a string, found a number`. It only rewords a refusal; what is
//! accepted or refused stays poem-openapi's decision.

use poem::http::Method;
use serde_json::Value;

/// Deeper than this the walk stops (bodies that deep are refused by the JSON parser anyway).
const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

/// One operation of the document.
#[derive(Debug)]
struct Operation {
    method: Method,
    template: String,
    segments: Vec<Segment>,
    /// The request body schema, if the operation takes a body.
    body: Option<Value>,
}

/// Every operation of the OpenAPI document.
#[derive(Debug)]
pub struct SpecRoutes {
    spec: Value,
    routes: Vec<Operation>,
}

impl SpecRoutes {
    pub fn from_spec(spec: &str) -> Self {
        let spec: Value = serde_json::from_str(spec).unwrap_or_default();
        let mut routes = Vec::new();
        for (path, operations) in spec["paths"].as_object().into_iter().flatten() {
            let segments: Vec<Segment> = path
                .split('/')
                .filter(|s| !s.is_empty())
                .map(|s| {
                    if s.starts_with('{') {
                        Segment::Param
                    } else {
                        Segment::Literal(s.to_owned())
                    }
                })
                .collect();
            for (method, operation) in operations.as_object().into_iter().flatten() {
                let Ok(method) = method.to_uppercase().parse::<Method>() else {
                    continue;
                };
                let content = &operation["requestBody"]["content"];
                let schema = content
                    .as_object()
                    .and_then(|c| c.values().next())
                    .map(|media| media["schema"].clone());
                routes.push(Operation {
                    method,
                    template: path.clone(),
                    segments: segments.clone(),
                    body: schema,
                });
            }
        }
        Self { spec, routes }
    }

    /// The first place `body` does not fit the request schema of `method path`, if it is JSON and
    /// a place can be named.
    pub fn explain(&self, method: &Method, path: &str, body: &[u8]) -> Option<String> {
        let value: Value = serde_json::from_slice(body).ok()?;
        let schema = self
            .operations_at(path)
            .into_iter()
            .find(|op| op.method == method)?
            .body
            .as_ref()?;
        self.violation(&value, schema, "", 0)
    }

    /// The template of the route `path` matches (`/v1/endpoints/{id}`), if any.
    pub fn template(&self, path: &str) -> Option<&str> {
        self.operations_at(path)
            .first()
            .map(|op| op.template.as_str())
    }

    /// The methods the document lists for `path`, for the `Allow` header of a 405.
    pub fn allowed_methods(&self, path: &str) -> Vec<Method> {
        self.operations_at(path)
            .into_iter()
            .map(|op| op.method.clone())
            .collect()
    }

    /// The operations of the template that matches `path`; a literal segment wins over a
    /// parameter, as in the router (`/v1/deliveries/redrive` is not `/v1/deliveries/{id}`).
    fn operations_at(&self, path: &str) -> Vec<&Operation> {
        let parts: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
        let literals = |segments: &[Segment]| {
            segments
                .iter()
                .filter(|s| matches!(s, Segment::Literal(_)))
                .count()
        };
        let matching: Vec<_> = self
            .routes
            .iter()
            .filter(|op| {
                op.segments.len() == parts.len()
                    && op
                        .segments
                        .iter()
                        .zip(&parts)
                        .all(|(segment, part)| match segment {
                            Segment::Param => true,
                            Segment::Literal(literal) => literal == part,
                        })
            })
            .collect();
        let best = matching.iter().map(|op| literals(&op.segments)).max();
        matching
            .into_iter()
            .filter(|op| Some(literals(&op.segments)) == best)
            .collect()
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema["$ref"].as_str() {
            Some(reference) => {
                let name = reference.trim_start_matches("#/components/schemas/");
                &self.spec["components"]["schemas"][name]
            }
            None => schema,
        }
    }

    fn violation(&self, value: &Value, schema: &Value, path: &str, depth: usize) -> Option<String> {
        if depth > MAX_DEPTH {
            return None;
        }
        let schema = self.resolve(schema);
        let at = |problem: String| {
            Some(if path.is_empty() {
                problem
            } else {
                format!("{path}: {problem}")
            })
        };
        let field = |name: &str| {
            if path.is_empty() {
                name.to_owned()
            } else {
                format!("{path}.{name}")
            }
        };
        if let Some(all) = schema["allOf"].as_array() {
            return all
                .iter()
                .find_map(|part| self.violation(value, part, path, depth + 1));
        }
        if let Some(allowed) = schema["enum"].as_array() {
            if !allowed.contains(value) {
                let names: Vec<String> = allowed.iter().map(ToString::to_string).collect();
                return at(format!("must be one of {}", names.join(", ")));
            }
            return None;
        }
        let expected = schema["type"].as_str()?;
        let fits = match expected {
            "object" => value.is_object(),
            "array" => value.is_array(),
            "string" => value.is_string(),
            "integer" => value.is_i64() || value.is_u64(),
            "number" => value.is_number(),
            "boolean" => value.is_boolean(),
            _ => true,
        };
        if !fits {
            return at(format!(
                "expected {}, found {}",
                article(expected),
                kind(value)
            ));
        }
        match value {
            Value::Object(map) => {
                for name in schema["required"].as_array().into_iter().flatten() {
                    let name = name.as_str().unwrap_or_default();
                    if !map.contains_key(name) {
                        return Some(format!("{}: required", field(name)));
                    }
                }
                let properties = &schema["properties"];
                let required = |name: &str| {
                    schema["required"]
                        .as_array()
                        .is_some_and(|r| r.iter().any(|n| n == name))
                };
                for (name, item) in map {
                    let item_schema = if properties[name].is_object() {
                        &properties[name]
                    } else if schema["additionalProperties"].is_object() {
                        &schema["additionalProperties"]
                    } else {
                        continue;
                    };
                    // Optional fields may be null.
                    if item.is_null() && !required(name) {
                        continue;
                    }
                    if let Some(problem) =
                        self.violation(item, item_schema, &field(name), depth + 1)
                    {
                        return Some(problem);
                    }
                }
                None
            }
            Value::Array(items) => {
                let count = items.len() as u64;
                if schema["maxItems"].as_u64().is_some_and(|max| count > max) {
                    return at(format!("at most {} items", schema["maxItems"]));
                }
                if schema["minItems"].as_u64().is_some_and(|min| count < min) {
                    return at(format!("at least {} items", schema["minItems"]));
                }
                items.iter().enumerate().find_map(|(i, item)| {
                    self.violation(item, &schema["items"], &format!("{path}[{i}]"), depth + 1)
                })
            }
            Value::String(text) => {
                let chars = text.chars().count() as u64;
                if schema["maxLength"].as_u64().is_some_and(|max| chars > max) {
                    return at(format!("at most {} characters", schema["maxLength"]));
                }
                if schema["minLength"].as_u64().is_some_and(|min| chars < min) {
                    return at(format!("at least {} characters", schema["minLength"]));
                }
                if let Some(pattern) = schema["pattern"].as_str()
                    && regex::Regex::new(pattern).is_ok_and(|re| !re.is_match(text))
                {
                    let shown: String = text.chars().take(80).collect();
                    return at(format!("`{shown}` does not match `{pattern}`"));
                }
                if schema["format"] == "date-time"
                    && chrono::DateTime::parse_from_rfc3339(text).is_err()
                {
                    return at("expected an RFC 3339 date-time".to_owned());
                }
                None
            }
            Value::Number(number) => {
                let n = number.as_f64().unwrap_or_default();
                if schema["maximum"].as_f64().is_some_and(|max| n > max) {
                    return at(format!("at most {}", schema["maximum"]));
                }
                if schema["minimum"].as_f64().is_some_and(|min| n < min) {
                    return at(format!("at least {}", schema["minimum"]));
                }
                None
            }
            _ => None,
        }
    }
}

fn article(json_type: &str) -> &'static str {
    match json_type {
        "object" => "an object",
        "array" => "an array",
        "string" => "a string",
        "integer" => "an integer",
        "number" => "a number",
        "boolean" => "a boolean",
        _ => "a value",
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a fractional number",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC: &str = r##"{
      "paths": {
        "/v1/things/{id}": {"post": {"requestBody": {"content": {"application/json": {
          "schema": {"$ref": "#/components/schemas/Batch"}}}}}},
        "/v1/things/all": {"get": {}}
      },
      "components": {"schemas": {
        "Batch": {"type": "object", "required": ["items"], "properties": {
          "items": {"type": "array", "maxItems": 2, "items": {"$ref": "#/components/schemas/Item"}}}},
        "Item": {"type": "object", "required": ["type"], "properties": {
          "type": {"type": "string", "minLength": 1},
          "count": {"type": "integer", "minimum": 1},
          "at": {"type": "string", "format": "date-time"},
          "ref": {"type": "string", "pattern": "^ep_[0-9a-f]{2}$"},
          "tags": {"type": "object", "additionalProperties": {"type": "string"}}}}
      }}
    }"##;

    #[test]
    fn names_the_field_at_fault() {
        let schemas = SpecRoutes::from_spec(SPEC);
        let explain = |body: &str| schemas.explain(&Method::POST, "/v1/things/x1", body.as_bytes());
        let table = [
            (
                r#"{"items": [{"type": 7}]}"#,
                Some("items[0].type: expected a string, found a number"),
            ),
            (
                r#"{"items": [{"type": "a"}, {}]}"#,
                Some("items[1].type: required"),
            ),
            (r#"{}"#, Some("items: required")),
            (
                r#"{"items": {}}"#,
                Some("items: expected an array, found an object"),
            ),
            (
                r#"{"items": [{"type": "a", "count": 0}]}"#,
                Some("items[0].count: at least 1"),
            ),
            (
                r#"{"items": [{"type": "a", "count": 1.5}]}"#,
                Some("items[0].count: expected an integer, found a fractional number"),
            ),
            (
                r#"{"items": [{"type": "a", "at": "yesterday"}]}"#,
                Some("items[0].at: expected an RFC 3339 date-time"),
            ),
            (
                r#"{"items": [{"type": "a", "tags": {"k": true}}]}"#,
                Some("items[0].tags.k: expected a string, found a boolean"),
            ),
            (
                r#"{"items": [{"type": ""}]}"#,
                Some("items[0].type: at least 1 characters"),
            ),
            (
                r#"{"items": [{"type": "a"}, {"type": "b"}, {"type": "c"}]}"#,
                Some("items: at most 2 items"),
            ),
            (
                r#"{"items": [{"type": "a", "ref": "ep_xyz"}]}"#,
                Some("items[0].ref: `ep_xyz` does not match `^ep_[0-9a-f]{2}$`"),
            ),
            (r#"{"items": [{"type": "a", "ref": "ep_0f"}]}"#, None),
            (r#"{"items": [{"type": "a", "count": null}]}"#, None),
            ("not json", None),
        ];
        for (body, expected) in table {
            assert_eq!(explain(body).as_deref(), expected, "{body}");
        }
        assert_eq!(schemas.explain(&Method::GET, "/v1/things/x1", b"{}"), None);
        assert_eq!(schemas.explain(&Method::POST, "/v1/other", b"{}"), None);
        assert_eq!(schemas.allowed_methods("/v1/things/x9"), [Method::POST]);
        assert!(schemas.allowed_methods("/v1/things").is_empty());
        assert_eq!(schemas.allowed_methods("/v1/things/all"), [Method::GET]);
        assert_eq!(schemas.template("/v1/things/x9"), Some("/v1/things/{id}"));
        assert_eq!(schemas.template("/v1/things/all"), Some("/v1/things/all"));
        assert_eq!(schemas.template("/nowhere"), None);
    }
}
