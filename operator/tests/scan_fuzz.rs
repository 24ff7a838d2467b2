//! `crmrisk scan` must never panic, whatever the manifests say.
//!
//! A small deterministic generator (xorshift64*, no dependencies) takes the documents of the
//! examples and the context fixtures and breaks them: subtrees replaced by values of the wrong
//! type (numbers, strings, nulls, huge strings, deep nesting, arrays where objects go), required
//! fields deleted, kinds and apiVersions swapped (Secrets and Lists of garbage included), then
//! writes them as YAML or JSON; raw garbage text and truncated or spliced manifests are added.
//! Every case goes through `scan::load::parse_into`, `ObjectSet::insert_value`, the context
//! builder and (for some) the Rego evaluation; batches of cases also go through the whole
//! `scan` from files in a temporary directory, with mutated policies and exceptions, and every
//! output format. Each case runs under `catch_unwind`; failures are collected and reported with
//! the seed and case number, and the offending input is saved next to the test's temporary
//! directory.
//!
//! Reproduce or explore: `CRMRISK_FUZZ_SEED=<seed>` changes the seed, `CRMRISK_FUZZ_SCALE=<n>`
//! runs n times as many cases, `CRMRISK_FUZZ_CASE=<n>` runs only case n of the object stream.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crmrisk::api::CRMRiskPolicySpec;
use crmrisk::assess::CompiledPolicy;
use crmrisk::context::{self, ObjectSet};
use crmrisk::engine::{Evaluator, Limits};
use crmrisk::scan::load::{Loaded, parse_into};
use crmrisk::scan::output::{Format, render};
use crmrisk::scan::{ScanOptions, scan};
use jiff::Timestamp;
use serde_json::{Map, Value, json};

const DEFAULT_SEED: u64 = 0x00C0_FFEE_5EED_2026;
/// Mutated-document cases (parse, insert, build contexts; some evaluated).
const OBJECT_CASES: usize = 1500;
/// Every how many object cases the Rego evaluation runs too (it dominates the cost).
const EVALUATE_EVERY: usize = 25;
/// Raw garbage text cases (parse and insert).
const GARBAGE_CASES: usize = 1500;
/// Whole-scan batches (files in a directory, mutated policies and exceptions).
const SCAN_BATCHES: usize = 6;
const FILES_PER_BATCH: usize = 12;

// ---- the generator -------------------------------------------------------------------------

/// xorshift64* (Vigna): tiny, fast and good enough to pick mutations.
struct Rng(u64);

