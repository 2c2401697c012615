//! The published contract, generated from the Rust types: an OpenRPC document
//! (`schema/openrpc.json`) and TypeScript definitions for frontends (`schema/sluice.d.ts`).
//! A test fails when the checked-in files are stale; `SLUICE_UPDATE_SCHEMA=1 cargo test`
//! rewrites them.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use super::Procedure;
use super::error::ErrorCode;
use super::live::{LIVE_PATH, LiveInput, SUBSCRIBE_METHOD, UNSUBSCRIBE_METHOD};
use crate::pipeline::live::LiveMessage;

const COMPONENTS: &str = "#/components/schemas/";

/// The OpenRPC 1.3 document of every procedure, with its error codes.
pub fn openrpc_document() -> Value {
    let mut settings = SchemaSettings::draft2020_12();
    settings.definitions_path = COMPONENTS.into();
    let mut generator = settings.into_generator();
    let mut methods = Vec::new();
    for procedure in Procedure::all() {
        let spec = procedure.spec();
        let params = vec![json!({
            "name": "input",
            "required": spec.input_required,
            "schema": (spec.input_schema)(&mut generator),
        })];
        let output = (spec.output_schema)(&mut generator);
        methods.push(json!({
            "name": procedure.path(),
            "summary": spec.summary,
            "paramStructure": "either",
            "params": params,
            "result": {"name": "output", "schema": output},
            "x-trpc-type": if procedure.is_query() { "query" } else { "mutation" },
        }));
    }
    methods.push(live_subscription(&mut generator));
    let schemas: Map<String, Value> = generator.take_definitions(true).into_iter().collect();
    json!({
        "openrpc": "1.3.2",
        "info": {
            "title": "Sluice eventIngestion",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Analytics event ingestion. The same procedures are served as tRPC at /api/trpc/<name>.",
        },
        "methods": methods,
        "components": {
            "schemas": schemas,
            "errors": error_codes(),
        },
    })
}

/// The live subscription: a JSON-RPC subscription over WebSocket, and the tRPC subscription
/// `eventIngestion.live` (SSE, `httpSubscriptionLink`).
fn live_subscription(generator: &mut schemars::SchemaGenerator) -> Value {
    let input = generator.subschema_for::<LiveInput>().to_value();
    let message = generator.subschema_for::<LiveMessage>().to_value();
    json!({
        "name": SUBSCRIBE_METHOD,
        "summary": "Live analytics (ADMIN): a subscription whose notifications are LiveMessages. \
                    Served as the tRPC subscription eventIngestion.live and as SSE at /api/live.",
        "paramStructure": "either",
        "params": [{"name": "input", "required": false, "schema": input}],
        "result": {"name": "subscription", "schema": {"type": "string"}},
        "x-trpc-type": "subscription",
        "x-trpc-path": LIVE_PATH,
        "x-notification": {"method": LIVE_PATH, "params": message},
        "x-unsubscribe": UNSUBSCRIBE_METHOD,
    })
}

fn error_codes() -> Map<String, Value> {
    ErrorCode::ALL
        .into_iter()
        .map(|code| {
            (
                code.key().to_owned(),
                json!({
                    "code": code.json_rpc_code(),
                    "message": code.key(),
                    "data": {"code": code.key(), "httpStatus": code.http_status()},
                }),
            )
        })
        .collect()
}

/// TypeScript definitions of every schema, plus a `SluiceProcedures` map of inputs and outputs.
pub fn typescript_definitions() -> String {
    let document = openrpc_document();
    let mut out = String::from(
        "// Generated from the Rust types by `SLUICE_UPDATE_SCHEMA=1 cargo test`; do not edit.\n\
         // The wire types of Sluice's eventIngestion procedures (JSON-RPC and tRPC).\n",
    );
    let empty = Map::new();
    let schemas = document["components"]["schemas"]
        .as_object()
        .unwrap_or(&empty);
    for (name, schema) in schemas {
        if let Some(description) = schema.get("description").and_then(Value::as_str) {
            let _ = writeln!(out, "\n/** {} */", comment(description));
        } else {
            out.push('\n');
        }
        if schema.get("properties").is_some() {
            let _ = writeln!(out, "export interface {name} {}", object_body(schema, 0));
        } else {
            let _ = writeln!(out, "export type {name} = {};", type_of(schema, 0));
        }
    }
    out.push_str("\n/** Input and output of each procedure, by path. */\nexport interface SluiceProcedures {\n");
    let methods = document["methods"].as_array().cloned().unwrap_or_default();
    for method in methods {
        let input = method["params"]
            .get(0)
            .map(|param| {
                let schema = type_of(&param["schema"], 2);
                if param["required"] == true {
                    schema
                } else {
                    format!("{schema} | undefined")
                }
            })
            .unwrap_or_else(|| "undefined".to_owned());
        // A subscription is listed under its tRPC path, its output the items it streams.
        let (path, output) = match method.get("x-trpc-path") {
            Some(path) => (path, &method["x-notification"]["params"]),
            None => (&method["name"], &method["result"]["schema"]),
        };
        let _ = writeln!(
            out,
            "  \"{}\": {{ type: \"{}\"; input: {input}; output: {} }};",
            path.as_str().unwrap_or_default(),
            method["x-trpc-type"].as_str().unwrap_or_default(),
            type_of(output, 2),
        );
    }
    out.push_str("}\n");
    out
}

