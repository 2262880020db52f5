//! The server's own sandbox for job modules: runs them natively in the `wasmi` interpreter.
//!
//! The server executes a job's code itself to check results (`cyclepool_verify`) and, where
//! needed, to compute a reference output. Job code is hostile until proven otherwise, so every
//! call here is bounded: fuel bounds the instructions executed, a store limiter bounds linear
//! memory and tables, no host functions are linked (a module with imports cannot even be
//! instantiated), and every pointer the module hands back is bounds-checked before it is read.
//! Each call gets a fresh instance, so no state leaks from one unit to the next.

use cyclepool_shared::abi::{
    ALLOC_EXPORT, MEMORY_EXPORT, OUTPUT_LEN_EXPORT, OUTPUT_PTR_EXPORT, RUN_EXPORT, VERIFY_EXPORT,
    VERIFY_INVALID, VERIFY_UNDECIDED, VERIFY_VALID,
};
use wasmi::errors::{ErrorKind, InstantiationError, MemoryError, TableError};
use wasmi::{
    CompilationMode, Config, Engine, Instance, Linker, Memory, Module, Store, StoreLimits,
    StoreLimitsBuilder, TrapCode, TypedFunc, WasmParams,
};

use crate::module_check::MAX_TABLE_ELEMENTS;

/// Fuel for one `run` call (instantiation, allocation, the run and reading the output).
///
/// Roughly one unit per simple instruction: ten billion is minutes of interpretation, enough
/// for a real work unit yet a hard stop for an endless loop.
pub const DEFAULT_RUN_FUEL: u64 = 10_000_000_000;
/// Fuel for one `verify` call. Verification is meant to be far cheaper than computing, and the
/// server runs it inline for every result, so it gets a thousandth of the run budget.
pub const DEFAULT_VERIFY_FUEL: u64 = DEFAULT_RUN_FUEL / 1_000;
/// Linear memory one instance may use: the 64 MiB that the ABI's `MAX_MEMORY_PAGES` allows.
pub const DEFAULT_MAX_MEMORY_BYTES: usize = 64 * 1024 * 1024;
/// The largest output the sandbox reads back, the protocol's own limit.
pub const DEFAULT_MAX_OUTPUT_BYTES: usize = cyclepool_shared::protocol::MAX_OUTPUT_BYTES;
/// Tables one instance may have. Compilers emit one; the upload check does not count them, so
/// this leaves room while still bounding what `table.grow` can allocate outside linear memory.
const MAX_TABLES: usize = 16;

/// How far one sandboxed call may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SandboxLimits {
    /// Fuel for each call to [`Sandbox::run`] or [`Sandbox::verify`].
    pub fuel: u64,
    /// The most linear memory an instance may have; growing beyond it traps.
    pub max_memory_bytes: usize,
    /// The largest output [`Sandbox::run`] accepts, and the largest output [`Sandbox::verify`]
    /// will copy in.
    pub max_output_bytes: usize,
}

impl SandboxLimits {
    /// Limits for computing outputs.
    pub const fn for_run() -> Self {
        Self {
            fuel: DEFAULT_RUN_FUEL,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_output_bytes: DEFAULT_MAX_OUTPUT_BYTES,
        }
    }

    /// Limits for verifying outputs: the same memory and output bounds, far less fuel.
    pub const fn for_verify() -> Self {
        Self {
            fuel: DEFAULT_VERIFY_FUEL,
            ..Self::for_run()
        }
    }
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self::for_run()
    }
}

/// Why a sandboxed call failed. None of these is the server's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    #[error("the job ran out of fuel")]
    OutOfFuel,
    #[error("the job tried to grow its memory beyond the sandbox limit")]
    MemoryLimit,
    #[error("the job trapped: {0}")]
    Trap(String),
    #[error("the job returned status {0}")]
    JobError(i32),
    #[error("the job's output is unusable: {0}")]
    BadOutput(String),
    #[error("the module does not export `{VERIFY_EXPORT}`")]
    NoVerify,
    /// `cyclepool_verify` said this output cannot be checked cheaply; replicate instead.
    #[error("the job cannot verify this output cheaply")]
    Undecided,
    #[error("the module cannot be compiled: {0}")]
    Compile(String),
}

