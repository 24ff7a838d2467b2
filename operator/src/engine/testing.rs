//! `crmrisk test`: runs the `test_*` rules of a Rego library with regorus.
//!
//! regorus has no `opa test`, so this module does the discovery itself: it loads every `*.rego`
//! file under a directory (and every `*.json` file as data), finds the rules whose name starts
//! with `test_` in the parsed modules, and evaluates each one by its full path. As in OPA, a
//! test passes when it is defined and not `false`; undefined, `false` and evaluation errors fail.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use regorus::unstable::{Expr, Rule, RuleHead};

/// Why a test run could not start (a failing test is not an error: see [`TestReport`]).
#[derive(Debug, thiserror::Error)]
pub enum TestError {
    #[error("reading {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Rego file that does not parse; the message carries `file:line:col`.
    #[error("parsing {}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    /// A JSON data file that is not valid JSON or conflicts with other data.
    #[error("loading data {}: {message}", path.display())]
    Data { path: PathBuf, message: String },
    /// The modules parse but do not compile together (unsafe variables, conflicting rules...).
    #[error("compiling the policies under {}: {message}", dir.display())]
    Compile { dir: PathBuf, message: String },
    #[error("no .rego files under {}", .0.display())]
    NoPolicies(PathBuf),
}

/// The outcome of one `test_*` rule.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// Package without the `data.` prefix, e.g. `crmrisk.encryption_test`.
    pub package: String,
    pub name: String,
    /// File that declares the test, as loaded (under the directory given to [`run_tests`]).
    pub file: String,
    pub line: u32,
    pub passed: bool,
    pub duration: Duration,
    /// Why it failed: "undefined", "false", or the evaluation error. `None` when it passed.
    pub error: Option<String>,
    /// Output of `print()` calls made while the test ran.
    pub prints: Vec<String>,
}

impl TestResult {
    /// `package.name`, as printed and as matched by the filter.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.package, self.name)
    }
}

/// Line coverage of one non-test policy file, gathered while the tests ran.
#[derive(Debug, Clone)]
pub struct FileCoverage {
    pub file: String,
    pub covered: usize,
    pub not_covered: usize,
    /// Lines that no test evaluated.
    pub not_covered_lines: Vec<u32>,
}

impl FileCoverage {
    pub fn percent(&self) -> f64 {
        let total = self.covered + self.not_covered;
        if total == 0 { 100.0 } else { self.covered as f64 * 100.0 / total as f64 }
    }
}

/// All results of a run, in discovery order (file path, then declaration order).
#[derive(Debug, Clone, Default)]
pub struct TestReport {
    pub results: Vec<TestResult>,
    /// Coverage of the files that are not `*_test.rego`.
    pub coverage: Vec<FileCoverage>,
}

impl TestReport {
    pub fn passed(&self) -> usize {
        self.results.iter().filter(|r| r.passed).count()
    }

    pub fn failed(&self) -> usize {
        self.results.iter().filter(|r| !r.passed).count()
    }

    pub fn total(&self) -> usize {
        self.results.len()
    }

    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| !r.passed)
    }
}

/// Loads the Rego library and data under `dir` and runs its tests.
///
/// `filter`, when given, keeps only the tests whose `package.name` contains it.
pub fn run_tests(dir: &Path, filter: Option<&str>) -> Result<TestReport, TestError> {
    let mut rego_files = Vec::new();
    let mut json_files = Vec::new();
    collect_files(dir, &mut rego_files, &mut json_files)?;
    rego_files.sort();
    json_files.sort();
    if rego_files.is_empty() {
        return Err(TestError::NoPolicies(dir.to_path_buf()));
    }

    let mut engine = regorus::Engine::new();
    engine.set_rego_v0(false);
    engine.set_gather_prints(true);

    for path in &json_files {
        let text = read(path)?;
        let value = regorus::Value::from_json_str(&text)
            .map_err(|e| TestError::Data { path: path.clone(), message: e.to_string() })?;
        engine.add_data(value).map_err(|e| TestError::Data { path: path.clone(), message: e.to_string() })?;
    }
    for path in &rego_files {
        let text = read(path)?;
        // The source name is the path, so parse and evaluation errors read `path:line:col`.
        engine
            .add_policy(path.display().to_string(), text)
            .map_err(|e| TestError::Parse { path: path.clone(), message: e.to_string() })?;
    }

    let tests = discover(&mut engine, filter);

    // Analyse and link all modules once, so a compile error is reported once, not per test.
    engine
        .eval_query("true".to_string(), false)
        .map_err(|e| TestError::Compile { dir: dir.to_path_buf(), message: e.to_string() })?;
    let _ = engine.take_prints();
    engine.set_enable_coverage(true);
    engine.clear_coverage_data();

    let mut results = Vec::with_capacity(tests.len());
    for test in tests {
        let start = Instant::now();
        let outcome = engine.eval_rule(format!("data.{}.{}", test.package, test.name));
        let duration = start.elapsed();
        let (passed, error) = match outcome {
            Ok(regorus::Value::Undefined) => (false, Some("undefined".to_string())),
            Ok(regorus::Value::Bool(false)) => (false, Some("false".to_string())),
            Ok(_) => (true, None),
            Err(e) => (false, Some(e.to_string())),
        };
        let prints = engine.take_prints().unwrap_or_default();
        results.push(TestResult {
            package: test.package,
            name: test.name,
            file: test.file,
            line: test.line,
            passed,
            duration,
            error,
            prints,
        });
    }

    let coverage = match engine.get_coverage_report() {
        Ok(report) => report
            .files
            .into_iter()
            .filter(|f| !f.path.ends_with("_test.rego"))
            .map(|f| FileCoverage {
                file: f.path,
                covered: f.covered.len(),
                not_covered: f.not_covered.len(),
                not_covered_lines: f.not_covered.into_iter().collect(),
            })
            .collect(),
        Err(_) => Vec::new(),
    };

    Ok(TestReport { results, coverage })
}