impl Rng {
    /// A generator for stream `stream`, case `case` of seed `seed`: every case can be replayed
    /// on its own.
    fn for_case(seed: u64, stream: u64, case: usize) -> Rng {
        // splitmix64 of the mixed inputs, so neighbouring cases start far apart (and never at 0).
        let mut z =
            seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (case as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(if z == 0 { 0x2545_F491_4F6C_DD1D } else { z })
    }

    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const KINDS: &[(&str, &str)] = &[
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("v1", "Secret"),
    ("v1", "List"),
    ("v1", "ConfigMap"),
    ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"),
    ("apps/v1", "DaemonSet"),
    ("apps/v1", "DeploymentList"),
    ("batch/v1", "CronJob"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("networking.k8s.io/v1", "Ingress"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("policy/v1", "PodDisruptionBudget"),
    ("storage.k8s.io/v1", "StorageClass"),
    ("velero.io/v1", "Schedule"),
    ("velero.io/v1", "BackupStorageLocation"),
    ("postgresql.cnpg.io/v1", "Cluster"),
    ("postgresql.cnpg.io/v1", "ScheduledBackup"),
    ("security.istio.io/v1", "PeerAuthentication"),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"),
    ("crmrisk.io/v1alpha1", "CRMRiskException"),
    ("crmrisk.io/v1alpha1", "CRMRiskPolicy"),
    ("apps/v2", "Deployment"),
    ("", "Deployment"),
    ("v1", ""),
    ("/", "/"),
];

const STRINGS: &[&str] = &[
    "",
    " ",
    "*",
    "-",
    "default",
    "kube-system",
    "../../etc/passwd",
    "crm-db",
    "ÿ\u{0}nul",
    "🦀💥",
    "0 2 * * *",
    "@every 1h",
    "* * * * * * *",
    "99999999999h",
    "-1h",
    "1e400",
    "true",
    "null",
    "postgres://u:p@h:5432/db?sslmode=disable",
    "\\\"'`${}",
    "cluster-admin",
    "LoadBalancer",
    "ReadOnly",
    "In",
    "NotAnOperator",
];

/// A random string: a known awkward one, random characters, or a long one.
fn junk_string(rng: &mut Rng) -> String {
    match rng.below(6) {
        0..=2 => (*rng.pick(STRINGS)).to_owned(),
        3 => (0..rng.below(40)).map(|_| char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')).collect(),
        4 => "x".repeat(1 + rng.below(5000)),
        _ => {
            let prefix = *rng.pick(STRINGS);
            format!("{prefix}{}", rng.next_u64())
        }
    }
}

fn junk_number(rng: &mut Rng) -> Value {
    match rng.below(8) {
        0 => json!(0),
        1 => json!(-1),
        2 => json!(i64::MIN),
        3 => json!(u64::MAX),
        4 => json!(1.5),
        5 => json!(-1e300),
        6 => json!(rng.next_u64() % 100_000),
        _ => json!(2147483648u64),
    }
}

/// Nesting `depth` levels of arrays or single-key objects around a leaf.
fn nested(rng: &mut Rng, depth: usize) -> Value {
    let mut v = json!("leaf");
    let arrays = rng.chance(50);
    for _ in 0..depth {
        v = if arrays { Value::Array(vec![v]) } else { json!({ "a": v }) };
    }
    v
}

/// A value of a random (usually wrong) type.
fn junk(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 2 { 6 } else { 11 }) {
        0 => Value::Null,
        1 => Value::Bool(rng.chance(50)),
        2 | 3 => junk_number(rng),
        4 | 5 => Value::String(junk_string(rng)),
        6 => json!([]),
        7 => json!({}),
        8 => Value::Array((0..rng.below(4)).map(|_| junk(rng, depth + 1)).collect()),
        9 => {
            let mut m = Map::new();
            for _ in 0..rng.below(4) {
                m.insert(junk_string(rng).chars().take(20).collect(), junk(rng, depth + 1));
            }
            Value::Object(m)
        }
        // Deep, but within what a YAML/JSON parser accepts (both stop at 128 levels).
        _ => {
            let depth = 1 + rng.below(100);
            nested(rng, depth)
        }
    }
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// JSON pointers of every node below the root.
fn paths(value: &Value, prefix: &str, out: &mut Vec<String>) {
    match value {
        Value::Object(m) => {
            for (k, v) in m {
                let p = format!("{prefix}/{}", escape_pointer(k));
                out.push(p.clone());
                paths(v, &p, out);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                let p = format!("{prefix}/{i}");
                out.push(p.clone());
                paths(v, &p, out);
            }
        }
        _ => {}
    }
}

/// The parent pointer and last key of `pointer`.
fn split_pointer(pointer: &str) -> (&str, String) {
    let (parent, last) = pointer.rsplit_once('/').unwrap_or(("", pointer));
    (parent, last.replace("~1", "/").replace("~0", "~"))
}

/// Fields whose absence or wrong type the code must survive: names, selectors, templates,
/// references.
const IMPORTANT: &[&str] = &[
    "/metadata",
    "/metadata/name",
    "/metadata/namespace",
    "/metadata/labels",
    "/spec",
    "/spec/selector",
    "/spec/template",
    "/spec/template/spec",
    "/spec/template/spec/containers",
    "/spec/template/metadata/labels",
    "/spec/jobTemplate",
    "/spec/volumeClaimTemplates",
    "/spec/rules",
    "/spec/tls",
    "/spec/schedule",
    "/spec/template/ttl",
    "/spec/storageLocation",
    "/spec/objectStorage",
    "/spec/backup",
    "/spec/cluster",
    "/spec/mtls",
    "/spec/expiresAt",
    "/spec/workloads",
    "/spec/workloadSelector",
    "/spec/customPolicies",
    "/spec/checks",
    "/spec/riskTolerance",
    "/roleRef",
    "/subjects",
    "/rules",
    "/aggregationRule",
    "/parameters",
    "/provisioner",
    "/items",
];

/// Apply one random mutation to `doc`; returns what was done.
fn mutate(rng: &mut Rng, doc: &mut Value) -> String {
    let mut all = Vec::new();
    paths(doc, "", &mut all);
    match rng.below(10) {
        // Replace a random subtree with junk.
        0..=3 if !all.is_empty() => {
            let p = rng.pick(&all).clone();
            let j = junk(rng, 0);
            let desc = format!("replace {p} with {}", short(&j));
            if let Some(slot) = doc.pointer_mut(&p) {
                *slot = j;
            }
            desc
        }
        // Replace or delete a field that matters.
        4 | 5 => {
            let p = *rng.pick(IMPORTANT);
            let (parent, key) = split_pointer(p);
            if rng.chance(50) {
                if let Some(Value::Object(m)) = doc.pointer_mut(parent) {
                    m.remove(&key);
                }
                format!("delete {p}")
            } else {
                let j = junk(rng, 0);
                let desc = format!("set {p} to {}", short(&j));
                if let Some(Value::Object(m)) = doc.pointer_mut(parent) {
                    m.insert(key, j);
                }
                desc
            }
        }
        // Delete a random node.
        6 if !all.is_empty() => {
            let p = rng.pick(&all).clone();
            let (parent, key) = split_pointer(&p);
            match doc.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&key);
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = key.parse::<usize>()
                        && i < a.len()
                    {
                        a.remove(i);
                    }
                }
                _ => {}
            }
            format!("delete {p}")
        }
        // Another type: a body of one kind under the name of another.
        7 => {
            let (api, kind) = *rng.pick(KINDS);
            if let Value::Object(m) = doc {
                m.insert("apiVersion".into(), json!(api));
                m.insert("kind".into(), json!(kind));
                if kind.ends_with("List") && rng.chance(70) {
                    let items: Vec<Value> = (0..rng.below(4)).map(|_| junk(rng, 1)).collect();
                    m.insert("items".into(), Value::Array(items));
                }
            }
            format!("retype to {api} {kind}")
        }
        // An array where an object goes, or the other way round.
        8 if !all.is_empty() => {
            let p = rng.pick(&all).clone();
            let desc = format!("flip the container type at {p}");
            if let Some(slot) = doc.pointer_mut(&p) {
                *slot = match slot.take() {
                    Value::Object(m) => Value::Array(m.into_iter().map(|(_, v)| v).collect()),
                    Value::Array(a) => {
                        Value::Object(a.into_iter().enumerate().map(|(i, v)| (i.to_string(), v)).collect())
                    }
                    other => Value::Array(vec![other]),
                };
            }
            desc
        }
        // Wrap the document in a List, maybe with garbage beside it.
        _ => {
            let mut items = vec![doc.take()];
            for _ in 0..rng.below(3) {
                items.push(junk(rng, 1));
            }
            *doc = json!({"apiVersion": "v1", "kind": "List", "items": items});
            "wrap in a List".to_owned()
        }
    }
}

/// A value for messages: its JSON, cut short.
fn short(v: &Value) -> String {
    let s = v.to_string();
    if s.len() > 60 { format!("{}... ({} bytes)", &s[..floor_boundary(&s, 60)], s.len()) } else { s }
}

/// The largest char boundary of `s` at or before `i`.
fn floor_boundary(s: &str, i: usize) -> usize {
    (0..=i.min(s.len())).rev().find(|&b| s.is_char_boundary(b)).unwrap_or(0)
}

/// Documents as YAML or JSON text (JSON is YAML too; both go through the same loader).
fn to_text(rng: &mut Rng, docs: &[Value]) -> String {
    let yaml = rng.chance(70);
    let mut out = String::new();
    for d in docs {
        out.push_str("---\n");
        if yaml {
            out.push_str(&serde_yaml_ng::to_string(d).unwrap_or_default());
        } else {
            out.push_str(&serde_json::to_string(d).unwrap_or_default());
            out.push('\n');
        }
    }
    out
}

/// Raw garbage: random bytes, YAML punctuation soup, truncated or spliced manifests, parser
/// torture (deep nesting, alias bombs, tags).
fn garbage_text(rng: &mut Rng, corpus: &[String]) -> String {
    match rng.below(8) {
        0 => (0..rng.below(300)).map(|_| char::from_u32(rng.below(0x500) as u32).unwrap_or('?')).collect(),
        1 => {
            const TOKENS: &[&str] = &[
                ":",
                "- ",
                "[",
                "]",
                "{",
                "}",
                ",",
                "\n",
                "  ",
                "---\n",
                "...\n",
                "&a ",
                "*a",
                "!!str ",
                "!tag ",
                "? ",
                "|\n",
                ">-\n",
                "\"",
                "'",
                "#",
                "kind: ",
                "apiVersion: ",
                "metadata:\n",
                "  name: x\n",
                "items:\n",
                "Deployment",
                "List",
                "null",
                "~",
                "1e9",
                "0x1F",
                "\t",
            ];
            (0..rng.below(200)).map(|_| *rng.pick(TOKENS)).collect()
        }
        2 => {
            let text = rng.pick(corpus);
            let cut = floor_boundary(text, rng.below(text.len().max(1)));
            text[..cut].to_owned()
        }
        3 => {
            // Lines of several manifests shuffled together.
            let mut lines: Vec<&str> = Vec::new();
            for _ in 0..3 {
                let text = rng.pick(corpus);
                let all: Vec<&str> = text.lines().collect();
                if all.is_empty() {
                    continue;
                }
                let start = rng.below(all.len());
                let end = (start + rng.below(40)).min(all.len());
                lines.extend(&all[start..end]);
            }
            lines.join("\n")
        }
        4 => {
            // Past the parsers' limit of 128 levels. Not much further: serde_yaml_ng takes time
            // quadratic in the depth before it gives up (about 8 s for 50,000 levels in a
            // release build), which is a denial of service, not a panic, so not this test's
            // subject.
            let depth = 100 + rng.below(400);
            let (open, close) = if rng.chance(50) { ("[", "]") } else { ("{a: ", "}") };
            format!("apiVersion: v1\nkind: List\nitems: {}{}\n", open.repeat(depth), close.repeat(depth))
        }
        5 => {
            let mut bomb = String::from(
                "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bomb\n  labels: &a [x, x, x, x, x, x, x, x]\n",
            );
            let mut prev = "a".to_owned();
            // Each level multiplies the nodes by 8; more than four levels hit serde_yaml_ng's
            // repetition limit (see `alias_bomb_is_an_error`), which takes 0.2 s in a debug
            // build, too slow to repeat hundreds of times.
            let levels = rng.below(3);
            for i in 0..levels {
                let name = format!("b{i}");
                bomb.push_str(&format!(
                    "  l{i}: &{name} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
                ));
                prev = name;
            }
            bomb
        }
        6 => {
            // A real manifest with random bytes flipped.
            let mut bytes = rng.pick(corpus).as_bytes().to_vec();
            for _ in 0..1 + rng.below(20) {
                if !bytes.is_empty() {
                    let i = rng.below(bytes.len());
                    bytes[i] = rng.next_u64() as u8;
                }
            }
            String::from_utf8_lossy(&bytes).into_owned()
        }
        _ => {
            const DOCS: &[&str] = &[
                "apiVersion: v1\nkind: List\nitems: 3\n",
                "apiVersion: v1\nkind: List\nitems: [1, null, \"x\", [], {kind: Secret}]\n",
                "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: [{apiVersion: apps/v1, kind: Deployment}]}]\n",
                "kind: Secret\napiVersion: v1\ndata: {password: aGVsbG8=}\nmetadata: 7\n",
                "apiVersion: apps/v1\nkind: Deployment\n",
                "apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: s}\nspec: {template: {spec: {containers: [{}]}}, volumeClaimTemplates: [{}]}\n",
                "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: c}\nspec: {schedule: '61 25 * * *', jobTemplate: {spec: {template: {spec: {containers: []}}}}}\n",
                "apiVersion: velero.io/v1\nkind: Schedule\nmetadata: {name: s}\nspec: {schedule: '*/0 * * * *', template: {ttl: 99999999999999999h}}\n",
                "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: agg}\naggregationRule: {clusterRoleSelectors: [{matchExpressions: [{key: a, operator: Bogus}]}]}\n",
                "[1, 2, 3]\n",
                "\"just a string\"\n",
                "--- !!map\n? a\n: b\n",
                "\u{feff}apiVersion: v1\nkind: Namespace\nmetadata: {name: bom}\n",
            ];
            (0..1 + rng.below(4)).map(|_| *rng.pick(DOCS)).collect::<Vec<_>>().join("---\n")
        }
    }
}

// ---- seeds ---------------------------------------------------------------------------------

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("operator/ has a parent").to_path_buf()
}

/// Documents the generator starts from, grouped by the file they came from (a mutated document
/// is evaluated among the unmutated rest of its file, so references between objects resolve).
struct Seeds {
    files: Vec<(String, Vec<Value>)>,
    texts: Vec<String>,
}

const EXTRA_SEEDS: &str = r#"
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: crm-risky}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "mysql:8", env: [{name: MYSQL_PWD, valueFrom: {secretKeyRef: {name: s, key: k}}}]}]
      volumes: [{name: data, persistentVolumeClaim: {claimName: agent-data}}, {name: tmp, emptyDir: {}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: agent-data, namespace: crm-risky}
spec: {storageClassName: crm-standard, accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Secret
metadata: {name: s, namespace: crm-risky}
stringData: {k: never-read}
---
apiVersion: crmrisk.io/v1alpha1
kind: CRMRiskException
metadata: {name: accept-dr, namespace: crm-risky}
spec:
  workloads: [{name: crm-db, kind: StatefulSet}]
  workloadSelector: {matchExpressions: [{key: app, operator: In, values: [crm-web]}]}
  rules: [DR-001, "*"]
  policies: [default, crm-baseline]
  reason: a compensating control exists
  approvedBy: cto
  expiresAt: "2027-01-01T00:00:00Z"
---
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: clusters.postgresql.cnpg.io}
spec: {group: postgresql.cnpg.io}
---
apiVersion: v1
kind: List
items:
  - {apiVersion: v1, kind: ServiceAccount, metadata: {name: agent, namespace: crm-risky}}
  - {apiVersion: policy/v1, kind: PodDisruptionBudget, metadata: {name: agent, namespace: crm-risky}, spec: {maxUnavailable: 50%, selector: {matchLabels: {app: agent}}}}
"#;

fn load_seeds() -> Seeds {
    let root = repo_root();
    let mut files: Vec<PathBuf> = [
        "examples/risky/crm.yaml",
        "examples/hardened/crm.yaml",
        "examples/policies/crm-baseline.yaml",
        "examples/policies/crm-image-hygiene.yaml",
    ]
    .iter()
    .map(|p| root.join(p))
    .collect();
    // The context builder's fixtures cover the kinds the examples lack; use whatever is there.
    if let Ok(entries) = std::fs::read_dir(root.join("operator/tests/fixtures/context")) {
        let mut more: Vec<PathBuf> =
            entries.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|e| e == "yaml")).collect();
        more.sort();
        files.extend(more);
    }
    let mut seeds = Seeds { files: Vec::new(), texts: Vec::new() };
    let add = |name: String, text: String, seeds: &mut Seeds| {
        let mut loaded = Loaded::default();
        parse_into(&name, &text, &mut loaded);
        let docs: Vec<Value> = loaded.documents.into_iter().map(|d| d.value).collect();
        if !docs.is_empty() {
            seeds.files.push((name, docs));
        }
        seeds.texts.push(text);
    };
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("reading {}: {e}", f.display()));
        add(f.display().to_string(), text, &mut seeds);
    }
    add("extra seeds".to_owned(), EXTRA_SEEDS.to_owned(), &mut seeds);
    assert!(seeds.files.len() >= 3, "seed documents found");
    seeds
}

