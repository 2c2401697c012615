//! Fuzz target: see `Harness::json_rpc` in `fuzz/harness.rs`.
#![no_main]

#[path = "../harness.rs"]
#[allow(dead_code)] // each target uses one entry point of the harness
mod harness;

use std::sync::LazyLock;

static HARNESS: LazyLock<harness::Harness> = LazyLock::new(harness::Harness::new);

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    HARNESS.json_rpc(data);
});
