//! The upload check for job modules: is this WebAssembly module a conforming Cyclepool job?
//!
//! [`check_module`] runs when a distributor uploads code, before anything is stored. It fully
//! validates the module and then enforces the job ABI from [`cyclepool_shared::abi`]: no
//! imports, no start function, exactly one bounded 32-bit memory exported as `memory`, and the
//! required exports with their exact signatures. Each broken rule has its own [`ModuleError`]
//! variant whose message says precisely what is wrong, because it goes back to the distributor.

use std::fmt;

use cyclepool_shared::Sha256Digest;
use cyclepool_shared::abi::{
    ALLOC_EXPORT, MAX_MEMORY_PAGES, MAX_MODULE_BYTES, MEMORY_EXPORT, OUTPUT_LEN_EXPORT,
    OUTPUT_PTR_EXPORT, RUN_EXPORT, VERIFY_EXPORT, VERSION_EXPORT,
};
use wasmparser::{
    CompositeInnerType, Encoding, ExternalKind, FuncType, MemoryType, Parser, Payload, ValType,
    Validator, WasmFeatures,
};

/// The most elements any table may declare initially; the server's sandbox refuses to grow
/// one beyond this too. Compilers emit one table for indirect calls with an element per
/// address-taken function, so real modules stay far below it.
pub const MAX_TABLE_ELEMENTS: u64 = 1 << 16;

/// What the upload check learned about an accepted module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleInfo {
    /// The SHA-256 digest of the module's bytes.
    pub sha256: Sha256Digest,
    /// The module's size in bytes.
    pub bytes: usize,
    /// Whether the module exports the optional `cyclepool_verify`.
    pub has_verify: bool,
    /// The declared maximum of the module's memory, in 64 KiB pages.
    pub memory_max_pages: u64,
}

/// Why a module is not an acceptable job module. The messages are shown to the distributor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("module is {size} bytes, more than the limit of {limit} bytes")]
    TooLarge { size: usize, limit: usize },
    #[error("not a valid WebAssembly module: {0}")]
    Invalid(String),
    #[error("module imports `{module}.{field}`; job modules must import nothing")]
    HasImport { module: String, field: String },
    #[error("module has a start function; job modules must not run code at instantiation")]
    HasStart,
    #[error("module defines no memory; it must define one and export it as `{MEMORY_EXPORT}`")]
    NoMemory,
    #[error("module defines {0} memories; job modules must have exactly one")]
    TooManyMemories(usize),
    #[error("module's memory is a 64-bit memory; job modules must use a 32-bit memory")]
    Memory64,
    #[error("module's memory is shared; job modules must not use shared memory")]
    SharedMemory,
    #[error(
        "module's memory declares no maximum; it must declare one of at most {MAX_MEMORY_PAGES} pages"
    )]
    UnboundedMemory,
    #[error(
        "module's memory maximum is {pages} pages of 64 KiB, more than the limit of {limit} pages"
    )]
    MemoryTooLarge { pages: u64, limit: u64 },
    #[error("module declares a table of {elements} elements, more than the limit of {limit}")]
    TableTooLarge { elements: u64, limit: u64 },
    #[error("module does not export its memory as `{MEMORY_EXPORT}`")]
    MemoryNotExported,
    #[error("module does not export the required function `{0}`")]
    MissingExport(&'static str),
    #[error("export `{name}` is a {kind}, not a function")]
    NotAFunction {
        name: &'static str,
        kind: &'static str,
    },
    #[error("export `{name}` has type {found}, expected {expected}")]
    WrongSignature {
        name: &'static str,
        expected: String,
        found: String,
    },
}

/// A function export the ABI names, with its signature: parameter and result counts, all i32.
struct AbiFunction {
    name: &'static str,
    params: usize,
    results: usize,
}

/// The exports every job module must have, with the signatures documented in
/// [`cyclepool_shared::abi`].
const REQUIRED_FUNCTIONS: [AbiFunction; 5] = [
    AbiFunction {
        name: VERSION_EXPORT,
        params: 0,
        results: 1,
    },
    AbiFunction {
        name: ALLOC_EXPORT,
        params: 1,
        results: 1,
    },
    AbiFunction {
        name: RUN_EXPORT,
        params: 2,
        results: 1,
    },
    AbiFunction {
        name: OUTPUT_PTR_EXPORT,
        params: 0,
        results: 1,
    },
    AbiFunction {
        name: OUTPUT_LEN_EXPORT,
        params: 0,
        results: 1,
    },
];