// ---- running cases -------------------------------------------------------------------------

fn now() -> Timestamp {
    "2026-06-01T00:00:00Z".parse().expect("valid timestamp")
}

fn base_seed() -> u64 {
    match std::env::var("CRMRISK_FUZZ_SEED") {
        Ok(s) => {
            let s = s.trim();
            let parsed = match s.strip_prefix("0x") {
                Some(hex) => u64::from_str_radix(hex, 16),
                None => s.parse(),
            };
            parsed.unwrap_or_else(|_| panic!("CRMRISK_FUZZ_SEED={s} is not a number"))
        }
        Err(_) => DEFAULT_SEED,
    }
}

fn scale() -> usize {
    std::env::var("CRMRISK_FUZZ_SCALE").ok().and_then(|s| s.parse().ok()).unwrap_or(1)
}

/// The cases to run of a stream of `n`: all, or only `CRMRISK_FUZZ_CASE`.
fn cases(n: usize) -> Vec<usize> {
    match std::env::var("CRMRISK_FUZZ_CASE").ok().and_then(|s| s.parse().ok()) {
        Some(case) => vec![case],
        None => (0..n * scale()).collect(),
    }
}

/// Collected panics: the case, what it did, and where its input was saved.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn record(
        &mut self,
        stream: &str,
        seed: u64,
        case: usize,
        what: &str,
        input: &str,
        payload: Box<dyn std::any::Any + Send>,
    ) {
        let message = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "non-string panic".to_owned());
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("scan_fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{stream}-{seed:#x}-{case}.yaml"));
        let _ = std::fs::write(&file, input);
        self.0.push(format!(
            "{stream} case {case} (CRMRISK_FUZZ_SEED={seed:#x} CRMRISK_FUZZ_CASE={case}): {what}\n  panic: {message}\n  input: {}",
            file.display()
        ));
    }

    fn check(self, stream: &str, ran: usize, started: Instant) {
        eprintln!("{stream}: {ran} cases in {:.2?}", started.elapsed());
        if !self.0.is_empty() {
            panic!("{} of {ran} {stream} cases panicked:\n{}", self.0.len(), self.0.join("\n"));
        }
    }
}

