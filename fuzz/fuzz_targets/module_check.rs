//! Fuzzes the upload check of job modules (`server/src/module_check.rs`) against an independent
//! reading of the job ABI from wasmparser's validated type information.
//!
//! The check must never panic, must be deterministic, must say why in one line of plain text (no
//! control characters, whatever names the module holds), and must accept exactly the modules
//! the oracle below calls conforming, reporting the same facts about them.

#![no_main]

use cyclepool_fuzz::module_check::{MAX_TABLE_ELEMENTS, check_module};
use cyclepool_shared::Sha256Digest;
use cyclepool_shared::abi::{
    ALLOC_EXPORT, MAX_MEMORY_PAGES, MAX_MODULE_BYTES, MEMORY_EXPORT, OUTPUT_LEN_EXPORT,
    OUTPUT_PTR_EXPORT, RUN_EXPORT, VERIFY_EXPORT, VERSION_EXPORT,
};
use libfuzzer_sys::fuzz_target;
use wasmparser::types::EntityType;
use wasmparser::{Parser, Payload, ValType, Validator, WasmFeatures};

fuzz_target!(|bytes: &[u8]| {
    let checked = check_module(bytes);
    assert_eq!(
        check_module(bytes),
        checked,
        "the check is not deterministic"
    );
    let expected = conforming(bytes);
    match (&checked, expected) {
        (Ok(info), Some(expected)) => {
            assert_eq!(info.sha256, Sha256Digest::of(bytes));
            assert_eq!(info.bytes, bytes.len());
            assert_eq!(info.has_verify, expected.has_verify);
            assert_eq!(info.memory_max_pages, expected.memory_max_pages);
        }
        (Err(err), None) => {
            // The message goes back to the distributor inside a JSON error body, as one line
            // of plain text whatever names the module holds.
            let message = err.to_string();
            assert!(!message.is_empty(), "an empty message");
            assert!(
                !message
                    .chars()
                    .any(|c| c.is_control() || (c.is_whitespace() && c != ' ')),
                "{message:?}"
            );
        }
        (Ok(info), None) => panic!("accepted a module the ABI refuses: {info:?}"),
        (Err(err), Some(_)) => panic!("refused a conforming module: {err}"),
    }
});

/// What the oracle learns from a conforming module.
struct Conforming {
    has_verify: bool,
    memory_max_pages: u64,
}

/// The ABI (`cyclepool_shared::abi`, `docs/JOB-ABI.md`) read off wasmparser's validator output
/// rather than a scan of the sections: a valid Wasm 2.0 module without SIMD, imports or a start
/// function, with one bounded 32-bit unshared memory exported as `memory`, small tables, and the
/// required function exports with their all-`i32` signatures.
fn conforming(bytes: &[u8]) -> Option<Conforming> {
    if bytes.len() > MAX_MODULE_BYTES {
        return None;
    }
    let features = WasmFeatures::WASM2.difference(WasmFeatures::SIMD);
    let types = Validator::new_with_features(features)
        .validate_all(bytes)
        .ok()?;
    let types = types.as_ref();
    if types.core_imports()?.next().is_some() {
        return None;
    }
    let has_start = Parser::new(0)
        .parse_all(bytes)
        .any(|payload| matches!(payload, Ok(Payload::StartSection { .. })));
    if has_start || types.memory_count() != 1 {
        return None;
    }
    let memory = types.memory_at(0);
    let memory_max_pages = memory.maximum?;
    if memory.memory64 || memory.shared || memory_max_pages > MAX_MEMORY_PAGES {
        return None;
    }
    if (0..types.table_count()).any(|index| types.table_at(index).initial > MAX_TABLE_ELEMENTS) {
        return None;
    }
    let exports: Vec<(&str, EntityType)> = types.core_exports()?.collect();
    let export = |name: &str| {
        exports
            .iter()
            .find(|(export, _)| *export == name)
            .map(|(_, ty)| *ty)
    };
    if !matches!(export(MEMORY_EXPORT), Some(EntityType::Memory(_))) {
        return None;
    }
    // Whether `name` is a function taking `params` and returning `results` values, all i32;
    // `None` when it is not exported at all.
    let function = |name: &str, params: usize, results: usize| {
        let ty = export(name)?;
        let EntityType::Func(id) = ty else {
            return Some(false);
        };
        let func = types[id].unwrap_func();
        let all_i32 = |list: &[ValType], count| {
            list.len() == count && list.iter().all(|ty| *ty == ValType::I32)
        };
        Some(all_i32(func.params(), params) && all_i32(func.results(), results))
    };
    let required = [
        (VERSION_EXPORT, 0, 1),
        (ALLOC_EXPORT, 1, 1),
        (RUN_EXPORT, 2, 1),
        (OUTPUT_PTR_EXPORT, 0, 1),
        (OUTPUT_LEN_EXPORT, 0, 1),
    ];
    if required
        .iter()
        .any(|&(name, params, results)| function(name, params, results) != Some(true))
    {
        return None;
    }
    let has_verify = match function(VERIFY_EXPORT, 4, 1) {
        None => false,
        Some(true) => true,
        Some(false) => return None,
    };
    Some(Conforming {
        has_verify,
        memory_max_pages,
    })
}