/// The optional verify export.
const VERIFY_FUNCTION: AbiFunction = AbiFunction {
    name: VERIFY_EXPORT,
    params: 4,
    results: 1,
};

/// The WebAssembly features a job module may use: the 2.0 standard without SIMD.
///
/// Every current browser supports Wasm 2.0, and the server's `wasmi` sandbox is built without
/// SIMD, so anything outside this set could be accepted here and then fail to run somewhere.
fn allowed_features() -> WasmFeatures {
    WasmFeatures::WASM2.difference(WasmFeatures::SIMD)
}

/// Checks that `bytes` is a valid WebAssembly module that meets the job ABI.
///
/// # Errors
///
/// The first rule the module breaks, as a [`ModuleError`] whose message names it.
pub fn check_module(bytes: &[u8]) -> Result<ModuleInfo, ModuleError> {
    if bytes.len() > MAX_MODULE_BYTES {
        return Err(ModuleError::TooLarge {
            size: bytes.len(),
            limit: MAX_MODULE_BYTES,
        });
    }
    // The structural rules come before full validation so that, for example, a memory64 or
    // shared memory gets its own precise message rather than the validator's "feature not
    // enabled".
    let scan = Scan::of(bytes)?;
    if let Some((module, field)) = scan.first_import {
        return Err(ModuleError::HasImport { module, field });
    }
    if scan.has_start {
        return Err(ModuleError::HasStart);
    }
    let memory = match scan.memories.as_slice() {
        [] => return Err(ModuleError::NoMemory),
        [memory] => *memory,
        more => return Err(ModuleError::TooManyMemories(more.len())),
    };
    let memory_max_pages = check_memory(&memory)?;
    if let Some(&elements) = scan.table_sizes.iter().find(|&&n| n > MAX_TABLE_ELEMENTS) {
        return Err(ModuleError::TableTooLarge {
            elements,
            limit: MAX_TABLE_ELEMENTS,
        });
    }

    Validator::new_with_features(allowed_features())
        .validate_all(bytes)
        .map_err(invalid)?;

    match scan.export(MEMORY_EXPORT) {
        Some((ExternalKind::Memory, 0)) => {}
        _ => return Err(ModuleError::MemoryNotExported),
    }
    for function in &REQUIRED_FUNCTIONS {
        if !scan.check_function(function)? {
            return Err(ModuleError::MissingExport(function.name));
        }
    }
    let has_verify = scan.check_function(&VERIFY_FUNCTION)?;

    Ok(ModuleInfo {
        sha256: Sha256Digest::of(bytes),
        bytes: bytes.len(),
        has_verify,
        memory_max_pages,
    })
}

/// A parse or validation error as one line: some of wasmparser's messages embed pretty-printed
/// byte lists, and this text ends up in a JSON error for the distributor.
fn invalid(error: wasmparser::BinaryReaderError) -> ModuleError {
    let text = error.to_string();
    ModuleError::Invalid(printable(
        &text.split_whitespace().collect::<Vec<_>>().join(" "),
    ))
}

/// Text from the module (a name, or a validator message quoting one) as it may appear in a
/// message: control characters and line breaks escaped (`\n`, `\u{1b}`), since a module's
/// names are arbitrary text and the message must stay one line of plain text.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || (c.is_whitespace() && c != ' ') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// Enforces the memory rules and returns the declared maximum in pages.
fn check_memory(memory: &MemoryType) -> Result<u64, ModuleError> {
    if memory.memory64 {
        return Err(ModuleError::Memory64);
    }
    if memory.shared {
        return Err(ModuleError::SharedMemory);
    }
    let pages = memory.maximum.ok_or(ModuleError::UnboundedMemory)?;
    if pages > MAX_MEMORY_PAGES {
        return Err(ModuleError::MemoryTooLarge {
            pages,
            limit: MAX_MEMORY_PAGES,
        });
    }
    Ok(pages)
}