/// Prints one line per test (`PASS pkg.test_x (0.3ms)`), the failure details, the coverage and a
/// final `N passed, N failed` line.
pub fn print_report(report: &TestReport, out: &mut impl Write) -> std::io::Result<()> {
    for r in &report.results {
        let status = if r.passed { "PASS" } else { "FAIL" };
        writeln!(out, "{status} {} ({})", r.full_name(), format_duration(r.duration))?;
        if !r.passed {
            writeln!(out, "    at {}:{}", r.file, r.line)?;
            if let Some(error) = &r.error {
                for line in error.lines() {
                    writeln!(out, "    {line}")?;
                }
            }
            for p in &r.prints {
                writeln!(out, "    print: {p}")?;
            }
        }
    }
    if !report.coverage.is_empty() {
        writeln!(out)?;
        writeln!(out, "coverage:")?;
        for c in &report.coverage {
            writeln!(out, "  {:6.1}%  {}", c.percent(), c.file)?;
        }
    }
    writeln!(out)?;
    writeln!(out, "{} passed, {} failed", report.passed(), report.failed())
}

fn format_duration(d: Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms >= 1000.0 { format!("{:.2}s", ms / 1000.0) } else { format!("{ms:.1}ms") }
}

struct Discovered {
    package: String,
    name: String,
    file: String,
    line: u32,
}

/// Finds the `test_*` rules (not functions) of every loaded module, once per package and name.
fn discover(engine: &mut regorus::Engine, filter: Option<&str>) -> Vec<Discovered> {
    let mut seen = BTreeSet::new();
    let mut found = Vec::new();
    for module in engine.get_modules().iter() {
        let package = module.package.refr.span().text().to_string();
        let file = module.package.span.source.get_path().to_string();
        for rule in &module.policy {
            let Rule::Spec { head: RuleHead::Compr { refr, .. }, span, .. } = rule.as_ref() else {
                continue;
            };
            let Expr::Var { span: name_span, .. } = refr.as_ref() else {
                continue;
            };
            let name = name_span.text();
            if !name.starts_with("test_") {
                continue;
            }
            let full = format!("{package}.{name}");
            if filter.is_some_and(|f| !full.contains(f)) || !seen.insert(full) {
                continue;
            }
            found.push(Discovered {
                package: package.clone(),
                name: name.to_string(),
                file: file.clone(),
                line: span.line,
            });
        }
    }
    found
}

fn collect_files(dir: &Path, rego: &mut Vec<PathBuf>, json: &mut Vec<PathBuf>) -> Result<(), TestError> {
    let entries = std::fs::read_dir(dir).map_err(|source| TestError::Io { path: dir.to_path_buf(), source })?;
    for entry in entries {
        let entry = entry.map_err(|source| TestError::Io { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|source| TestError::Io { path: path.clone(), source })?;
        if file_type.is_dir() {
            collect_files(&path, rego, json)?;
        } else if path.extension().is_some_and(|e| e == "rego") {
            rego.push(path);
        } else if path.extension().is_some_and(|e| e == "json") && !is_schema(&path) {
            json.push(path);
        }
    }
    Ok(())
}

/// JSON Schemas (`*.schema.json`) describe the input; they are not data.
fn is_schema(path: &Path) -> bool {
    path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.ends_with(".schema.json"))
}

fn read(path: &Path) -> Result<String, TestError> {
    std::fs::read_to_string(path).map_err(|source| TestError::Io { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("crmrisk-testing-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn runs_passing_failing_and_undefined_tests() {
        let dir = tempdir("run");
        write(&dir, "a/a.rego", "package a\n\nx := data.values.x\n");
        write(&dir, "a/data.json", r#"{"values": {"x": 3}}"#);
        write(
            &dir,
            "a/a_test.rego",
            "package a_test\n\nimport data.a\n\ntest_ok if a.x == 3\n\ntest_false := false\n\n\
             test_undefined if a.x == 4\n\ntest_helper(v) if v\n\nnot_a_test if true\n",
        );
        let report = run_tests(&dir, None).unwrap();
        let names: Vec<_> = report.results.iter().map(|r| (r.full_name(), r.passed)).collect();
        assert_eq!(
            names,
            vec![
                ("a_test.test_ok".to_string(), true),
                ("a_test.test_false".to_string(), false),
                ("a_test.test_undefined".to_string(), false),
            ]
        );
        assert_eq!(report.failed(), 2);
        let mut out = Vec::new();
        print_report(&report, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(out.contains("PASS a_test.test_ok ("), "{out}");
        assert!(out.contains("FAIL a_test.test_undefined ("), "{out}");
        assert!(out.ends_with("1 passed, 2 failed\n"), "{out}");

        let filtered = run_tests(&dir, Some("test_ok")).unwrap();
        assert_eq!(filtered.total(), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn parse_errors_name_file_line_and_column() {
        let dir = tempdir("parse");
        write(&dir, "broken.rego", "package broken\n\nx := {\n");
        let err = run_tests(&dir, None).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TestError::Parse { .. }), "{message}");
        assert!(message.contains("broken.rego:"), "{message}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
