//! Replays the fuzz corpus: every input under `fuzz/regressions/<target>/` — the interesting
//! inputs the cargo-fuzz runs kept (minimised with `cargo fuzz cmin`) and any input that once
//! found a bug — goes through the same harness the fuzz targets use, so `cargo test` holds
//! every later change to the properties they checked: no panic, no 5xx, JSON replies.

#[path = "../fuzz/harness.rs"]
mod harness;

use std::path::Path;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/regressions")
        .join(target);
    let mut inputs: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|error| panic!("{}: {error}", dir.display()))
        .map(|entry| {
            let path = entry.expect("entry").path();
            let data = std::fs::read(&path).expect("read input");
            (path.display().to_string(), data)
        })
        .collect();
    inputs.sort();
    inputs
}

fn replay(target: &str, run: impl Fn(&harness::Harness, &[u8])) {
    let inputs = inputs(target);
    assert!(
        inputs.len() >= 100,
        "{target}: the regression set is there ({} inputs)",
        inputs.len()
    );
    let harness = harness::Harness::new();
    for (name, data) in &inputs {
        eprintln!("{name}");
        run(&harness, data);
    }
}

#[test]
fn json_rpc_inputs_are_answered_without_a_panic_or_a_5xx() {
    replay("json_rpc", harness::Harness::json_rpc);
}

#[test]
fn trpc_inputs_are_answered_without_a_panic_or_a_5xx() {
    replay("trpc", harness::Harness::trpc);
}

#[test]
fn procedure_inputs_fail_only_as_the_callers_mistake() {
    replay("procedure", harness::Harness::procedure);
}