/// What one pass over the module's sections found.
#[derive(Default)]
struct Scan {
    /// Each type in the type section, in index order; `None` for a type that is not a function.
    types: Vec<Option<FuncType>>,
    /// The type index of each function defined in the module, in index order.
    functions: Vec<u32>,
    memories: Vec<MemoryType>,
    /// The initial size of each table.
    table_sizes: Vec<u64>,
    exports: Vec<(String, ExternalKind, u32)>,
    first_import: Option<(String, String)>,
    has_start: bool,
}

impl Scan {
    /// Reads the sections the rules need; any parse error means the module is invalid.
    fn of(bytes: &[u8]) -> Result<Self, ModuleError> {
        let mut scan = Self::default();
        let mut seen_version = false;
        for payload in Parser::new(0).parse_all(bytes) {
            match payload.map_err(invalid)? {
                Payload::Version { encoding, .. } => {
                    seen_version = true;
                    if encoding == Encoding::Component {
                        return Err(ModuleError::Invalid(
                            "this is a component, not a core module".to_owned(),
                        ));
                    }
                }
                Payload::TypeSection(reader) => {
                    for group in reader {
                        for ty in group.map_err(invalid)?.into_types() {
                            scan.types.push(match ty.composite_type.inner {
                                CompositeInnerType::Func(func) => Some(func),
                                _ => None,
                            });
                        }
                    }
                }
                Payload::ImportSection(reader) => {
                    if let Some(import) = reader.into_imports().next() {
                        let import = import.map_err(invalid)?;
                        scan.first_import =
                            Some((printable(import.module), printable(import.name)));
                    }
                }
                Payload::FunctionSection(reader) => {
                    for ty in reader {
                        scan.functions.push(ty.map_err(invalid)?);
                    }
                }
                Payload::TableSection(reader) => {
                    for table in reader {
                        scan.table_sizes.push(table.map_err(invalid)?.ty.initial);
                    }
                }
                Payload::MemorySection(reader) => {
                    for memory in reader {
                        scan.memories.push(memory.map_err(invalid)?);
                    }
                }
                Payload::ExportSection(reader) => {
                    for export in reader {
                        let export = export.map_err(invalid)?;
                        scan.exports
                            .push((export.name.to_owned(), export.kind, export.index));
                    }
                }
                Payload::StartSection { .. } => scan.has_start = true,
                _ => {}
            }
        }
        // The parser accepts an empty input as an empty stream; it is not a module.
        if !seen_version {
            return Err(ModuleError::Invalid("the file is empty".to_owned()));
        }
        Ok(scan)
    }

    fn export(&self, name: &str) -> Option<(ExternalKind, u32)> {
        self.exports
            .iter()
            .find(|(export, _, _)| export == name)
            .map(|&(_, kind, index)| (kind, index))
    }

    /// Checks an ABI function export if present: `Ok(false)` if absent, `Ok(true)` if right.
    ///
    /// Only called after validation and only on modules without imports, so function indices
    /// are indices into `functions`; lookups still use `get` so nothing here can panic.
    fn check_function(&self, function: &AbiFunction) -> Result<bool, ModuleError> {
        let Some((kind, index)) = self.export(function.name) else {
            return Ok(false);
        };
        if kind != ExternalKind::Func {
            return Err(ModuleError::NotAFunction {
                name: function.name,
                kind: kind_name(kind),
            });
        }
        let found = usize::try_from(index)
            .ok()
            .and_then(|index| self.functions.get(index))
            .and_then(|&ty| usize::try_from(ty).ok())
            .and_then(|ty| self.types.get(ty))
            .and_then(Option::as_ref);
        let all_i32 = |types: &[ValType], count: usize| {
            types.len() == count && types.iter().all(|ty| *ty == ValType::I32)
        };
        match found {
            Some(ty)
                if all_i32(ty.params(), function.params)
                    && all_i32(ty.results(), function.results) =>
            {
                Ok(true)
            }
            _ => Err(ModuleError::WrongSignature {
                name: function.name,
                expected: Signature::of_i32s(function.params, function.results).to_string(),
                found: found.map_or_else(
                    || "an unknown type".to_owned(),
                    |ty| Signature::of(ty).to_string(),
                ),
            }),
        }
    }
}

