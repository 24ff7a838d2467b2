//! The generated CustomResourceDefinitions: `crds/*.yaml` must match the Rust types, and the
//! schemas must be structural (what the apiserver demands) with defaults that validate.
//!
//! After changing a type in `operator/src/api`, regenerate the files with
//! `UPDATE_CRDS=1 cargo test -p crmrisk --test crds`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crmrisk::api::{all_crds, crd_file_name, crd_yaml, crds_yaml};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use serde::Deserialize;
use serde_json::{Value, json};

fn crds_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("crds")
}

#[test]
fn crd_files_match_the_types() {
    let dir = crds_dir();
    let update = std::env::var_os("UPDATE_CRDS").is_some_and(|v| v == "1");
    let crds = all_crds();
    let expected: Vec<(String, String)> = crds.iter().map(|c| (crd_file_name(c), crd_yaml(c))).collect();

    if update {
        std::fs::create_dir_all(&dir).expect("create crds/");
        for (name, yaml) in &expected {
            std::fs::write(dir.join(name), yaml).expect("write CRD file");
        }
    }

    let mut problems = Vec::new();
    for (name, yaml) in &expected {
        match std::fs::read_to_string(dir.join(name)) {
            Ok(on_disk) if on_disk == *yaml => {}
            Ok(_) => problems.push(format!("crds/{name} differs from the types")),
            Err(e) => problems.push(format!("crds/{name}: {e}")),
        }
    }
    let wanted: BTreeSet<&str> = expected.iter().map(|(n, _)| n.as_str()).collect();
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("crmrisk.io_") && name.ends_with(".yaml") && !wanted.contains(name.as_str()) {
                problems.push(format!("crds/{name} is not generated from any type (remove it)"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nRegenerate the CRDs with: UPDATE_CRDS=1 cargo test -p crmrisk --test crds",
        problems.join("\n")
    );
}

#[test]
fn crds_yaml_is_every_crd_as_one_stream() {
    let yaml = crds_yaml();
    assert!(yaml.starts_with("---\n"));
    let parsed: Vec<CustomResourceDefinition> = serde_yaml_ng::Deserializer::from_str(&yaml)
        .map(|doc| CustomResourceDefinition::deserialize(doc).expect("each document is a CRD"))
        .collect();
    assert_eq!(parsed, all_crds());
}

#[test]
fn names_scopes_and_columns() {
    let crds = all_crds();
    let summary: Vec<String> = crds
        .iter()
        .map(|c| {
            format!(
                "{} {} {} {:?} {:?}",
                c.metadata.name.as_deref().unwrap_or_default(),
                c.spec.names.kind,
                c.spec.scope,
                c.spec.names.short_names.as_deref().unwrap_or_default(),
                c.spec.names.categories.as_deref().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            r#"crmriskpolicies.crmrisk.io CRMRiskPolicy Cluster ["crp"] ["crmrisk"]"#,
            r#"crmriskreports.crmrisk.io CRMRiskReport Namespaced ["crr"] ["crmrisk"]"#,
            r#"crmriskexceptions.crmrisk.io CRMRiskException Namespaced ["cre"] ["crmrisk"]"#,
        ]
    );
    let s = |v: &str| v.to_string();
    let columns = |c: &CustomResourceDefinition| -> Vec<(String, String)> {
        c.spec.versions[0]
            .additional_printer_columns
            .iter()
            .flatten()
            .map(|p| (p.name.clone(), p.json_path.clone()))
            .collect()
    };
    assert_eq!(
        columns(&crds[0]),
        [
            ("Tolerance", ".spec.riskTolerance"),
            ("Workloads", ".status.summary.workloadsMatched"),
            ("At Risk", ".status.summary.workloadsAtRisk"),
            ("Max Score", ".status.summary.maxScore"),
            ("Ready", ".status.conditions[?(@.type==\"Ready\")].status"),
            ("Age", ".metadata.creationTimestamp"),
        ]
        .map(|(a, b)| (s(a), s(b)))
    );
    assert_eq!(
        columns(&crds[1]),
        [
            ("Kind", ".spec.workload.kind"),
            ("Workload", ".spec.workload.name"),
            ("Score", ".spec.score"),
            ("Band", ".spec.band"),
            ("Acceptable", ".spec.acceptable"),
            ("Age", ".metadata.creationTimestamp"),
        ]
        .map(|(a, b)| (s(a), s(b)))
    );
    assert_eq!(
        columns(&crds[2]),
        [
            ("Rules", ".spec.rules"),
            ("Approved By", ".spec.approvedBy"),
            ("Expires", ".spec.expiresAt"),
            ("Age", ".metadata.creationTimestamp"),
        ]
        .map(|(a, b)| (s(a), s(b)))
    );
    assert!(crds[0].spec.versions[0].subresources.as_ref().and_then(|s| s.status.as_ref()).is_some());
    for crd in &crds {
        assert_eq!(crd.spec.group, "crmrisk.io");
        assert_eq!(crd.spec.versions.len(), 1);
        assert_eq!(
            (crd.spec.versions[0].name.as_str(), crd.spec.versions[0].served, crd.spec.versions[0].storage),
            ("v1alpha1", true, true)
        );
    }
}

fn schema_of(crd: &CustomResourceDefinition) -> Value {
    let schema = crd.spec.versions[0].schema.as_ref().and_then(|s| s.open_api_v3_schema.as_ref()).expect("a schema");
    serde_json::to_value(schema).expect("schema serializes")
}

fn at<'a>(schema: &'a Value, path: &str) -> &'a Value {
    path.split('.').fold(schema, |node, key| match key {
        "[]" => &node["items"],
        _ => &node["properties"][key],
    })
}

#[test]
fn schemas_are_structural_and_defaults_validate() {
    for crd in all_crds() {
        let schema = schema_of(&crd);
        let mut problems = Vec::new();
        check_structural(&schema, "", &mut problems);
        assert!(problems.is_empty(), "{}: schema is not structural:\n{}", crd.spec.names.kind, problems.join("\n"));
    }
}

#[test]
fn the_structural_check_catches_what_the_apiserver_rejects() {
    let bad = json!({
        "type": "object",
        "properties": {
            "untyped": {"description": "x"},
            "bare": {"type": "object"},
            "union": {"anyOf": [{"type": "string"}, {"type": "integer"}]},
            "list": {"type": "array"},
            "keyed": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["id"],
                "items": {"type": "object", "properties": {"id": {"type": "string"}}},
            },
            "kind": {"type": "string", "enum": ["A", null], "nullable": true, "default": "B"},
            "n": {"type": "integer", "minimum": 1, "default": 0},
        },
    });
    let mut problems = Vec::new();
    check_structural(&bad, "", &mut problems);
    let all = problems.join("\n");
    for needle in [
        ".untyped: no type",
        ".bare: object without properties",
        ".union: has anyOf",
        ".list: array without items",
        ".keyed: map key \"id\" neither required nor defaulted",
        ".kind: null in enum",
        ".kind (default): \"B\" not in enum",
        ".n (default): 0 out of range",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

/// Stricter than the apiserver: we use no `*Of`/`not` at all, so every node must carry its type.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(obj) = node.as_object() else {
        problems.push(format!("{path}: not an object"));
        return;
    };
    for forbidden in ["$ref", "anyOf", "oneOf", "allOf", "not", "definitions", "$defs", "const"] {
        if obj.contains_key(forbidden) {
            problems.push(format!("{path}: has {forbidden}"));
        }
    }
    let preserve = obj.get("x-kubernetes-preserve-unknown-fields") == Some(&json!(true));
    let int_or_string = obj.get("x-kubernetes-int-or-string") == Some(&json!(true));
    let ty = obj.get("type").and_then(Value::as_str);
    if ty.is_none() && !preserve && !int_or_string {
        problems.push(format!("{path}: no type"));
    }
    if let Some(values) = obj.get("enum").and_then(Value::as_array)
        && values.iter().any(Value::is_null)
    {
        problems.push(format!("{path}: null in enum"));
    }
    match ty {
        Some("object") => {
            let props = obj.get("properties").and_then(Value::as_object);
            let additional = obj.get("additionalProperties");
            match (props, additional) {
                (Some(_), Some(_)) => problems.push(format!("{path}: both properties and additionalProperties")),
                (None, None) if !preserve => problems.push(format!("{path}: object without properties")),
                _ => {}
            }
            if let Some(props) = props {
                for (k, v) in props {
                    check_structural(v, &format!("{path}.{k}"), problems);
                }
                for r in obj.get("required").and_then(Value::as_array).into_iter().flatten() {
                    if !r.as_str().is_some_and(|r| props.contains_key(r)) {
                        problems.push(format!("{path}: required {r} is not a property"));
                    }
                }
            }
            if let Some(additional) = additional {
                check_structural(additional, &format!("{path}.*"), problems);
            }
        }
        Some("array") => match obj.get("items") {
            Some(items) => {
                check_structural(items, &format!("{path}[]"), problems);
                check_list_type(obj, items, path, problems);
            }
            None => problems.push(format!("{path}: array without items")),
        },
        Some("string" | "integer" | "number" | "boolean") | None => {}
        Some(other) => problems.push(format!("{path}: unknown type {other}")),
    }
    if let Some(default) = obj.get("default") {
        validate_value(node, default, &format!("{path} (default)"), problems);
    }
}

