//! What the bench binaries that drive the real server share: the job module they upload
//! (output = input reversed, no `verify` export), its native twin, and reading JSON answers.

use anyhow::{Context as _, bail};

/// The job module: output = input reversed, and deliberately no `cyclepool_verify`.
pub const REVERSE_NO_VERIFY_WAT: &str = r#"
(module
  (memory (export "memory") 1 16)
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
)
"#;

/// What the module computes, natively: the input reversed.
pub fn correct_output(input: &[u8]) -> Vec<u8> {
    input.iter().rev().copied().collect()
}

/// Reads a successful JSON answer, or fails with the status and body.
pub async fn json_answer<T: serde::de::DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> anyhow::Result<T> {
    let status = response.status();
    let text = response
        .text()
        .await
        .with_context(|| format!("{what}: reading the answer"))?;
    if !status.is_success() {
        bail!("{what}: {status}: {text}");
    }
    serde_json::from_str(&text).with_context(|| format!("{what}: parsing the answer {text}"))
}