fn default_policy() -> CompiledPolicy {
    CompiledPolicy::compile("default", &CRMRiskPolicySpec::default(), Vec::new(), Limits::default())
        .expect("the default policy compiles")
}

/// What the cases reached, to see that the generator gets past the parser.
#[derive(Debug, Default, Clone, Copy)]
struct Reached {
    parse_errors: usize,
    documents: usize,
    insert_errors: usize,
    workloads: usize,
    assessed: usize,
    assess_errors: usize,
}

impl Reached {
    fn add(&mut self, o: Reached) {
        self.parse_errors += o.parse_errors;
        self.documents += o.documents;
        self.insert_errors += o.insert_errors;
        self.workloads += o.workloads;
        self.assessed += o.assessed;
        self.assess_errors += o.assess_errors;
    }
}

/// Load `text` and everything in `base` into one set, build every workload's context and, when
/// `evaluator` is given, evaluate and score it.
fn run_objects(
    text: &str,
    base: &[Value],
    policy: &CompiledPolicy,
    evaluator: Option<&mut Evaluator>,
    flags: u64,
) -> Reached {
    let mut reached = Reached::default();
    let mut loaded = Loaded::default();
    parse_into("case.yaml", text, &mut loaded);
    for e in &loaded.errors {
        assert!(e.source.starts_with("case.yaml#"), "error source {:?} names the file and document", e.source);
    }
    reached.parse_errors = loaded.errors.len();
    reached.documents = loaded.documents.len();
    let mut set = ObjectSet::new();
    set.set_velero_installed(flags & 1 == 1);
    set.set_cnpg_installed(flags & 2 == 2);
    for v in base {
        let _ = set.insert_value(v.clone());
    }
    for doc in loaded.documents {
        if set.insert_value(doc.value).is_err() {
            reached.insert_errors += 1;
        }
    }
    let mut evaluator = evaluator;
    for w in set.workloads() {
        let ctx = context::build(w, &set);
        let _ = serde_json::to_string(&ctx).expect("a context serializes");
        let _ = policy.matches(w, &set);
        reached.workloads += 1;
        if let Some(ev) = evaluator.as_deref_mut() {
            reached.assessed += 1;
            if policy.assess(ev, w, &set, &[], now()).is_err() {
                reached.assess_errors += 1;
            }
        }
    }
    reached
}