fn check_list_type(array: &serde_json::Map<String, Value>, items: &Value, path: &str, problems: &mut Vec<String>) {
    match array.get("x-kubernetes-list-type").and_then(Value::as_str) {
        Some("map") => {
            let keys = array.get("x-kubernetes-list-map-keys").and_then(Value::as_array);
            let required = items["required"].as_array().cloned().unwrap_or_default();
            if items["type"] != "object" {
                problems.push(format!("{path}: list-type map of non-objects"));
            }
            for key in keys.into_iter().flatten() {
                let has_default = key.as_str().is_some_and(|k| items["properties"][k].get("default").is_some());
                if !required.contains(key) && !has_default {
                    problems.push(format!("{path}: map key {key} neither required nor defaulted"));
                }
            }
            if keys.is_none_or(|k| k.is_empty()) {
                problems.push(format!("{path}: list-type map without keys"));
            }
        }
        Some("set") => {
            if !matches!(items["type"].as_str(), Some("string" | "integer" | "number" | "boolean")) {
                problems.push(format!("{path}: list-type set of non-scalars"));
            }
        }
        Some("atomic") | None => {}
        Some(other) => problems.push(format!("{path}: unknown list-type {other}")),
    }
}

/// A small validator, enough to catch defaults the apiserver would reject.
fn validate_value(schema: &Value, value: &Value, path: &str, problems: &mut Vec<String>) {
    if value.is_null() {
        if schema.get("nullable") != Some(&json!(true)) {
            problems.push(format!("{path}: null but not nullable"));
        }
        return;
    }
    let ok = match schema["type"].as_str() {
        Some("object") => value.is_object(),
        Some("array") => value.is_array(),
        Some("string") => value.is_string(),
        Some("integer") => value.is_i64() || value.is_u64(),
        Some("number") => value.is_number(),
        Some("boolean") => value.is_boolean(),
        _ => true,
    };
    if !ok {
        problems.push(format!("{path}: {value} is not of type {}", schema["type"]));
        return;
    }
    if let Some(values) = schema["enum"].as_array()
        && !values.contains(value)
    {
        problems.push(format!("{path}: {value} not in enum"));
    }
    if let Some(n) = value.as_f64()
        && (schema["minimum"].as_f64().is_some_and(|m| n < m) || schema["maximum"].as_f64().is_some_and(|m| n > m))
    {
        problems.push(format!("{path}: {value} out of range"));
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if schema["minLength"].as_u64().is_some_and(|m| len < m)
            || schema["maxLength"].as_u64().is_some_and(|m| len > m)
        {
            problems.push(format!("{path}: {value} has the wrong length"));
        }
    }
    if let Some(items) = value.as_array() {
        if schema["minItems"].as_u64().is_some_and(|m| (items.len() as u64) < m) {
            problems.push(format!("{path}: too few items"));
        }
        for (i, item) in items.iter().enumerate() {
            validate_value(&schema["items"], item, &format!("{path}[{i}]"), problems);
        }
    }
    if let Some(map) = value.as_object() {
        for r in schema["required"].as_array().into_iter().flatten() {
            if r.as_str().is_some_and(|r| !map.contains_key(r)) {
                problems.push(format!("{path}: missing required {r}"));
            }
        }
        for (k, v) in map {
            match (schema["properties"].get(k), schema.get("additionalProperties")) {
                (Some(prop), _) => validate_value(prop, v, &format!("{path}.{k}"), problems),
                (None, Some(additional)) => validate_value(additional, v, &format!("{path}.{k}"), problems),
                (None, None) => problems.push(format!("{path}: unknown field {k} would be pruned")),
            }
        }
    }
}