/// A module compiled for a [`Sandbox`]; cheap to clone and to run many times.
#[derive(Debug, Clone)]
pub struct CompiledModule {
    module: Module,
}

/// Runs job modules under fixed [`SandboxLimits`].
#[derive(Debug)]
pub struct Sandbox {
    engine: Engine,
    limits: SandboxLimits,
}

impl Sandbox {
    /// A sandbox with its own interpreter engine.
    pub fn new(limits: SandboxLimits) -> Self {
        let mut config = Config::default();
        config
            .consume_fuel(true)
            // The ABI forbids start functions; refusing them here keeps the sandbox from
            // running code before the fuel budget is set up for a call.
            .allow_start_fn(false)
            // Translate everything up front: the module is compiled once and run many times,
            // and lazy translation would bill compilation to whichever unit came first.
            .compilation_mode(CompilationMode::Eager);
        Self {
            engine: Engine::new(&config),
            limits,
        }
    }

    /// The limits every call runs under.
    pub fn limits(&self) -> SandboxLimits {
        self.limits
    }

    /// Validates and compiles a module.
    ///
    /// # Errors
    ///
    /// [`SandboxError::Compile`] if the module is invalid or uses a feature the sandbox lacks.
    pub fn compile(&self, bytes: &[u8]) -> Result<CompiledModule, SandboxError> {
        Module::new(&self.engine, bytes)
            .map(|module| CompiledModule { module })
            .map_err(|error| SandboxError::Compile(error.to_string()))
    }

    /// Runs the job on `input` in a fresh instance and returns its output.
    ///
    /// # Errors
    ///
    /// Any [`SandboxError`] but `NoVerify`: the job trapped, ran out of fuel or memory,
    /// returned a non-zero status, or pointed at an output it does not have.
    pub fn run(&self, module: &CompiledModule, input: &[u8]) -> Result<Vec<u8>, SandboxError> {
        let mut call = Call::new(self, module)?;
        let (input_ptr, input_len) = call.copy_in(input)?;
        let status = call.call::<(i32, i32)>(RUN_EXPORT, (input_ptr, input_len))?;
        if status != 0 {
            return Err(SandboxError::JobError(status));
        }
        let ptr = call.call::<()>(OUTPUT_PTR_EXPORT, ())?;
        let len = call.call::<()>(OUTPUT_LEN_EXPORT, ())?;
        call.copy_out(ptr, len)
    }

    /// Asks the job whether `output` is right for `input`, in a fresh instance.
    ///
    /// # Errors
    ///
    /// [`SandboxError::NoVerify`] if the module has no verify export;
    /// [`SandboxError::Undecided`] if it returns `VERIFY_UNDECIDED`;
    /// [`SandboxError::JobError`] if it returns any other unknown value; any other
    /// [`SandboxError`] if it fails the way [`Sandbox::run`] can.
    pub fn verify(
        &self,
        module: &CompiledModule,
        input: &[u8],
        output: &[u8],
    ) -> Result<bool, SandboxError> {
        if module.module.get_export(VERIFY_EXPORT).is_none() {
            return Err(SandboxError::NoVerify);
        }
        if output.len() > self.limits.max_output_bytes {
            return Err(SandboxError::BadOutput(format!(
                "the output to verify is {} bytes, more than the limit of {}",
                output.len(),
                self.limits.max_output_bytes
            )));
        }
        let mut call = Call::new(self, module)?;
        let (input_ptr, input_len) = call.copy_in(input)?;
        let (output_ptr, output_len) = call.copy_in(output)?;
        match call.call::<(i32, i32, i32, i32)>(
            VERIFY_EXPORT,
            (input_ptr, input_len, output_ptr, output_len),
        )? {
            VERIFY_VALID => Ok(true),
            VERIFY_INVALID => Ok(false),
            VERIFY_UNDECIDED => Err(SandboxError::Undecided),
            other => Err(SandboxError::JobError(other)),
        }
    }
}

/// One fresh instance with its store, fuel and limits, for a single run or verify.
struct Call {
    store: Store<StoreLimits>,
    instance: Instance,
    memory: Memory,
    max_output_bytes: usize,
}

