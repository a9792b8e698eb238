//! A plugin's JSON Schemas for its config and role: checking values against them,
//! and finding the fields they mark `"secret": true` so reads never return them.
//!
//! Error messages name the field and the rule it breaks, never the value: a
//! value in the wrong field may be a password.

use jsonschema::error::ValidationErrorKind;
use serde_json::{Map, Value};

/// A plugin's schema for one kind of object (config or role).
pub struct ObjectSchema {
    schema: Value,
}

/// A boolean as Go's `strconv.ParseBool` reads it (as Vault's clients write
/// booleans in query strings and `key=value` pairs).
pub fn go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

impl ObjectSchema {
    /// Parses the schema text a plugin gave in its `info`. A schema that is not
    /// JSON is treated as "any object": the plugin still validates what it reads.
    pub fn parse(text: &str) -> Self {
        let schema = serde_json::from_str(text).unwrap_or(Value::Bool(true));
        Self { schema }
    }

    /// How many calls at once the plugin says its target takes on one
    /// connection (the SDK's `MAX_PARALLEL`), if it says.
    pub fn max_parallel_hint(&self) -> Option<u32> {
        self.schema
            .get("x-leasehold-max-parallel")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    }

    /// The top-level property names, when the schema lists them.
    pub fn properties(&self) -> Vec<String> {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|props| props.keys().cloned().collect())
            .unwrap_or_default()
    }

    /// Whether the schema says nothing about fields: no property list and no
    /// `additionalProperties: false` (a plugin that checks its input itself).
    pub fn is_unconstrained(&self) -> bool {
        self.schema.get("properties").is_none()
            && self.schema.get("additionalProperties") != Some(&Value::Bool(false))
    }

    /// Whether top-level property `name` is a list.
    pub fn is_array(&self, name: &str) -> bool {
        self.declares(name, "array")
    }

    /// Whether property `name` may be of JSON type `kind`.
    fn declares(&self, name: &str, kind: &str) -> bool {
        match self.schema.pointer(&format!("/properties/{name}/type")) {
            Some(Value::String(declared)) => declared == kind,
            Some(Value::Array(kinds)) => kinds.iter().any(|k| k == kind),
            _ => false,
        }
    }

    /// Vault's leniency with text, as CLIs send every `key=value` as a string:
    /// for a list field, a string holding a JSON list is that list and any
    /// other string a list of one (`creation_statements="CREATE ..."`); for a
    /// number or boolean field that takes no string, `"4"` is 4 and `"true"`
    /// true. Anything else is left for the schema to refuse.
    pub fn coerce(&self, value: &mut Map<String, Value>) {
        for (name, field) in value.iter_mut() {
            let Value::String(text) = field else {
                continue;
            };
            if self.is_array(name) {
                *field = match serde_json::from_str::<Value>(text) {
                    Ok(list @ Value::Array(_)) => list,
                    _ => Value::Array(vec![Value::String(std::mem::take(text))]),
                };
                continue;
            }
            if self.declares(name, "string") {
                continue;
            }
            let trimmed = text.trim();
            let parsed = if self.declares(name, "integer") {
                trimmed
                    .parse::<i64>()
                    .ok()
                    .map(Value::from)
                    .or_else(|| trimmed.parse::<u64>().ok().map(Value::from))
            } else if self.declares(name, "number") {
                trimmed
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
            } else if self.declares(name, "boolean") {
                go_bool(trimmed).map(Value::Bool)
            } else {
                None
            };
            if let Some(parsed) = parsed {
                *field = parsed;
            }
        }
    }

    /// Whether the schema has a top-level property `name`.
    pub fn has_property(&self, name: &str) -> bool {
        self.schema
            .get("properties")
            .and_then(Value::as_object)
            .is_some_and(|props| props.contains_key(name))
    }

    /// Checks `value`; the error names each field and rule that failed.
    pub fn check(&self, what: &str, value: &Map<String, Value>) -> Result<(), String> {
        let validator = match jsonschema::validator_for(&self.schema) {
            Ok(validator) => validator,
            // A plugin with a broken schema is the plugin's problem; its own
            // `validate` still runs.
            Err(_) => return Ok(()),
        };
        let instance = Value::Object(value.clone());
        let problems: Vec<String> = validator
            .iter_errors(&instance)
            .map(|error| {
                let path = error.instance_path().to_string();
                let field = path.trim_start_matches('/').replace('/', ".");
                match error.kind() {
                    ValidationErrorKind::AdditionalProperties { unexpected } => {
                        format!("unknown field(s) {}", quoted(unexpected))
                    }
                    ValidationErrorKind::Required { property } => {
                        format!("missing field `{}`", property.as_str().unwrap_or("?"))
                    }
                    kind if field.is_empty() => format!("breaks the `{}` rule", kind.keyword()),
                    kind => format!("field `{field}` breaks the `{}` rule", kind.keyword()),
                }
            })
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!("invalid {what}: {}", problems.join("; ")))
        }
    }

    /// Top-level fields marked secret, directly or through `$ref`, `anyOf`,
    /// `oneOf` or `allOf` (how an `Option<Secret>` comes out of schemars).
    pub fn secret_fields(&self) -> Vec<String> {
        let Some(props) = self.schema.get("properties").and_then(Value::as_object) else {
            return Vec::new();
        };
        props
            .iter()
            .filter(|(_, sub)| self.is_secret(sub, 0))
            .map(|(name, _)| name.clone())
            .collect()
    }

    fn is_secret(&self, schema: &Value, depth: usize) -> bool {
        if depth > 8 {
            return false;
        }
        if schema.get("secret").and_then(Value::as_bool) == Some(true) {
            return true;
        }
        if let Some(target) = schema.get("$ref").and_then(Value::as_str)
            && let Some(resolved) = target
                .strip_prefix('#')
                .and_then(|pointer| self.schema.pointer(pointer))
            && self.is_secret(resolved, depth + 1)
        {
            return true;
        }
        ["anyOf", "oneOf", "allOf"].iter().any(|combinator| {
            schema
                .get(combinator)
                .and_then(Value::as_array)
                .is_some_and(|subs| subs.iter().any(|sub| self.is_secret(sub, depth + 1)))
        })
    }

    /// `value` without its secret fields.
    pub fn without_secrets(&self, value: &Map<String, Value>) -> Map<String, Value> {
        let secrets = self.secret_fields();
        value
            .iter()
            .filter(|(name, _)| !secrets.contains(name))
            .map(|(name, v)| (name.clone(), v.clone()))
            .collect()
    }
}