#[test]
fn mutated_manifests_never_panic() {
    let seeds = load_seeds();
    let seed = base_seed();
    let policy = default_policy();
    let mut evaluator = policy.evaluator();
    let mut failures = Failures::default();
    let started = Instant::now();
    let list = cases(OBJECT_CASES);
    let mut reached = Reached::default();
    for &case in &list {
        let mut rng = Rng::for_case(seed, 1, case);
        let (_, docs) = rng.pick(&seeds.files);
        let mut docs = docs.clone();
        // Mutate one to three documents of the file, one to four times each.
        let mut what = Vec::new();
        let mut mutated = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(docs.len());
            for _ in 0..1 + rng.below(4) {
                what.push(format!("doc {i}: {}", mutate(&mut rng, &mut docs[i])));
            }
            if !mutated.contains(&i) {
                mutated.push(i);
            }
        }
        let picked: Vec<Value> = mutated.iter().map(|&i| docs[i].clone()).collect();
        let base: Vec<Value> =
            docs.iter().enumerate().filter(|(i, _)| !mutated.contains(i)).map(|(_, d)| d.clone()).collect();
        let text = to_text(&mut rng, &picked);
        let flags = rng.next_u64();
        let evaluate = case % EVALUATE_EVERY == 0;
        let result = catch_unwind(AssertUnwindSafe(|| {
            run_objects(&text, &base, &policy, evaluate.then_some(&mut evaluator), flags)
        }));
        if let Ok(r) = &result {
            reached.add(*r);
        }
        if let Err(payload) = result {
            failures.record("objects", seed, case, &what.join("; "), &text, payload);
            // The evaluator may have been left mid-evaluation.
            evaluator = policy.evaluator();
        }
    }
    eprintln!("mutated manifests reached {reached:?}");
    failures.check("mutated manifests", list.len(), started);
}