impl Call {
    fn new(sandbox: &Sandbox, module: &CompiledModule) -> Result<Self, SandboxError> {
        // The store uses the module's own engine: wasmi requires the two to match, and this
        // way a module compiled by another `Sandbox` cannot make that a panic.
        let engine = module.module.engine();
        let limits = StoreLimitsBuilder::new()
            .memory_size(sandbox.limits.max_memory_bytes)
            // The constant is small, so the conversion cannot fail on any real target.
            .table_elements(usize::try_from(MAX_TABLE_ELEMENTS).unwrap_or(usize::MAX))
            .instances(1)
            .memories(1)
            .tables(MAX_TABLES)
            // Refusing growth traps rather than returning -1, so a memory bomb ends at once
            // with a clear error instead of limping on.
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(engine, limits);
        store.limiter(|limits| limits);
        store.set_fuel(sandbox.limits.fuel).map_err(classify)?;
        // No host functions: a module with any import fails to instantiate.
        let linker = Linker::<StoreLimits>::new(engine);
        let instance = linker
            .instantiate_and_start(&mut store, &module.module)
            .map_err(classify)?;
        let memory = instance.get_memory(&store, MEMORY_EXPORT).ok_or_else(|| {
            SandboxError::Trap(format!("no memory exported as `{MEMORY_EXPORT}`"))
        })?;
        Ok(Self {
            store,
            instance,
            memory,
            max_output_bytes: sandbox.limits.max_output_bytes,
        })
    }

    /// Calls the export `name`, which must take `Params` and return one i32.
    fn call<Params: WasmParams>(
        &mut self,
        name: &str,
        params: Params,
    ) -> Result<i32, SandboxError> {
        let func: TypedFunc<Params, i32> = self
            .instance
            .get_typed_func(&self.store, name)
            .map_err(|error| SandboxError::Trap(format!("export `{name}`: {error}")))?;
        func.call(&mut self.store, params).map_err(classify)
    }

    /// Allocates room in the instance with `cyclepool_alloc` and copies `bytes` there.
    fn copy_in(&mut self, bytes: &[u8]) -> Result<(i32, i32), SandboxError> {
        let len = i32::try_from(bytes.len()).map_err(|_| {
            SandboxError::Trap(format!("{} bytes do not fit an i32 length", bytes.len()))
        })?;
        let ptr = self.call::<i32>(ALLOC_EXPORT, len)?;
        if ptr == 0 && len != 0 {
            return Err(SandboxError::Trap(format!(
                "`{ALLOC_EXPORT}` returned 0 for {len} bytes"
            )));
        }
        // The ABI's pointers are unsigned 32-bit offsets carried in i32s.
        let start = ptr as u32 as usize;
        self.memory
            .write(&mut self.store, start, bytes)
            .map_err(|_| {
                SandboxError::Trap(format!(
                    "`{ALLOC_EXPORT}` returned {start:#x}, which cannot hold {len} bytes in memory"
                ))
            })?;
        Ok((ptr, len))
    }

    /// Reads the output the module points at, after checking it is in bounds and not too big.
    fn copy_out(&self, ptr: i32, len: i32) -> Result<Vec<u8>, SandboxError> {
        let start = ptr as u32 as usize;
        let len = len as u32 as usize;
        if len > self.max_output_bytes {
            return Err(SandboxError::BadOutput(format!(
                "output is {len} bytes, more than the limit of {}",
                self.max_output_bytes
            )));
        }
        let data = self.memory.data(&self.store);
        start
            .checked_add(len)
            .and_then(|end| data.get(start..end))
            .map(<[u8]>::to_vec)
            .ok_or_else(|| {
                SandboxError::BadOutput(format!(
                    "output of {len} bytes at {start:#x} lies outside the {} bytes of memory",
                    data.len()
                ))
            })
    }
}

