//! Checks WebAssembly modules against the job ABI (`docs/JOB-ABI.md`): the hand-written
//! example in that document, broken variants of it, and, on request, the built example jobs.
//!
//! The built jobs are checked by an ignored test, because building them is a separate step:
//!
//! ```text
//! cargo build --target wasm32-unknown-unknown --release \
//!     -p cyclepool-job-factor -p cyclepool-job-mandelbrot -p cyclepool-job-keysearch
//! cargo test -p cyclepool-job-sdk --test module_check -- --ignored --nocapture
//! ```

use std::collections::HashMap;
use std::path::PathBuf;

use wasmparser::{CompositeInnerType, ExternalKind, FuncType, Parser, Payload, ValType, Validator};

/// What a conforming module looks like, for the report.
#[derive(Debug)]
struct Conforming {
    max_pages: u64,
    has_verify: bool,
    other_exports: Vec<String>,
}

const REQUIRED: [(&str, usize, usize); 5] = [
    ("cyclepool_abi_version", 0, 1),
    ("cyclepool_alloc", 1, 1),
    ("cyclepool_run", 2, 1),
    ("cyclepool_output_ptr", 0, 1),
    ("cyclepool_output_len", 0, 1),
];
const VERIFY: (&str, usize, usize) = ("cyclepool_verify", 4, 1);
const MAX_PAGES: u64 = 1024;

/// Checks `bytes` against the job ABI; the error says what is wrong.
fn check_module(bytes: &[u8]) -> Result<Conforming, String> {
    Validator::new()
        .validate_all(bytes)
        .map_err(|e| format!("invalid module: {e}"))?;

    let mut types: Vec<Option<FuncType>> = Vec::new();
    let mut func_types: Vec<u32> = Vec::new();
    let mut memories = Vec::new();
    let mut exports: HashMap<String, (ExternalKind, u32)> = HashMap::new();
    for payload in Parser::new(0).parse_all(bytes) {
        match payload.map_err(|e| e.to_string())? {
            Payload::ImportSection(imports) => {
                // The first import is reason enough to reject the module.
                if let Some(import) = imports.into_imports().next() {
                    let import = import.map_err(|e| e.to_string())?;
                    return Err(format!("imports {}::{}", import.module, import.name));
                }
            }
            Payload::StartSection { .. } => return Err("has a start function".into()),
            Payload::TypeSection(section) => {
                for group in section {
                    for ty in group.map_err(|e| e.to_string())?.into_types() {
                        types.push(match ty.composite_type.inner {
                            CompositeInnerType::Func(f) => Some(f),
                            _ => None,
                        });
                    }
                }
            }
            Payload::FunctionSection(section) => {
                for ty in section {
                    func_types.push(ty.map_err(|e| e.to_string())?);
                }
            }
            Payload::MemorySection(section) => {
                for memory in section {
                    memories.push(memory.map_err(|e| e.to_string())?);
                }
            }
            Payload::ExportSection(section) => {
                for export in section {
                    let export = export.map_err(|e| e.to_string())?;
                    exports.insert(export.name.to_owned(), (export.kind, export.index));
                }
            }
            _ => {}
        }
    }

    let [memory] = memories.as_slice() else {
        return Err(format!("defines {} memories, not 1", memories.len()));
    };
    if memory.shared || memory.memory64 {
        return Err("memory is shared or 64-bit".into());
    }
    let max_pages = memory.maximum.ok_or("memory declares no maximum")?;
    if max_pages > MAX_PAGES {
        return Err(format!(
            "memory maximum is {max_pages} pages, more than {MAX_PAGES}"
        ));
    }
    if exports.get("memory") != Some(&(ExternalKind::Memory, 0)) {
        return Err("does not export its memory as `memory`".into());
    }

    let check_func = |(name, params, results): (&str, usize, usize)| -> Result<bool, String> {
        let Some(&(kind, index)) = exports.get(name) else {
            return Ok(false);
        };
        if kind != ExternalKind::Func {
            return Err(format!("`{name}` is not a function"));
        }
        // There are no imported functions, so function indices start at the module's own.
        let ty = func_types
            .get(index as usize)
            .and_then(|&t| types.get(t as usize))
            .and_then(Option::as_ref)
            .ok_or(format!("`{name}` has no function type"))?;
        let all_i32 = |v: &[ValType]| v.iter().all(|t| *t == ValType::I32);
        if ty.params().len() != params
            || ty.results().len() != results
            || !all_i32(ty.params())
            || !all_i32(ty.results())
        {
            return Err(format!(
                "`{name}` has type {ty}, not {params} i32 -> {results} i32"
            ));
        }
        Ok(true)
    };
    for required in REQUIRED {
        if !check_func(required)? {
            return Err(format!("does not export `{}`", required.0));
        }
    }
    let has_verify = check_func(VERIFY)?;

    let mut other_exports: Vec<String> = exports
        .keys()
        .filter(|name| {
            *name != "memory" && *name != VERIFY.0 && !REQUIRED.iter().any(|r| r.0 == *name)
        })
        .cloned()
        .collect();
    other_exports.sort();
    Ok(Conforming {
        max_pages,
        has_verify,
        other_exports,
    })
}