#[test]
fn garbage_text_never_panics() {
    let seeds = load_seeds();
    let seed = base_seed();
    let policy = default_policy();
    let mut failures = Failures::default();
    let started = Instant::now();
    let list = cases(GARBAGE_CASES);
    let mut reached = Reached::default();
    for &case in &list {
        let mut rng = Rng::for_case(seed, 2, case);
        let text = garbage_text(&mut rng, &seeds.texts);
        let result = catch_unwind(AssertUnwindSafe(|| run_objects(&text, &[], &policy, None, 3)));
        if let Ok(r) = &result {
            reached.add(*r);
        }
        if let Err(payload) = result {
            failures.record("garbage", seed, case, "garbage text", &text, payload);
        }
    }
    eprintln!("garbage texts reached {reached:?}");
    failures.check("garbage texts", list.len(), started);
}

#[test]
fn oversized_documents_are_errors_not_panics() {
    // A 5 MiB value: over the engine's input limit, which must come back as an error.
    let big = "y".repeat(5 * 1024 * 1024);
    let text = format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: big, namespace: crm}}\nspec:\n  selector: {{}}\n  \
         template:\n    spec:\n      containers: [{{name: c, image: x, env: [{{name: BIG, value: {big}}}]}}]\n"
    );
    let policy = default_policy();
    let mut evaluator = policy.evaluator();
    let mut loaded = Loaded::default();
    parse_into("big.yaml", &text, &mut loaded);
    let mut set = ObjectSet::new();
    for d in loaded.documents {
        set.insert_value(d.value).expect("a big but well-formed Deployment is accepted");
    }
    let w = &set.workloads()[0];
    let err = policy.assess(&mut evaluator, w, &set, &[], now()).expect_err("input over the size limit");
    assert!(err.to_string().contains("limit") || err.to_string().contains("large"), "{err}");
}

