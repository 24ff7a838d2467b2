//! Reading manifests: files, directories (recursively, `*.yaml`, `*.yml`, `*.json`) or `-` for
//! stdin; multi-document YAML, JSON, and `kind: List`. A malformed document is reported with
//! its file and document index and the others are still read.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One object read from a manifest, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// `path#index` (index counts documents in the file from 0; list items add `.item`).
    pub source: String,
    pub value: serde_json::Value,
}

/// A problem with one input (the rest is still used).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InputError {
    pub source: String,
    pub message: String,
}

/// Everything read from the inputs.
#[derive(Debug, Default)]
pub struct Loaded {
    pub documents: Vec<Document>,
    pub errors: Vec<InputError>,
}

/// Read all inputs. `-` reads stdin.
pub fn load(inputs: &[PathBuf]) -> Loaded {
    let mut loaded = Loaded::default();
    for input in inputs {
        if input.as_os_str() == "-" {
            let mut text = String::new();
            match std::io::stdin().read_to_string(&mut text) {
                Ok(_) => parse_into("<stdin>", &text, &mut loaded),
                Err(e) => loaded.errors.push(InputError { source: "<stdin>".into(), message: e.to_string() }),
            }
        } else if input.is_dir() {
            let mut files = Vec::new();
            collect_dir(input, &mut files, &mut loaded.errors);
            files.sort();
            for f in files {
                read_file(&f, &mut loaded);
            }
        } else {
            read_file(input, &mut loaded);
        }
    }
    loaded
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<InputError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) => {
            errors.push(InputError { source: dir.display().to_string(), message: e.to_string() });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            collect_dir(&path, files, errors);
        } else if matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")) {
            files.push(path);
        }
    }
}

fn read_file(path: &Path, loaded: &mut Loaded) {
    match std::fs::read_to_string(path) {
        Ok(text) => parse_into(&path.display().to_string(), &text, loaded),
        Err(e) => loaded.errors.push(InputError { source: path.display().to_string(), message: e.to_string() }),
    }
}

/// Split YAML text into documents at `---` lines, so one broken document does not hide the
/// ones after it. Chunks that hold only comments or whitespace are not documents.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line == "---" || line.starts_with("--- ") || line == "..." {
            docs.push(String::new());
            continue;
        }
        if let Some(last) = docs.last_mut() {
            last.push_str(line);
            last.push('\n');
        }
    }
    docs.retain(|d| d.lines().any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#')));
    docs
}

/// Deepest flow-style nesting accepted. The YAML parser rejects nesting past 128 levels only
/// after work that grows with the square of the depth, so a hostile document of a few hundred
/// kilobytes of `[[[[` could stall a CI job; real manifests nest a dozen levels at most.
const MAX_FLOW_DEPTH: usize = 64;

fn flow_depth(doc: &str) -> usize {
    let (mut depth, mut max) = (0usize, 0usize);
    for b in doc.bytes() {
        match b {
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Parse one file's text (YAML, which includes JSON) into documents.
pub fn parse_into(name: &str, text: &str, loaded: &mut Loaded) {
    for (index, doc) in split_documents(text).iter().enumerate() {
        let source = format!("{name}#{index}");
        if flow_depth(doc) > MAX_FLOW_DEPTH {
            loaded.errors.push(InputError {
                source,
                message: format!("nested deeper than {MAX_FLOW_DEPTH} levels; not a Kubernetes manifest"),
            });
            continue;
        }
        match serde_yaml_ng::from_str::<serde_json::Value>(doc) {
            Ok(serde_json::Value::Null) => {}
            Ok(value) => push_value(source, value, loaded),
            Err(e) => loaded.errors.push(InputError { source, message: format!("not valid YAML/JSON: {e}") }),
        }
    }
}

fn push_value(source: String, value: serde_json::Value, loaded: &mut Loaded) {
    let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or_default();
    if !value.is_object() {
        loaded.errors.push(InputError { source, message: "document is not an object".into() });
        return;
    }
    if kind == "List" || kind.ends_with("List") && value.get("items").is_some_and(|i| i.is_array()) {
        if let Some(items) = value.get("items").and_then(|i| i.as_array()) {
            for (i, item) in items.iter().enumerate() {
                push_value(format!("{source}.{i}"), item.clone(), loaded);
            }
        }
        return;
    }
    if kind.is_empty() || value.get("apiVersion").and_then(|v| v.as_str()).is_none() {
        loaded.errors.push(InputError { source, message: "document has no apiVersion/kind".into() });
        return;
    }
    loaded.documents.push(Document { source, value });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Loaded {
        let mut l = Loaded::default();
        parse_into("f.yaml", text, &mut l);
        l
    }

    #[test]
    fn multi_document_yaml_lists_and_json() {
        let l = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n---\n\
             {\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\
               {\"apiVersion\": \"v1\", \"kind\": \"ServiceAccount\", \"metadata\": {\"name\": \"x\"}}]}\n",
        );
        assert!(l.errors.is_empty(), "{:?}", l.errors);
        let sources: Vec<_> = l.documents.iter().map(|d| d.source.as_str()).collect();
        assert_eq!(sources, ["f.yaml#0", "f.yaml#1.0"]);
    }

    #[test]
    fn malformed_documents_are_reported_with_their_index_and_others_kept() {
        let l = parse(
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n- just\n- a list\n---\nfoo: bar\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
        );
        assert_eq!(l.documents.len(), 2);
        let errs: Vec<_> = l.errors.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(errs, ["f.yaml#1", "f.yaml#2"]);
    }

    #[test]
    fn deeply_nested_documents_are_rejected_quickly() {
        let hostile = "[".repeat(100_000);
        let l = parse(&format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\n{hostile}\n"));
        assert_eq!(l.documents.len(), 1);
        assert!(l.errors[0].message.contains("nested deeper"), "{:?}", l.errors);
    }

    #[test]
    fn yaml_syntax_error_is_reported() {
        let l = parse("apiVersion: v1\nkind: [unclosed\n");
        assert_eq!(l.documents.len(), 0);
        assert_eq!(l.errors.len(), 1);
        assert!(l.errors[0].source.starts_with("f.yaml#0"));
        assert!(l.errors[0].message.contains("YAML"), "{}", l.errors[0].message);
    }
}
