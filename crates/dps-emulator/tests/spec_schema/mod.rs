//! The DPS specification as test input: where `../shared/specs/dps` is, its swagger documents by
//! api-version, its example files, and a walk of a JSON value against the spec's own JSON schema
//! (definitions, `$ref`, `required`, `type`, `properties`, `items`, `additionalProperties`).
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use serde_json::{Map, Value, json};

/// `../shared/specs/dps` beside the repository root; `None` (said loudly) outside CI when absent.
pub fn specs() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs/dps/DeviceProvisioningServices");
    if dir.is_dir() {
        return Some(dir);
    }
    let message = format!(
        "NO DPS SPECS at {}: the spec conformance test did NOT run",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    let bar = "#".repeat(72);
    eprintln!("{bar}\n{message}\n{bar}");
    None
}

pub fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Check `value` against `schema`; each fault is pushed as `where: what`.
pub fn check(schema: &Value, value: &Value, defs: &Value, at: &str, faults: &mut Vec<String>) {
    let schema = resolve(schema, defs);
    if value.is_null() && schema.get("x-nullable") == Some(&Value::Bool(true)) {
        return;
    }
    let kind = schema.get("type").and_then(Value::as_str).or_else(|| {
        // A schema with properties and no type is an object.
        schema.get("properties").map(|_| "object")
    });
    let fits = match kind {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !fits {
        faults.push(format!("{at}: {} expected, found {value}", kind.unwrap_or("?")));
        return;
    }
    if let Some(items) = schema.get("items") {
        for (i, item) in value.as_array().into_iter().flatten().enumerate() {
            check(items, item, defs, &format!("{at}[{i}]"), faults);
        }
    }
    let Some(object) = value.as_object() else { return };
    for name in schema.get("required").and_then(Value::as_array).into_iter().flatten() {
        let name = name.as_str().unwrap();
        if object.get(name).is_none_or(Value::is_null) {
            faults.push(format!("{at}.{name}: required, missing"));
        }
    }
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, field) in object {
        match properties.and_then(|p| p.get(name)) {
            Some(s) => check(s, field, defs, &format!("{at}.{name}"), faults),
            None => {
                if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                    check(extra, field, defs, &format!("{at}.{name}"), faults);
                }
            }
        }
    }
}

pub fn resolve<'a>(schema: &'a Value, defs: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(r) => {
            let name = r
                .strip_prefix("#/definitions/")
                .unwrap_or_else(|| panic!("unsupported $ref {r}"));
            resolve(&defs[name], defs)
        }
        None => schema,
    }
}

/// One swagger document's operations by operationId: (method, path, operation).
pub struct Spec {
    pub doc: Value,
}

impl Spec {
    pub fn operation(&self, id: &str) -> Option<(String, String, &Value)> {
        for (path, ops) in self.doc["paths"].as_object()? {
            for (method, op) in ops.as_object()? {
                if op["operationId"].as_str() == Some(id) {
                    return Some((method.to_ascii_uppercase(), path.clone(), op));
                }
            }
        }
        None
    }
}

/// Every example file, with the swagger folder of its api-version.
pub fn examples(root: &Path) -> Vec<(PathBuf, Value)> {
    let mut dirs = Vec::new();
    for side in ["stable", "preview"] {
        for version in std::fs::read_dir(root.join(side)).unwrap().flatten() {
            dirs.push(version.path().join("examples"));
        }
    }
    for api in ["device", "service"] {
        if let Ok(entries) = std::fs::read_dir(root.join(api).join("examples")) {
            dirs.extend(entries.flatten().map(|e| e.path()));
        }
    }
    let mut all = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        let mut files: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        for f in files {
            let example = read_json(&f);
            all.push((f, example));
        }
    }
    all
}

/// The swagger documents (device and service merged) of an api-version.
pub fn spec_for(root: &Path, api: &str) -> Option<Spec> {
    let side = if api.contains("preview") { "preview" } else { "stable" };
    let dir = root.join(side).join(api);
    let mut doc = json!({"paths": {}, "definitions": {}});
    for name in ["device.json", "service.json"] {
        let part = read_json(&dir.join(name));
        for key in ["paths", "definitions"] {
            let into: &mut Map<String, Value> = doc[key].as_object_mut().unwrap();
            for (k, v) in part[key].as_object().unwrap() {
                into.insert(k.clone(), v.clone());
            }
        }
    }
    dir.is_dir().then_some(Spec { doc })
}
