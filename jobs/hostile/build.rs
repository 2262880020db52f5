//! Caps the module's linear memory at 64 MiB so the host can bound it; see docs/JOB-ABI.md.

fn main() {
    // rustc's wasm linker exports memory without a maximum unless told one.
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        println!("cargo:rustc-link-arg-cdylib=--max-memory=67108864");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