#[test]
fn policy_schema_carries_defaults_ranges_and_rules() {
    let schema = schema_of(&all_crds()[0]);
    let spec = at(&schema, "spec");
    assert!(spec["required"].is_null(), "every spec field is optional");
    assert_eq!(at(spec, "riskTolerance")["default"], 10);
    assert_eq!(
        (at(spec, "riskTolerance")["minimum"].as_f64(), at(spec, "riskTolerance")["maximum"].as_f64()),
        (Some(1.0), Some(25.0))
    );
    assert_eq!(at(spec, "auditInterval")["default"], "10m");
    assert!(at(spec, "auditInterval")["pattern"].is_string());
    assert_eq!(at(spec, "match.kinds")["default"], json!(["Deployment", "StatefulSet"]));
    assert_eq!(at(spec, "match.kinds.[]")["enum"], json!(["Deployment", "StatefulSet", "DaemonSet", "CronJob"]));

    let checks = at(spec, "checks");
    let names = |node: &Value| -> Vec<String> {
        node["properties"].as_object().map(|p| p.keys().cloned().collect()).unwrap_or_default()
    };
    let sorted = |v: &[&str]| {
        let mut v: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(names(checks), sorted(&["encryption", "backups", "rbac", "disasterRecovery", "rules"]));
    assert_eq!(
        names(at(checks, "encryption")),
        sorted(&["enabled", "requireEncryptedStorage", "requireIngressTLS", "requireDatabaseTLS"])
    );
    assert_eq!(
        names(at(checks, "backups")),
        sorted(&["enabled", "maxIntervalHours", "minRetentionDays", "requireOffsite"])
    );
    assert_eq!(
        names(at(checks, "rbac")),
        sorted(&["enabled", "forbidClusterAdmin", "forbidWildcards", "forbidSecretReadAll", "forbidTokenAutomount"])
    );
    assert_eq!(
        names(at(checks, "disasterRecovery")),
        sorted(&["enabled", "minReplicas", "requirePodDisruptionBudget", "requireZoneSpread"])
    );
    assert_eq!(at(checks, "backups.maxIntervalHours")["default"], 24);
    assert_eq!(at(checks, "backups.minRetentionDays")["default"], 7);
    assert_eq!(at(checks, "disasterRecovery.minReplicas")["default"], 2);
    assert_eq!(at(checks, "encryption.requireIngressTLS")["default"], true);
    assert_eq!(at(checks, "rules")["x-kubernetes-list-map-keys"], json!(["id"]));
    assert_eq!(at(checks, "rules.[].likelihood")["maximum"].as_f64(), Some(5.0));
    assert_eq!(at(checks, "rules.[].impact")["minimum"].as_f64(), Some(1.0));

    let custom = at(spec, "customPolicies");
    assert_eq!(custom["x-kubernetes-list-type"], "map");
    assert_eq!(custom["x-kubernetes-list-map-keys"], json!(["name"]));
    assert_eq!(custom["items"]["x-kubernetes-validations"][0]["rule"], "has(self.rego) != has(self.configMapRef)");
    assert!(at(custom, "[].name")["pattern"].is_string());

    let status = at(&schema, "status");
    assert_eq!(at(status, "conditions")["x-kubernetes-list-type"], "map");
    assert_eq!(at(status, "conditions")["x-kubernetes-list-map-keys"], json!(["type"]));
    assert_eq!(at(status, "topFindings")["maxItems"], 20);

    // Descriptions come from the doc comments, for `kubectl explain crp.spec.checks`.
    let mut undocumented = Vec::new();
    find_undocumented(spec, "spec", &mut undocumented);
    assert!(undocumented.is_empty(), "fields without a description: {undocumented:?}");
}

fn find_undocumented(node: &Value, path: &str, out: &mut Vec<String>) {
    if let Some(props) = node["properties"].as_object() {
        for (k, v) in props {
            let p = format!("{path}.{k}");
            if !v["description"].is_string() {
                out.push(p.clone());
            }
            find_undocumented(v, &p, out);
        }
    }
    if node["items"].is_object() {
        find_undocumented(&node["items"], &format!("{path}[]"), out);
    }
}

#[test]
fn exception_schema_requires_an_expiry_and_a_target() {
    let schema = schema_of(&all_crds()[2]);
    let spec = at(&schema, "spec");
    let required: Vec<&str> = spec["required"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for field in ["expiresAt", "rules", "reason", "approvedBy"] {
        assert!(required.contains(&field), "{field} must be required");
    }
    assert_eq!(at(spec, "expiresAt")["format"], "date-time");
    assert_eq!(at(spec, "reason")["minLength"], 10);
    assert_eq!(at(spec, "rules")["minItems"], 1);
    let rules: Vec<&str> =
        spec["x-kubernetes-validations"].as_array().into_iter().flatten().filter_map(|r| r["rule"].as_str()).collect();
    assert_eq!(rules, ["(has(self.workloads) && size(self.workloads) > 0) || has(self.workloadSelector)"]);
    let mut undocumented = Vec::new();
    find_undocumented(spec, "spec", &mut undocumented);
    assert!(undocumented.is_empty(), "fields without a description: {undocumented:?}");
}

#[test]
fn report_findings_are_flat() {
    let schema = schema_of(&all_crds()[1]);
    let finding = at(&schema, "spec.findings.[]");
    for field in
        ["policy", "id", "title", "category", "control", "likelihood", "impact", "score", "band", "accepted", "message"]
    {
        assert!(finding["properties"].get(field).is_some(), "findings[].{field} missing");
        assert!(
            finding["required"].as_array().is_some_and(|r| r.contains(&json!(field))),
            "findings[].{field} not required"
        );
    }
    assert_eq!(at(&schema, "spec.findings")["maxItems"], 200);
}

#[test]
fn descriptions_are_reflowed_for_kubectl_explain() {
    fn walk(node: &Value, path: &str, out: &mut Vec<String>) {
        if let Some(d) = node["description"].as_str()
            && d.replace("\n\n", "").contains('\n')
        {
            out.push(path.to_string());
        }
        for (k, v) in node["properties"].as_object().into_iter().flatten() {
            walk(v, &format!("{path}.{k}"), out);
        }
        if node["items"].is_object() {
            walk(&node["items"], &format!("{path}[]"), out);
        }
    }
    for crd in all_crds() {
        let mut wrapped = Vec::new();
        walk(&schema_of(&crd), "", &mut wrapped);
        assert!(wrapped.is_empty(), "{}: descriptions with line breaks: {wrapped:?}", crd.spec.names.kind);
    }
}
