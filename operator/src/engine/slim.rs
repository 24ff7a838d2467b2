//! Trims the debugging parts of a lowered VM program that regorus copies on every rule call.
//!
//! regorus 0.14.1's VM clones a rule's whole `RuleInfo` each time the rule is called, before it
//! even looks at the rule's cached value: its name (a `String`), the names of a function's
//! parameters (one `String` each), and two per-definition vectors. That is three to six heap
//! allocations and frees per call, and the built-in library makes about 36 rule calls per
//! workload (BENCHMARKS.md, twelfth session). The VM itself reads none of the names, and reads
//! the two vectors with a fallback that an empty vector gives just as well, so the program runs
//! the same without them. [`slim`] empties exactly those parts and nothing else.
//!
//! Should a later regorus read one of them while running, the equivalence tests of the VM
//! against the interpreter (`operator/tests/engine.rs`, the scan golden files) show it at once.

use std::sync::Arc;

use regorus::rvm::program::Program;

/// Empty what the VM clones on every rule call but never reads: rule names, function parameter
/// names, `else` markers when no body is an `else`, destructuring entries when no definition has
/// one. A program that is shared already (another `Arc` to it exists) is left as it is.
pub fn slim(program: &mut Arc<Program>) {
    let Some(program) = Arc::get_mut(program) else {
        return;
    };
    for info in &mut program.rule_infos {
        info.name = String::new();
        if let Some(function) = &mut info.function_info {
            // The parameter count stays in `num_params`, which is what the VM checks.
            function.param_names = Vec::new();
        }
        // The VM reads "is the next body an else" as `else_bodies[def][body + 1]`, false when
        // missing: with no `else` anywhere in the rule an empty vector answers the same.
        if info.else_bodies.iter().flatten().all(|is_else| !is_else) {
            info.else_bodies = Vec::new();
        }
        // Read as `destructuring_blocks[def]`, no block when missing.
        if info.destructuring_blocks.iter().all(Option::is_none) {
            info.destructuring_blocks = Vec::new();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use regorus::languages::rego::compiler::Compiler;

    fn lowered(rego: &str, entry: &str) -> Arc<Program> {
        let mut engine = regorus::Engine::new();
        engine.add_policy("t.rego".into(), rego.into()).expect("test policy compiles");
        let compiled = engine.compile_with_entrypoint(&entry.into()).expect("entry point compiles");
        Compiler::compile_from_policy(&compiled, &[entry]).expect("lowers to the VM")
    }

    fn run(program: Arc<Program>, input: &str) -> regorus::Value {
        let mut vm = regorus::rvm::vm::RegoVM::new();
        vm.load_program(program);
        vm.set_input(regorus::Value::from_json_str(input).expect("test input is JSON"));
        vm.execute().expect("test program runs")
    }

    const POLICY: &str = r#"
package t
import rego.v1

label(kind, name) := sprintf("%s/%s", [kind, name])

size(x) := "big" if x > 10
else := "small" if x > 1
else := "tiny"

pair([a, b]) := a + b

out := {
  "labels": [label(k, n) | some k, n in input.objects],
  "sizes": [size(x) | some x in input.numbers],
  "pair": pair(input.pair),
}
"#;

    #[test]
    fn a_slimmed_program_gives_the_same_results() {
        let mut program = lowered(POLICY, "data.t.out");
        let before: Vec<_> = program.rule_infos.iter().map(|r| r.name.clone()).collect();
        assert!(before.iter().any(|n| !n.is_empty()), "rule names to strip");
        // A rule with else bodies keeps its markers: dropping them would change `size`.
        assert!(program.rule_infos.iter().any(|r| r.else_bodies.iter().flatten().any(|e| *e)));

        let input = r#"{"objects": {"Pod": "a", "Service": "b"}, "numbers": [0, 5, 50], "pair": [2, 3]}"#;
        let expected = run(program.clone(), input);
        slim(&mut program);
        assert!(program.rule_infos.iter().all(|r| r.name.is_empty()));
        assert!(
            program
                .rule_infos
                .iter()
                .filter_map(|r| r.function_info.as_ref())
                .all(|f| f.param_names.is_empty() && f.num_params > 0)
        );
        assert!(program.rule_infos.iter().any(|r| !r.else_bodies.is_empty()), "else markers kept where used");
        assert_eq!(run(program, input), expected);
        assert_eq!(expected.to_string(), r#"{"labels":["Pod/a","Service/b"],"pair":5,"sizes":["tiny","small","big"]}"#);
    }

    #[test]
    fn a_shared_program_is_left_alone() {
        let mut program = lowered(POLICY, "data.t.out");
        let other = program.clone();
        slim(&mut program);
        assert!(program.rule_infos.iter().any(|r| !r.name.is_empty()));
        drop(other);
    }
}