fn quoted(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn schema() -> ObjectSchema {
        ObjectSchema::parse(
            &json!({
                "type": "object",
                "properties": {
                    "file": {"type": "string"},
                    "cost": {"type": "integer", "minimum": 4},
                    "password": {"$ref": "#/$defs/Secret"},
                    "token": {"anyOf": [{"$ref": "#/$defs/Secret"}, {"type": "null"}]},
                },
                "required": ["file"],
                "additionalProperties": false,
                "$defs": {"Secret": {"type": "string", "secret": true}},
            })
            .to_string(),
        )
    }

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    #[test]
    fn finds_secrets_through_refs_and_options() {
        let mut secrets = schema().secret_fields();
        secrets.sort();
        assert_eq!(secrets, ["password", "token"]);
        let shown = schema().without_secrets(&object(json!({"file": "f", "password": "p"})));
        assert_eq!(Value::Object(shown), json!({"file": "f"}));
    }

    #[test]
    fn strings_become_lists_where_the_schema_wants_one() {
        let schema = ObjectSchema::parse(
            &json!({"properties": {"statements": {"type": "array"}, "name": {"type": "string"}}})
                .to_string(),
        );
        let mut value = object(json!({"statements": "CREATE ROLE x;", "name": "n"}));
        schema.coerce(&mut value);
        assert_eq!(
            Value::Object(value),
            json!({"statements": ["CREATE ROLE x;"], "name": "n"})
        );
        let mut value = object(json!({"statements": "[\"a\", \"b\"]"}));
        schema.coerce(&mut value);
        assert_eq!(value["statements"], json!(["a", "b"]));
    }

    #[test]
    fn text_becomes_a_number_or_boolean_where_the_schema_wants_one() {
        let schema = ObjectSchema::parse(
            &json!({"properties": {
                "cost": {"type": "integer"}, "ratio": {"type": "number"},
                "tls": {"type": "boolean"}, "port": {"type": ["integer", "string"]},
            }})
            .to_string(),
        );
        let mut value = object(json!({"cost": "4", "ratio": "0.5", "tls": "True", "port": "5432"}));
        schema.coerce(&mut value);
        assert_eq!(
            Value::Object(value),
            json!({"cost": 4, "ratio": 0.5, "tls": true, "port": "5432"})
        );
        let mut value = object(json!({"cost": "four", "tls": "yes"}));
        schema.coerce(&mut value);
        assert_eq!(value["cost"], "four", "left for the schema to refuse");
        assert_eq!(value["tls"], "yes");
    }

    #[test]
    fn errors_name_fields_not_values() {
        let schema = schema();
        assert!(
            schema
                .check("config", &object(json!({"file": "x"})))
                .is_ok()
        );
        let err = schema
            .check("config", &object(json!({"file": "x", "cost": "hunter2"})))
            .unwrap_err();
        assert!(err.contains("`cost`") && !err.contains("hunter2"), "{err}");
        let err = schema
            .check(
                "config",
                &object(json!({"file": "x", "pasword": "hunter2"})),
            )
            .unwrap_err();
        assert!(
            err.contains("`pasword`") && !err.contains("hunter2"),
            "{err}"
        );
        let err = schema.check("config", &object(json!({}))).unwrap_err();
        assert!(err.contains("missing field `file`"), "{err}");
    }
}
