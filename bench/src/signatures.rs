//! What a result's ed25519 signature costs on this machine: signing it (the volunteer, here
//! the load generator) and verifying it strictly (the portal, once per result), with the same
//! crate and features as the server and the generator, and the message the protocol signs.
//! Sets the floor under the distributor's throughput: at `r` results a second the two cost
//! `r × (sign + verify)` of CPU time on the machine that runs both.
//!
//! ```sh
//! cargo run --release -p cyclepool-bench --bin signatures -- [--count N]
//! ```

use std::hint::black_box;
use std::time::Instant;

use cyclepool_shared::signing::{Purpose, SecretKey, result_message, verify};
use cyclepool_shared::{LeaseId, Nonce, Sha256Digest};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut count = 20_000usize;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--count" => count = args.next().unwrap_or_default().parse()?,
            other => anyhow::bail!("unknown argument {other} (usage: signatures [--count N])"),
        }
    }
    let key = SecretKey::from_seed(&[7; 32]);
    let public = key.public_key();
    let messages: Vec<[u8; 64]> = (0..count)
        .map(|i| {
            let mut lease = [0u8; 16];
            lease[..8].copy_from_slice(&(i as u64).to_be_bytes());
            let output = Sha256Digest::of(&lease);
            result_message(
                &LeaseId::from_bytes(lease),
                &Nonce::from_bytes([3; 16]),
                &output,
            )
        })
        .collect();

    let started = Instant::now();
    let signatures: Vec<_> = messages
        .iter()
        .map(|message| key.sign(Purpose::Result, message))
        .collect();
    let sign_us = started.elapsed().as_secs_f64() * 1e6 / count as f64;

    let started = Instant::now();
    let mut valid = 0usize;
    for (message, signature) in messages.iter().zip(&signatures) {
        valid +=
            usize::from(verify(&public, Purpose::Result, black_box(message), signature).is_ok());
    }
    let verify_us = started.elapsed().as_secs_f64() * 1e6 / count as f64;
    anyhow::ensure!(
        valid == count,
        "{} of {count} signatures did not verify",
        count - valid
    );

    println!(
        "{count} result signatures: sign {sign_us:.1} µs, verify (strict) {verify_us:.1} µs each; \
         at 20,000 results a second that is {:.2} cores signing and {:.2} verifying",
        sign_us * 20_000.0 / 1e6,
        verify_us * 20_000.0 / 1e6
    );
    Ok(())
}