/// A description as one comment line.
fn comment(description: &str) -> String {
    description
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .replace("*/", "* /")
}

fn object_body(schema: &Value, depth: usize) -> String {
    let indent = "  ".repeat(depth + 1);
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|names| names.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let properties: BTreeMap<&String, &Value> = schema["properties"]
        .as_object()
        .map(|map| map.iter().collect())
        .unwrap_or_default();
    let mut body = String::from("{\n");
    for (name, property) in properties {
        if let Some(description) = property.get("description").and_then(Value::as_str) {
            let _ = writeln!(body, "{indent}/** {} */", comment(description));
        }
        let optional = if required.contains(&name.as_str()) {
            ""
        } else {
            "?"
        };
        let _ = writeln!(
            body,
            "{indent}{name}{optional}: {};",
            type_of(property, depth + 1)
        );
    }
    if let Some(extra) = schema
        .get("additionalProperties")
        .filter(|extra| extra.is_object())
    {
        let _ = writeln!(
            body,
            "{indent}[key: string]: {};",
            type_of(extra, depth + 1)
        );
    }
    body.push_str(&"  ".repeat(depth));
    body.push('}');
    body
}

fn type_of(schema: &Value, depth: usize) -> String {
    if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
        return reference.trim_start_matches(COMPONENTS).to_owned();
    }
    if let Some(constant) = schema.get("const") {
        return constant.to_string();
    }
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        return values
            .iter()
            .map(Value::to_string)
            .collect::<Vec<_>>()
            .join(" | ");
    }
    for combinator in ["oneOf", "anyOf"] {
        if let Some(options) = schema.get(combinator).and_then(Value::as_array) {
            return options
                .iter()
                .map(|option| type_of(option, depth))
                .collect::<Vec<_>>()
                .join(" | ");
        }
    }
    match &schema["type"] {
        Value::Array(types) => types
            .iter()
            .map(|kind| {
                let mut single = schema.clone();
                single["type"] = kind.clone();
                type_of(&single, depth)
            })
            .collect::<Vec<_>>()
            .join(" | "),
        Value::String(kind) => match kind.as_str() {
            "string" => "string".to_owned(),
            "integer" | "number" => "number".to_owned(),
            "boolean" => "boolean".to_owned(),
            "null" => "null".to_owned(),
            "array" => format!("Array<{}>", type_of(&schema["items"], depth)),
            "object" if schema.get("properties").is_some() => object_body(schema, depth),
            "object" => match schema.get("additionalProperties") {
                Some(Value::Bool(false)) => "Record<string, never>".to_owned(),
                Some(extra) if extra.is_object() => {
                    format!("Record<string, {}>", type_of(extra, depth))
                }
                _ => "Record<string, unknown>".to_owned(),
            },
            _ => "unknown".to_owned(),
        },
        _ => "unknown".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;

    /// Compares a generated file with the checked-in one, or rewrites it when asked to.
    fn check(file: &str, generated: &str) {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("schema")
            .join(file);
        if std::env::var_os("SLUICE_UPDATE_SCHEMA").is_some() {
            std::fs::create_dir_all(path.parent().expect("parent")).expect("schema dir");
            std::fs::write(&path, generated).expect("write schema");
            return;
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "schema/{file} is stale: run `SLUICE_UPDATE_SCHEMA=1 cargo test --lib schema` and commit it"
        );
    }

    #[test]
    fn the_openrpc_document_is_current() {
        let document = openrpc_document();
        let text = serde_json::to_string_pretty(&document).expect("json") + "\n";
        check("openrpc.json", &text);
    }

    #[test]
    fn the_typescript_definitions_are_current() {
        check("sluice.d.ts", &typescript_definitions());
    }

    #[test]
    fn every_procedure_is_described() {
        let document = openrpc_document();
        let names: Vec<&str> = document["methods"]
            .as_array()
            .expect("methods")
            .iter()
            .filter_map(|method| method["name"].as_str())
            .collect();
        let mut expected: Vec<&str> = Procedure::all().map(Procedure::path).collect();
        expected.push(SUBSCRIBE_METHOD);
        assert_eq!(names, expected);
        let live = &document["methods"][expected.len() - 1];
        assert_eq!(live["x-trpc-type"], "subscription");
        assert_eq!(live["x-notification"]["method"], LIVE_PATH);
        let input = &document["components"]["schemas"]["TrackEventInput"];
        assert_eq!(input["properties"]["eventType"]["maxLength"], 100);
        assert_eq!(input["additionalProperties"], false);
    }
}