#[test]
fn alias_bomb_is_an_error() {
    let mut bomb =
        String::from("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: bomb\n  labels: &a [x, x, x, x]\n");
    let mut prev = "a".to_owned();
    for i in 0..12 {
        let name = format!("b{i}");
        let refs = vec![format!("*{prev}"); 8].join(", ");
        bomb.push_str(&format!("  l{i}: &{name} [{refs}]\n"));
        prev = name;
    }
    let mut loaded = Loaded::default();
    parse_into("bomb.yaml", &bomb, &mut loaded);
    assert!(loaded.documents.is_empty());
    assert_eq!(loaded.errors.len(), 1, "{:?}", loaded.errors);
    assert_eq!(loaded.errors[0].source, "bomb.yaml#0");
}

#[test]
fn whole_scans_of_mutated_files_never_panic() {
    let seeds = load_seeds();
    let seed = base_seed();
    let root = repo_root();
    let policy_files = ["examples/policies/crm-baseline.yaml", "examples/policies/crm-image-hygiene.yaml"];
    let policy_docs: Vec<Value> = policy_files
        .iter()
        .flat_map(|p| {
            let mut loaded = Loaded::default();
            parse_into(p, &std::fs::read_to_string(root.join(p)).expect("example policy"), &mut loaded);
            loaded.documents.into_iter().map(|d| d.value)
        })
        .collect();
    let mut failures = Failures::default();
    let started = Instant::now();
    let list = match std::env::var("CRMRISK_FUZZ_CASE") {
        Ok(_) => cases(SCAN_BATCHES),
        Err(_) => (0..SCAN_BATCHES * scale()).collect(),
    };
    for &batch in &list {
        let mut rng = Rng::for_case(seed, 3, batch);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("scan_fuzz-{}-{batch}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("inputs")).expect("scratch dir");
        let mut what = Vec::new();
        for f in 0..FILES_PER_BATCH {
            let text = if rng.chance(25) {
                what.push(format!("file {f}: garbage"));
                garbage_text(&mut rng, &seeds.texts)
            } else {
                let (name, docs) = rng.pick(&seeds.files);
                let mut docs = docs.clone();
                for _ in 0..1 + rng.below(4) {
                    let i = rng.below(docs.len());
                    what.push(format!("file {f} ({name}) doc {i}: {}", mutate(&mut rng, &mut docs[i])));
                }
                to_text(&mut rng, &docs)
            };
            let ext = *rng.pick(&["yaml", "yml", "json"]);
            std::fs::write(dir.join("inputs").join(format!("{f}.{ext}")), text).expect("write case file");
        }
        let mut policies = Vec::new();
        for (i, p) in policy_docs.iter().enumerate() {
            if rng.chance(30) {
                continue;
            }
            let mut p = p.clone();
            if rng.chance(60) {
                what.push(format!("policy {i}: {}", mutate(&mut rng, &mut p)));
            }
            let file = dir.join(format!("policy-{i}.yaml"));
            std::fs::write(&file, to_text(&mut rng, &[p])).expect("write policy");
            policies.push(file);
        }
        let options = ScanOptions {
            inputs: vec![dir.join("inputs")],
            policies,
            assume_velero: rng.chance(50),
            assume_cnpg: rng.chance(50),
            now: Some(now()),
        };
        let result = catch_unwind(AssertUnwindSafe(|| {
            let report = scan(&options);
            for e in &report.errors {
                assert!(!e.source.is_empty() && !e.message.is_empty(), "error without source or message: {e:?}");
            }
            for format in [Format::Table, Format::Json, Format::Sarif, Format::Junit] {
                assert!(!render(&report, format).is_empty());
            }
        }));
        match result {
            Ok(()) => {
                let _ = std::fs::remove_dir_all(&dir);
            }
            Err(payload) => failures.record(
                "scan",
                seed,
                batch,
                &format!("{} (files kept in {})", what.join("; "), dir.display()),
                "see the directory named above",
                payload,
            ),
        }
    }
    failures.check("whole scans", list.len(), started);
}

#[test]
fn generator_is_deterministic() {
    let mut a = Rng::for_case(DEFAULT_SEED, 1, 7);
    let mut b = Rng::for_case(DEFAULT_SEED, 1, 7);
    let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
    let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
    assert_eq!(xs, ys);
    let mut c = Rng::for_case(DEFAULT_SEED, 1, 8);
    assert_ne!(xs[0], c.next_u64(), "neighbouring cases differ");
    let mut doc = json!({"metadata": {"name": "x", "labels": {"a/b": "c"}}, "spec": {"k": [1, 2]}});
    let mut all = Vec::new();
    paths(&doc, "", &mut all);
    assert!(all.contains(&"/metadata/labels/a~1b".to_owned()), "{all:?}");
    assert!(doc.pointer_mut("/metadata/labels/a~1b").is_some());
    let mut rng = Rng::for_case(1, 1, 1);
    for _ in 0..200 {
        mutate(&mut rng, &mut doc);
    }
}