/// The WAT example in `docs/JOB-ABI.md`.
fn documented_example() -> String {
    let doc = include_str!("../../../docs/JOB-ABI.md");
    let start = doc
        .find("```wat\n")
        .expect("the ABI document has a wat example")
        + "```wat\n".len();
    let end = start + doc[start..].find("```").expect("the wat example is closed");
    doc[start..end].to_owned()
}

fn module(wat: &str) -> Vec<u8> {
    wat::parse_str(wat).expect("the test module parses")
}

#[test]
fn the_documented_example_conforms() {
    let report = check_module(&module(&documented_example())).unwrap();
    assert_eq!(report.max_pages, 16);
    assert!(report.has_verify);
    assert!(
        report.other_exports.is_empty(),
        "{:?}",
        report.other_exports
    );
}

#[test]
fn an_import_is_rejected() {
    let wat = documented_example().replacen(
        "(module",
        "(module (import \"env\" \"now\" (func (result i32)))",
        1,
    );
    assert_eq!(check_module(&module(&wat)).unwrap_err(), "imports env::now");
}

#[test]
fn a_start_function_is_rejected() {
    let wat = documented_example().replacen("(module", "(module (func $init) (start $init)", 1);
    assert_eq!(
        check_module(&module(&wat)).unwrap_err(),
        "has a start function"
    );
}

#[test]
fn memory_without_or_above_the_maximum_is_rejected() {
    let example = documented_example();
    let unbounded = example.replacen(
        "(memory (export \"memory\") 1 16)",
        "(memory (export \"memory\") 1)",
        1,
    );
    assert_eq!(
        check_module(&module(&unbounded)).unwrap_err(),
        "memory declares no maximum"
    );
    let large = example.replacen(
        "(memory (export \"memory\") 1 16)",
        "(memory (export \"memory\") 1 1025)",
        1,
    );
    assert!(
        check_module(&module(&large))
            .unwrap_err()
            .contains("1025 pages")
    );
    let hidden = example.replacen("(memory (export \"memory\") 1 16)", "(memory 1 16)", 1);
    assert_eq!(
        check_module(&module(&hidden)).unwrap_err(),
        "does not export its memory as `memory`"
    );
}

#[test]
fn missing_or_mistyped_exports_are_rejected() {
    let example = documented_example();
    let no_run = example.replacen("(export \"cyclepool_run\")", "", 1);
    assert_eq!(
        check_module(&module(&no_run)).unwrap_err(),
        "does not export `cyclepool_run`"
    );
    let wrong_type = example.replacen(
        "(func (export \"cyclepool_output_len\") (result i32)\n    (global.get $out_len))",
        "(func (export \"cyclepool_output_len\") (result i64)\n    (i64.const 0))",
        1,
    );
    assert!(
        check_module(&module(&wrong_type))
            .unwrap_err()
            .contains("`cyclepool_output_len` has type")
    );
    let no_verify = example.replacen("(export \"cyclepool_verify\")", "", 1);
    assert!(!check_module(&module(&no_verify)).unwrap().has_verify);
}

/// The directory that holds the built job modules.
fn wasm_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("wasm32-unknown-unknown/release")
}

#[test]
#[ignore = "needs the jobs built for wasm32 first; see the module documentation"]
fn the_built_example_jobs_conform() {
    for (name, has_verify) in [
        ("cyclepool_job_factor", true),
        ("cyclepool_job_mandelbrot", false),
        ("cyclepool_job_keysearch", true),
    ] {
        let path = wasm_dir().join(format!("{name}.wasm"));
        let bytes =
            std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
        let report = check_module(&bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        println!("{name}.wasm: {} bytes, {report:?}", bytes.len());
        assert_eq!(report.max_pages, MAX_PAGES, "{name}");
        assert_eq!(report.has_verify, has_verify, "{name}");
    }
}