/// Turns an interpreter error into the sandbox's own terms.
fn classify(error: wasmi::Error) -> SandboxError {
    match error.as_trap_code() {
        Some(TrapCode::OutOfFuel) => return SandboxError::OutOfFuel,
        Some(TrapCode::GrowthOperationLimited) => return SandboxError::MemoryLimit,
        _ => {}
    }
    match error.kind() {
        // Denied at instantiation: the module's initial memory or table is over the limit.
        ErrorKind::Memory(MemoryError::ResourceLimiterDeniedAllocation)
        | ErrorKind::Table(TableError::ResourceLimiterDeniedAllocation)
        | ErrorKind::Instantiation(
            InstantiationError::FailedToInstantiateMemory(
                MemoryError::ResourceLimiterDeniedAllocation,
            )
            | InstantiationError::FailedToInstantiateTable(
                TableError::ResourceLimiterDeniedAllocation,
            ),
        ) => SandboxError::MemoryLimit,
        _ => SandboxError::Trap(error.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that outputs its input reversed, and verifies that an output is the reverse.
    ///
    /// Memory layout: a bump allocator starting at 1024; the output goes right after the input.
    const REVERSE: &str = r#"
        (module
          (memory (export "memory") 1 16)
          (global $next (mut i32) (i32.const 1024))
          (global $out_ptr (mut i32) (i32.const 0))
          (global $out_len (mut i32) (i32.const 0))
          (func (export "cyclepool_abi_version") (result i32) i32.const 1)
          (func $alloc (export "cyclepool_alloc") (param $len i32) (result i32)
            (local $ptr i32)
            (local.set $ptr (global.get $next))
            (global.set $next (i32.add (global.get $next) (local.get $len)))
            (local.get $ptr))
          (func $reverse (param $src i32) (param $len i32) (param $dst i32)
            (local $i i32)
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
                (i32.store8
                  (i32.sub (i32.add (local.get $dst) (local.get $len))
                           (i32.add (local.get $i) (i32.const 1)))
                  (i32.load8_u (i32.add (local.get $src) (local.get $i))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $next))))
          (func (export "cyclepool_run") (param $ptr i32) (param $len i32) (result i32)
            (global.set $out_ptr (call $alloc (local.get $len)))
            (global.set $out_len (local.get $len))
            (call $reverse (local.get $ptr) (local.get $len) (global.get $out_ptr))
            i32.const 0)
          (func (export "cyclepool_output_ptr") (result i32) (global.get $out_ptr))
          (func (export "cyclepool_output_len") (result i32) (global.get $out_len))
          (func (export "cyclepool_verify")
            (param $in i32) (param $in_len i32) (param $out i32) (param $out_len i32)
            (result i32)
            (local $i i32)
            (if (i32.ne (local.get $in_len) (local.get $out_len)) (then (return (i32.const 0))))
            (block $done
              (loop $next
                (br_if $done (i32.ge_u (local.get $i) (local.get $in_len)))
                (if (i32.ne
                      (i32.load8_u (i32.add (local.get $in) (local.get $i)))
                      (i32.load8_u
                        (i32.sub (i32.add (local.get $out) (local.get $out_len))
                                 (i32.add (local.get $i) (i32.const 1)))))
                  (then (return (i32.const 0))))
                (local.set $i (i32.add (local.get $i) (i32.const 1)))
                (br $next)))
            i32.const 1))
    "#;

    /// A module whose `cyclepool_run` body is `run` and whose output is `out_ptr`/`out_len`;
    /// `extra` adds fields.
    fn job(run: &str, out_ptr: &str, out_len: &str, extra: &str) -> Vec<u8> {
        wat::parse_str(format!(
            r#"(module
              (memory (export "memory") 1 16)
              (func (export "cyclepool_abi_version") (result i32) i32.const 1)
              (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 1024)
              (func (export "cyclepool_run") (param i32 i32) (result i32) {run})
              (func (export "cyclepool_output_ptr") (result i32) {out_ptr})
              (func (export "cyclepool_output_len") (result i32) {out_len})
              {extra})"#
        ))
        .unwrap()
    }

    fn small_limits() -> SandboxLimits {
        SandboxLimits {
            fuel: 1_000_000,
            max_memory_bytes: 4 * 65536,
            max_output_bytes: 1024,
        }
    }

    fn run(limits: SandboxLimits, bytes: &[u8], input: &[u8]) -> Result<Vec<u8>, SandboxError> {
        let sandbox = Sandbox::new(limits);
        let module = sandbox.compile(bytes).unwrap();
        sandbox.run(&module, input)
    }

    #[test]
    fn reverse_job_runs_and_verifies() {
        let sandbox = Sandbox::new(SandboxLimits::for_run());
        let module = sandbox.compile(&wat::parse_str(REVERSE).unwrap()).unwrap();
        // Several runs of one compiled module: each gets a fresh instance, so the bump
        // allocator starts over and the outputs do not depend on earlier calls.
        for input in [&b"cyclepool"[..], b"", b"a", &[0, 1, 2, 255]] {
            let output = sandbox.run(&module, input).unwrap();
            let expected: Vec<u8> = input.iter().rev().copied().collect();
            assert_eq!(output, expected);
            assert!(sandbox.verify(&module, input, &output).unwrap());
        }
        let verifier = Sandbox::new(SandboxLimits::for_verify());
        assert!(verifier.verify(&module, b"abc", b"cba").unwrap());
        assert!(!verifier.verify(&module, b"abc", b"abc").unwrap());
        assert!(!verifier.verify(&module, b"abc", b"cb").unwrap());
    }

    #[test]
    fn verify_limits_use_far_less_fuel_than_run() {
        assert!(SandboxLimits::for_verify().fuel * 100 <= SandboxLimits::for_run().fuel);
        assert_eq!(SandboxLimits::default(), SandboxLimits::for_run());
    }

    #[test]
    fn endless_loop_runs_out_of_fuel() {
        let bytes = job(
            "(loop $l (br $l)) i32.const 0",
            "i32.const 0",
            "i32.const 0",
            "",
        );
        let started = std::time::Instant::now();
        assert_eq!(
            run(small_limits(), &bytes, b"x"),
            Err(SandboxError::OutOfFuel)
        );
        // A generous bound: this asserts the budget is what stops the loop, not a timeout.
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }

    #[test]
    fn endless_verify_runs_out_of_fuel() {
        let bytes = job(
            "i32.const 0",
            "i32.const 0",
            "i32.const 0",
            r#"(func (export "cyclepool_verify") (param i32 i32 i32 i32) (result i32)
                (loop $l (br $l)) i32.const 1)"#,
        );
        let sandbox = Sandbox::new(small_limits());
        let module = sandbox.compile(&bytes).unwrap();
        assert_eq!(
            sandbox.verify(&module, b"in", b"out"),
            Err(SandboxError::OutOfFuel)
        );
    }

    #[test]
    fn memory_bomb_hits_the_memory_limit() {
        // Grows one page at a time until growth fails; the declared maximum (16 pages) is
        // above the sandbox limit (4 pages), so the sandbox limit is what stops it.
        let bomb = r#"
            (block $stop
              (loop $grow
                (br_if $stop (i32.eq (memory.grow (i32.const 1)) (i32.const -1)))
                (br $grow)))
            unreachable"#;
        let bytes = job(bomb, "i32.const 0", "i32.const 0", "");
        let limits = small_limits();
        let sandbox = Sandbox::new(limits);
        let module = sandbox.compile(&bytes).unwrap();
        assert_eq!(sandbox.run(&module, b""), Err(SandboxError::MemoryLimit));

        // With more fuel than pages, the same module under a generous limit is stopped by its
        // own declared maximum instead: grow returns -1 and the job traps, still cleanly.
        let roomy = Sandbox::new(SandboxLimits {
            max_memory_bytes: 64 * 65536,
            ..limits
        });
        let module = roomy.compile(&bytes).unwrap();
        assert!(matches!(
            roomy.run(&module, b""),
            Err(SandboxError::Trap(_))
        ));
    }

    #[test]
    fn memory_never_exceeds_the_limit() {
        // The job reports its memory size in pages as its status.
        let bytes = job(
            "(drop (memory.grow (i32.const 3))) (drop (memory.grow (i32.const 1))) memory.size",
            "i32.const 0",
            "i32.const 0",
            "",
        );
        // 1 initial + 3 = 4 pages is allowed; the fifth page is refused with a trap.
        assert_eq!(
            run(small_limits(), &bytes, b""),
            Err(SandboxError::MemoryLimit)
        );
        let four = job(
            "(drop (memory.grow (i32.const 3))) memory.size",
            "i32.const 0",
            "i32.const 0",
            "",
        );
        assert_eq!(
            run(small_limits(), &four, b""),
            Err(SandboxError::JobError(4))
        );
    }

    #[test]
    fn initial_memory_over_the_limit_is_refused() {
        let bytes = wat::parse_str(
            r#"(module
              (memory (export "memory") 8 16)
              (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 0)
              (func (export "cyclepool_run") (param i32 i32) (result i32) i32.const 0))"#,
        )
        .unwrap();
        assert_eq!(
            run(small_limits(), &bytes, b""),
            Err(SandboxError::MemoryLimit)
        );
    }

    #[test]
    fn unreachable_traps() {
        let bytes = job("unreachable", "i32.const 0", "i32.const 0", "");
        let err = run(small_limits(), &bytes, b"x").unwrap_err();
        assert!(
            matches!(&err, SandboxError::Trap(message) if message.contains("unreachable")),
            "{err:?}"
        );
    }

    #[test]
    fn deep_recursion_traps_cleanly() {
        let bytes = job(
            "(call $down) i32.const 0",
            "i32.const 0",
            "i32.const 0",
            "(func $down (call $down))",
        );
        let limits = SandboxLimits {
            fuel: 100_000_000,
            ..small_limits()
        };
        assert!(matches!(
            run(limits, &bytes, b""),
            Err(SandboxError::Trap(_))
        ));
    }

    #[test]
    fn nonzero_status_is_a_job_error() {
        let bytes = job("i32.const 7", "i32.const 0", "i32.const 0", "");
        assert_eq!(
            run(small_limits(), &bytes, b"x"),
            Err(SandboxError::JobError(7))
        );
    }

    #[test]
    fn output_outside_memory_is_bad_output() {
        // One page is 65536 bytes: an output ending one byte past it is rejected...
        let past_end = job("i32.const 0", "i32.const 65000", "i32.const 537", "");
        let err = run(small_limits(), &past_end, b"").unwrap_err();
        assert!(matches!(err, SandboxError::BadOutput(_)), "{err:?}");
        // ...one ending exactly at it is fine...
        let at_end = job("i32.const 0", "i32.const 65000", "i32.const 536", "");
        assert_eq!(run(small_limits(), &at_end, b"").unwrap().len(), 536);
        // ...and a pointer that would wrap around is rejected too.
        let wraps = job("i32.const 0", "i32.const -1", "i32.const 2", "");
        assert!(matches!(
            run(small_limits(), &wraps, b""),
            Err(SandboxError::BadOutput(_))
        ));
    }

    #[test]
    fn output_over_the_limit_is_bad_output() {
        let big = job("i32.const 0", "i32.const 0", "i32.const 1025", "");
        let err = run(small_limits(), &big, b"").unwrap_err();
        assert!(
            matches!(&err, SandboxError::BadOutput(m) if m.contains("1025")),
            "{err:?}"
        );
        // A negative length is a huge unsigned one, not a short output.
        let negative = job("i32.const 0", "i32.const 0", "i32.const -1", "");
        assert!(matches!(
            run(small_limits(), &negative, b""),
            Err(SandboxError::BadOutput(_))
        ));
        let at_limit = job("i32.const 0", "i32.const 0", "i32.const 1024", "");
        assert_eq!(run(small_limits(), &at_limit, b"").unwrap().len(), 1024);
    }

    #[test]
    fn alloc_returning_null_or_out_of_bounds_is_an_error() {
        let null = wat::parse_str(
            r#"(module
              (memory (export "memory") 1 16)
              (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 0)
              (func (export "cyclepool_run") (param i32 i32) (result i32) i32.const 0))"#,
        )
        .unwrap();
        assert!(matches!(
            run(small_limits(), &null, b"x"),
            Err(SandboxError::Trap(_))
        ));
        let outside = job("i32.const 0", "i32.const 0", "i32.const 0", "");
        // The test job's alloc always returns 1024; an input longer than the page traps.
        let input = vec![0; 65536];
        assert!(matches!(
            run(small_limits(), &outside, &input),
            Err(SandboxError::Trap(_))
        ));
    }

    fn verify_returning(value: i32) -> Result<bool, SandboxError> {
        let bytes = job(
            "i32.const 0",
            "i32.const 0",
            "i32.const 0",
            &format!(
                r#"(func (export "cyclepool_verify") (param i32 i32 i32 i32) (result i32)
                    i32.const {value})"#
            ),
        );
        let sandbox = Sandbox::new(small_limits());
        let module = sandbox.compile(&bytes).unwrap();
        sandbox.verify(&module, b"in", b"out")
    }

    #[test]
    fn verify_returning_two_is_undecided() {
        assert_eq!(verify_returning(2), Err(SandboxError::Undecided));
        assert_eq!(VERIFY_UNDECIDED, 2);
    }

    #[test]
    fn verify_returning_an_unknown_value_is_a_job_error() {
        assert_eq!(verify_returning(3), Err(SandboxError::JobError(3)));
        assert_eq!(verify_returning(-1), Err(SandboxError::JobError(-1)));
        assert_eq!(verify_returning(1), Ok(true));
        assert_eq!(verify_returning(0), Ok(false));
    }

    #[test]
    fn verify_without_export_is_no_verify() {
        let bytes = job("i32.const 0", "i32.const 0", "i32.const 0", "");
        let sandbox = Sandbox::new(small_limits());
        let module = sandbox.compile(&bytes).unwrap();
        assert_eq!(
            sandbox.verify(&module, b"in", b"out"),
            Err(SandboxError::NoVerify)
        );
    }

    #[test]
    fn verify_refuses_an_output_over_the_limit() {
        let sandbox = Sandbox::new(small_limits());
        let module = sandbox.compile(&wat::parse_str(REVERSE).unwrap()).unwrap();
        let output = vec![0; 1025];
        assert!(matches!(
            sandbox.verify(&module, b"", &output),
            Err(SandboxError::BadOutput(_))
        ));
    }

    #[test]
    fn hostile_modules_fail_to_compile_or_instantiate_cleanly() {
        let sandbox = Sandbox::new(small_limits());
        assert!(matches!(
            sandbox.compile(b""),
            Err(SandboxError::Compile(_))
        ));
        assert!(matches!(
            sandbox.compile(b"\0asm\x01\0\0\0\xff"),
            Err(SandboxError::Compile(_))
        ));
        let start = job(
            "i32.const 0",
            "i32.const 0",
            "i32.const 0",
            "(func $s) (start $s)",
        );
        assert!(matches!(
            sandbox.compile(&start),
            Err(SandboxError::Compile(_))
        ));

        let import = wat::parse_str(
            r#"(module
              (import "env" "memcpy" (func (param i32 i32 i32) (result i32)))
              (memory (export "memory") 1 16)
              (func (export "cyclepool_alloc") (param i32) (result i32) i32.const 1024)
              (func (export "cyclepool_run") (param i32 i32) (result i32) i32.const 0))"#,
        )
        .unwrap();
        let module = sandbox.compile(&import).unwrap();
        let err = sandbox.run(&module, b"").unwrap_err();
        assert!(
            matches!(&err, SandboxError::Trap(m) if m.contains("memcpy")),
            "{err:?}"
        );

        let out_of_bounds_data = job(
            "i32.const 0",
            "i32.const 0",
            "i32.const 0",
            r#"(data (i32.const 1048576) "boom")"#,
        );
        let module = sandbox.compile(&out_of_bounds_data).unwrap();
        assert!(matches!(
            sandbox.run(&module, b""),
            Err(SandboxError::Trap(_))
        ));

        let no_run = wat::parse_str(r#"(module (memory (export "memory") 1 1))"#).unwrap();
        let module = sandbox.compile(&no_run).unwrap();
        assert!(matches!(
            sandbox.run(&module, b""),
            Err(SandboxError::Trap(_))
        ));

        let huge_table = job(
            "i32.const 0",
            "i32.const 0",
            "i32.const 0",
            "(table 1000000 funcref)",
        );
        let module = sandbox.compile(&huge_table).unwrap();
        assert_eq!(sandbox.run(&module, b""), Err(SandboxError::MemoryLimit));
    }

    #[test]
    fn a_module_compiled_elsewhere_still_runs() {
        let one = Sandbox::new(small_limits());
        let other = Sandbox::new(small_limits());
        let module = one.compile(&wat::parse_str(REVERSE).unwrap()).unwrap();
        assert_eq!(other.run(&module, b"ab").unwrap(), b"ba");
    }
}
