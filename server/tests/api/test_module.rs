//! The job module the tests upload: a hand-written WAT module under the job ABI whose output
//! is its input reversed, and whose `cyclepool_verify` checks exactly that.
//!
//! Shared by the API tests, the crash test and the benches (through `#[path]`), so that no
//! test depends on a built artefact.

/// The module's text up to its `verify` export (and without the closing parenthesis). No
/// imports, no start function, a memory with a maximum, every required export, and a bump
/// allocator that `run` and `verify` reset (as in `docs/JOB-ABI.md`).
const REVERSE_CORE_WAT: &str = r#"
(module
  (memory (export "memory") 1 16)

  ;; The heap starts at 1024; the output is allocated after the input by `run`.
  (global $heap (mut i32) (i32.const 1024))
  (global $out_ptr (mut i32) (i32.const 1024))
  (global $out_len (mut i32) (i32.const 0))

  (func (export "cyclepool_abi_version") (result i32)
    (i32.const 1))

  (func $alloc (export "cyclepool_alloc") (param $len i32) (result i32)
    (local $ptr i32)
    (local $end i32)
    (if (i32.lt_s (local.get $len) (i32.const 0))
      (then (return (i32.const 0))))
    (local.set $ptr (global.get $heap))
    (local.set $end (i32.add (local.get $ptr) (local.get $len)))
    (if (i32.gt_u (local.get $end) (i32.shl (memory.size) (i32.const 16)))
      (then
        (if (i32.eq
              (memory.grow
                (i32.sub
                  (i32.shr_u (i32.add (local.get $end) (i32.const 65535)) (i32.const 16))
                  (memory.size)))
              (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $heap (local.get $end))
    (local.get $ptr))

  (func (export "cyclepool_run") (param $ptr i32) (param $len i32) (result i32)
    (local $out i32)
    (local $i i32)
    (global.set $out_len (i32.const 0))
    (local.set $out (call $alloc (local.get $len)))
    ;; Freed on return, as the ABI says; the output stays readable until the next call.
    (global.set $heap (i32.const 1024))
    (if (i32.eqz (local.get $out))
      (then (return (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
        (i32.store8
          (i32.add (local.get $out) (local.get $i))
          (i32.load8_u
            (i32.add (local.get $ptr)
              (i32.sub (i32.sub (local.get $len) (i32.const 1)) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (global.set $out_ptr (local.get $out))
    (global.set $out_len (local.get $len))
    (i32.const 0))

  (func (export "cyclepool_output_ptr") (result i32)
    (global.get $out_ptr))

  (func (export "cyclepool_output_len") (result i32)
    (global.get $out_len))
"#;

/// The optional `verify` export: the output must be the input reversed.
const VERIFY_WAT: &str = r#"
  (func (export "cyclepool_verify")
    (param $in i32) (param $in_len i32) (param $out i32) (param $out_len i32) (result i32)
    (local $i i32)
    (global.set $heap (i32.const 1024))
    (if (i32.ne (local.get $in_len) (local.get $out_len))
      (then (return (i32.const 0))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $in_len)))
        (if (i32.ne
              (i32.load8_u (i32.add (local.get $out) (local.get $i)))
              (i32.load8_u
                (i32.add (local.get $in)
                  (i32.sub (i32.sub (local.get $in_len) (i32.const 1)) (local.get $i)))))
          (then (return (i32.const 0))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 1))
"#;

/// The module's text, with or without its `verify` export (the sabotage and load benches
/// upload it without, so that only replication and spot checks judge results).
pub fn reverse_wat(with_verify: bool) -> String {
    let verify = if with_verify { VERIFY_WAT } else { "" };
    format!("{REVERSE_CORE_WAT}{verify})\n")
}

/// The module's bytes.
pub fn reverse_module() -> Vec<u8> {
    wat::parse_str(reverse_wat(true)).expect("the test module's WAT is valid")
}

/// What the module computes, done natively: the input reversed.
pub fn expected_output(input: &[u8]) -> Vec<u8> {
    input.iter().rev().copied().collect()
}

/// The 16-byte input of a range unit `[from, to)`, as `Inputs::Range` makes it.
pub fn range_input(from: u64, to: u64) -> Vec<u8> {
    let mut input = from.to_le_bytes().to_vec();
    input.extend_from_slice(&to.to_le_bytes());
    input
}