fn kind_name(kind: ExternalKind) -> &'static str {
    match kind {
        ExternalKind::Func | ExternalKind::FuncExact => "function",
        ExternalKind::Table => "table",
        ExternalKind::Memory => "memory",
        ExternalKind::Global => "global",
        ExternalKind::Tag => "tag",
    }
}

/// A function signature written the way `shared::abi` documents them: `(i32, i32) -> i32`.
struct Signature {
    params: Vec<ValType>,
    results: Vec<ValType>,
}

impl Signature {
    fn of(ty: &FuncType) -> Self {
        Self {
            params: ty.params().to_vec(),
            results: ty.results().to_vec(),
        }
    }

    fn of_i32s(params: usize, results: usize) -> Self {
        Self {
            params: vec![ValType::I32; params],
            results: vec![ValType::I32; results],
        }
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fn list(f: &mut fmt::Formatter<'_>, types: &[ValType]) -> fmt::Result {
            write!(f, "(")?;
            for (i, ty) in types.iter().enumerate() {
                if i > 0 {
                    write!(f, ", ")?;
                }
                write!(f, "{ty}")?;
            }
            write!(f, ")")
        }
        list(f, &self.params)?;
        write!(f, " -> ")?;
        match self.results.as_slice() {
            [one] => write!(f, "{one}"),
            more => list(f, more),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The ABI exports, as WAT, for building test modules around.
    const ABI_FUNCS: &str = r#"
        (func (export "cyclepool_abi_version") (result i32) i32.const 1)
        (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 1024)
        (func (export "cyclepool_run") (param i32 i32) (result i32) i32.const 0)
        (func (export "cyclepool_output_ptr") (result i32) i32.const 1024)
        (func (export "cyclepool_output_len") (result i32) i32.const 0)
    "#;
    const MEMORY: &str = r#"(memory (export "memory") 1 16)"#;

    fn module(body: &str) -> Vec<u8> {
        wat::parse_str(format!("(module {body})")).unwrap()
    }

    fn valid() -> Vec<u8> {
        module(&format!("{MEMORY} {ABI_FUNCS}"))
    }

    fn check_err(bytes: &[u8]) -> ModuleError {
        let err = check_module(bytes).unwrap_err();
        // Every message must be something a distributor can read: non-empty, one line.
        let message = err.to_string();
        assert!(
            !message.is_empty() && !message.contains('\n'),
            "{message:?}"
        );
        err
    }

    #[test]
    fn valid_module_passes_with_its_facts() {
        let bytes = valid();
        let info = check_module(&bytes).unwrap();
        assert_eq!(info.sha256, Sha256Digest::of(&bytes));
        assert_eq!(info.bytes, bytes.len());
        assert!(!info.has_verify);
        assert_eq!(info.memory_max_pages, 16);
    }

    #[test]
    fn valid_module_with_verify_and_extra_exports_passes() {
        let bytes = module(&format!(
            r#"{ABI_FUNCS}
            (memory (export "memory") 2 1024)
            (global (export "__heap_base") i32 (i32.const 4096))
            (func (export "cyclepool_verify") (param i32 i32 i32 i32) (result i32) i32.const 1)"#
        ));
        let info = check_module(&bytes).unwrap();
        assert!(info.has_verify);
        assert_eq!(info.memory_max_pages, MAX_MEMORY_PAGES);
    }

    #[test]
    fn too_large_is_rejected_before_parsing() {
        let bytes = vec![0xff; MAX_MODULE_BYTES + 1];
        let err = check_err(&bytes);
        assert_eq!(
            err,
            ModuleError::TooLarge {
                size: MAX_MODULE_BYTES + 1,
                limit: MAX_MODULE_BYTES
            }
        );
        assert!(err.to_string().contains(&MAX_MODULE_BYTES.to_string()));
    }

    #[test]
    fn empty_file_is_invalid() {
        assert!(matches!(check_err(&[]), ModuleError::Invalid(_)));
    }

    #[test]
    fn garbage_is_invalid() {
        // Deterministic pseudo-random bytes (xorshift), plus garbage after a valid header.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut garbage = Vec::with_capacity(4096);
        for _ in 0..4096 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            garbage.push(state.to_le_bytes()[0]);
        }
        assert!(matches!(check_err(&garbage), ModuleError::Invalid(_)));
        let mut after_header = b"\0asm\x01\0\0\0".to_vec();
        after_header.extend_from_slice(&garbage);
        assert!(matches!(check_err(&after_header), ModuleError::Invalid(_)));
    }

    #[test]
    fn every_truncation_of_a_valid_module_is_rejected() {
        let bytes = valid();
        for len in 0..bytes.len() {
            // A prefix may end on a section boundary and so parse, but it then lacks what
            // the rest of the module declared; either way it must be rejected, never panic.
            assert!(
                check_module(&bytes[..len]).is_err(),
                "prefix of {len} bytes accepted"
            );
        }
        let err = check_err(&bytes[..bytes.len() - 3]);
        assert!(matches!(err, ModuleError::Invalid(_)), "{err}");
    }

    #[test]
    fn component_is_invalid() {
        let bytes = wat::parse_str("(component)").unwrap();
        let err = check_err(&bytes);
        assert!(err.to_string().contains("component"), "{err}");
    }

    #[test]
    fn validation_error_text_is_included() {
        // Well-formed sections, but `run` returns nothing where it promises an i32.
        let bytes = module(&format!(
            r#"{MEMORY} (func (export "cyclepool_run") (param i32 i32) (result i32))"#
        ));
        let err = check_err(&bytes);
        let ModuleError::Invalid(text) = &err else {
            panic!("expected Invalid, got {err:?}");
        };
        assert!(text.contains("type mismatch"), "{text}");
    }

    #[test]
    fn simd_is_not_allowed() {
        let bytes = module(&format!(
            r#"{MEMORY} {ABI_FUNCS} (func (result v128) v128.const i64x2 0 0)"#
        ));
        assert!(matches!(check_err(&bytes), ModuleError::Invalid(_)));
    }

    #[test]
    fn huge_table_is_rejected() {
        let bytes = module(&format!("{MEMORY} {ABI_FUNCS} (table 4000000000 funcref)"));
        assert_eq!(
            check_err(&bytes),
            ModuleError::TableTooLarge {
                elements: 4_000_000_000,
                limit: MAX_TABLE_ELEMENTS
            }
        );
        let fine = module(&format!("{MEMORY} {ABI_FUNCS} (table 65536 funcref)"));
        check_module(&fine).unwrap();
    }

    #[test]
    fn huge_data_segment_is_bounded_by_the_module_limit() {
        // A data segment's bytes are in the module, so the size limit bounds it; one that
        // lies outside memory is caught at instantiation (see the sandbox tests).
        let data = "a".repeat(MAX_MODULE_BYTES);
        let bytes = module(&format!(
            r#"{MEMORY} {ABI_FUNCS} (data (i32.const 0) "{data}")"#
        ));
        assert!(matches!(check_err(&bytes), ModuleError::TooLarge { .. }));
    }

    #[test]
    fn import_is_rejected_naming_it() {
        let bytes = module(&format!(
            r#"(import "env" "memcpy" (func (param i32 i32 i32) (result i32)))
            {MEMORY} {ABI_FUNCS}"#
        ));
        let err = check_err(&bytes);
        assert_eq!(
            err,
            ModuleError::HasImport {
                module: "env".to_owned(),
                field: "memcpy".to_owned()
            }
        );
        assert!(err.to_string().contains("env.memcpy"), "{err}");
    }

    #[test]
    fn imported_memory_is_rejected_as_an_import() {
        let bytes = module(&format!(r#"(import "js" "mem" (memory 1 2)) {ABI_FUNCS}"#));
        assert!(check_err(&bytes).to_string().contains("js.mem"));
    }

    #[test]
    fn start_function_is_rejected() {
        let bytes = module(&format!("{MEMORY} {ABI_FUNCS} (func $s) (start $s)"));
        assert_eq!(check_err(&bytes), ModuleError::HasStart);
    }

    #[test]
    fn no_memory_is_rejected() {
        assert_eq!(check_err(&module(ABI_FUNCS)), ModuleError::NoMemory);
    }

    #[test]
    fn two_memories_are_rejected() {
        let bytes = module(&format!("{MEMORY} (memory 1 2) {ABI_FUNCS}"));
        assert_eq!(check_err(&bytes), ModuleError::TooManyMemories(2));
    }

    #[test]
    fn memory64_is_rejected() {
        let bytes = module(&format!(
            r#"(memory (export "memory") i64 1 16) {ABI_FUNCS}"#
        ));
        assert_eq!(check_err(&bytes), ModuleError::Memory64);
    }

    #[test]
    fn shared_memory_is_rejected() {
        let bytes = module(&format!(
            r#"(memory (export "memory") 1 16 shared) {ABI_FUNCS}"#
        ));
        assert_eq!(check_err(&bytes), ModuleError::SharedMemory);
    }

    #[test]
    fn memory_without_maximum_is_rejected() {
        let bytes = module(&format!(r#"(memory (export "memory") 1) {ABI_FUNCS}"#));
        assert_eq!(check_err(&bytes), ModuleError::UnboundedMemory);
    }

    #[test]
    fn memory_maximum_above_limit_is_rejected() {
        let pages = MAX_MEMORY_PAGES + 1;
        let bytes = module(&format!(
            r#"(memory (export "memory") 1 {pages}) {ABI_FUNCS}"#
        ));
        let err = check_err(&bytes);
        assert_eq!(
            err,
            ModuleError::MemoryTooLarge {
                pages,
                limit: MAX_MEMORY_PAGES
            }
        );
        assert!(err.to_string().contains(&pages.to_string()));
    }

    #[test]
    fn unexported_memory_is_rejected() {
        let bytes = module(&format!("(memory 1 16) {ABI_FUNCS}"));
        assert_eq!(check_err(&bytes), ModuleError::MemoryNotExported);
        let renamed = module(&format!(r#"(memory (export "mem") 1 16) {ABI_FUNCS}"#));
        assert_eq!(check_err(&renamed), ModuleError::MemoryNotExported);
    }

    #[test]
    fn memory_export_that_is_a_function_is_rejected() {
        let bytes = module(&format!(
            r#"(memory 1 16) {ABI_FUNCS} (func (export "memory"))"#
        ));
        assert_eq!(check_err(&bytes), ModuleError::MemoryNotExported);
    }

    /// `ABI_FUNCS` with the export `name` removed or replaced by `replacement`.
    fn abi_funcs_with(name: &str, replacement: &str) -> String {
        ABI_FUNCS
            .lines()
            .map(|line| {
                if line.contains(&format!("\"{name}\"")) {
                    replacement.to_owned()
                } else {
                    line.to_owned()
                }
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn each_missing_required_export_is_named() {
        for function in &REQUIRED_FUNCTIONS {
            let bytes = module(&format!("{MEMORY} {}", abi_funcs_with(function.name, "")));
            let err = check_err(&bytes);
            assert_eq!(err, ModuleError::MissingExport(function.name));
            assert!(err.to_string().contains(function.name), "{err}");
        }
    }

    #[test]
    fn each_required_export_that_is_not_a_function_is_rejected() {
        for function in &REQUIRED_FUNCTIONS {
            let global = format!(r#"(global (export "{}") i32 (i32.const 0))"#, function.name);
            let bytes = module(&format!(
                "{MEMORY} {}",
                abi_funcs_with(function.name, &global)
            ));
            assert_eq!(
                check_err(&bytes),
                ModuleError::NotAFunction {
                    name: function.name,
                    kind: "global"
                }
            );
        }
    }

    #[test]
    fn each_required_export_with_wrong_signature_is_rejected() {
        // For each export: a wrong arity, and the right arity with a wrong type.
        let wrong = [
            (VERSION_EXPORT, "(result i64) i64.const 1", "() -> i64"),
            (
                VERSION_EXPORT,
                "(param i32) (result i32) i32.const 1",
                "(i32) -> i32",
            ),
            (ALLOC_EXPORT, "(result i32) i32.const 0", "() -> i32"),
            (
                ALLOC_EXPORT,
                "(param i64) (result i32) i32.const 0",
                "(i64) -> i32",
            ),
            (
                RUN_EXPORT,
                "(param i32) (result i32) i32.const 0",
                "(i32) -> i32",
            ),
            (RUN_EXPORT, "(param i32 i32)", "(i32, i32) -> ()"),
            (
                RUN_EXPORT,
                "(param i32 i32) (result i32 i32) i32.const 0 i32.const 0",
                "(i32, i32) -> (i32, i32)",
            ),
            (OUTPUT_PTR_EXPORT, "(result f32) f32.const 0", "() -> f32"),
            (OUTPUT_LEN_EXPORT, "(result i64) i64.const 0", "() -> i64"),
        ];
        for (name, body, found) in wrong {
            let func = format!(r#"(func (export "{name}") {body})"#);
            let bytes = module(&format!("{MEMORY} {}", abi_funcs_with(name, &func)));
            let err = check_err(&bytes);
            let ModuleError::WrongSignature {
                name: got_name,
                found: got_found,
                ..
            } = &err
            else {
                panic!("expected WrongSignature for {name}, got {err:?}");
            };
            assert_eq!(*got_name, name);
            assert_eq!(got_found, found);
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn wrong_signature_message_shows_both_types() {
        let func = r#"(func (export "cyclepool_run") (param i32) (result i32) i32.const 0)"#;
        let bytes = module(&format!("{MEMORY} {}", abi_funcs_with(RUN_EXPORT, func)));
        assert_eq!(
            check_err(&bytes).to_string(),
            "export `cyclepool_run` has type (i32) -> i32, expected (i32, i32) -> i32"
        );
    }

    #[test]
    fn verify_with_wrong_signature_is_rejected() {
        let bytes = module(&format!(
            r#"{MEMORY} {ABI_FUNCS}
            (func (export "cyclepool_verify") (param i32 i32) (result i32) i32.const 1)"#
        ));
        let err = check_err(&bytes);
        assert!(
            matches!(err, ModuleError::WrongSignature { name, .. } if name == VERIFY_EXPORT),
            "{err:?}"
        );
    }

    #[test]
    fn verify_that_is_not_a_function_is_rejected() {
        let bytes = module(&format!(
            r#"{MEMORY} {ABI_FUNCS} (global (export "cyclepool_verify") i32 (i32.const 1))"#
        ));
        assert_eq!(
            check_err(&bytes),
            ModuleError::NotAFunction {
                name: VERIFY_EXPORT,
                kind: "global"
            }
        );
    }

    /// Found by the `module_check` fuzz target: an import's name was quoted as it was, so a
    /// line break in it broke the message over two lines.
    #[test]
    fn names_in_messages_are_one_line_of_plain_text() {
        let bytes = module(&format!(
            r#"(import "en\n" "\1b[31m\e2\80\a8" (func)) {MEMORY} {ABI_FUNCS}"#
        ));
        let message = check_err(&bytes).to_string();
        assert_eq!(
            message,
            "module imports `en\\n.\\u{1b}[31m\\u{2028}`; job modules must import nothing"
        );
        let duplicate = module(&format!(
            r#"{MEMORY} {ABI_FUNCS} (func (export "a\1bb")) (func (export "a\1bb"))"#
        ));
        let message = check_err(&duplicate).to_string();
        assert!(message.contains("a\\u{1b}b"), "{message}");
        assert!(!message.chars().any(char::is_control), "{message}");
    }

    #[test]
    fn everything_exported_but_importing_memcpy_is_rejected() {
        let bytes = module(&format!(
            r#"(import "env" "memcpy" (func $memcpy (param i32 i32 i32) (result i32)))
            {MEMORY}
            (func (export "cyclepool_abi_version") (result i32) i32.const 1)
            (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 1024)
            (func (export "cyclepool_run") (param i32 i32) (result i32)
                (drop (call $memcpy (i32.const 2048) (local.get 0) (local.get 1)))
                i32.const 0)
            (func (export "cyclepool_output_ptr") (result i32) i32.const 2048)
            (func (export "cyclepool_output_len") (result i32) i32.const 0)
            (func (export "cyclepool_verify") (param i32 i32 i32 i32) (result i32) i32.const 1)"#
        ));
        let err = check_err(&bytes);
        assert!(matches!(err, ModuleError::HasImport { .. }), "{err:?}");
        assert!(err.to_string().contains("`env.memcpy`"), "{err}");
    }
}
