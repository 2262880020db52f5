//! The load generator's report for people: a Markdown table row, or for an overload run one
//! row per phase, each phase's second-by-second figures, and the recovery verdict.

use serde_json::{Value, json};

/// Milliseconds as `p50 / p99`.
fn pair(report: &Value, key: &str) -> String {
    let number = |suffix: &str| {
        report[format!("{key}_{suffix}_ms")]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    let (p50, p99) = (number("p50"), number("p99"));
    if p50.is_nan() {
        "–".to_owned()
    } else {
        format!("{p50:.1} / {p99:.1}")
    }
}

fn number(report: &Value, key: &str) -> f64 {
    report[key].as_f64().unwrap_or(f64::NAN)
}

pub fn print_table(report: &Value) {
    println!(
        "| volunteers | addresses | max_units | units/s (durable) | validated/s | \
         lease p50 / p99 (ms) | submit p50 / p99 (ms) | exchange p50 / p99 (ms) | 503 / 429 | \
         server CPU | generator CPU | server peak RSS (MiB) | writes per flush |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    let writes = number(report, "durable_writes");
    let flushes = number(report, "flushes");
    println!(
        "| {} | {} | {} | {:.0} | {:.0} | {} | {} | {} | {} / {} | {:.0} % | {:.0} % | {:.0} | \
         {:.1} |",
        report["volunteers"],
        report["addresses"],
        report["max_units"],
        number(report, "units_per_s"),
        number(report, "validated_per_s"),
        pair(report, "lease"),
        pair(report, "submit"),
        pair(report, "exchange"),
        report["shed_503"],
        report["limited_429"],
        number(report, "server_cpu_pct"),
        number(report, "generator_cpu_pct"),
        number(report, "server_peak_rss_run_mib"),
        if flushes > 0.0 { writes / flushes } else { 0.0 },
    );
    print_footer(report);
}

pub fn print_overload(report: &Value) {
    let empty = Vec::new();
    let phases = report["phases"].as_array().unwrap_or(&empty);
    println!(
        "| phase | load | seconds | offered units/s | served units/s (median second) | 503 | 503 answer p50 / \
         p99 (ms) | 429 | dropped by generator | lease p50 / p99 (ms) | submit p50 / p99 (ms) | \
         server CPU | generator CPU | server peak RSS (MiB) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for phase in phases {
        let offered = phase["offered_units_per_s"].as_f64().map_or_else(
            || "closed loop".to_owned(),
            |offered| format!("{offered:.0}"),
        );
        println!(
            "| {} | {} | {:.1} | {} | {:.0} ({:.0}) | {} | {} | {} | {} | {} | {} | {:.0} % | {:.0} % | {:.0} |",
            phase["phase"].as_str().unwrap_or(""),
            phase["workload"].as_str().unwrap_or(""),
            number(phase, "seconds"),
            offered,
            number(phase, "units_per_s"),
            number(phase, "median_units_per_s"),
            phase["shed_503"],
            pair(phase, "shed"),
            phase["limited_429"],
            phase.get("dropped_by_generator").unwrap_or(&json!(0)),
            pair(phase, "lease"),
            pair(phase, "submit"),
            number(phase, "server_cpu_pct"),
            number(phase, "generator_cpu_pct"),
            number(phase, "server_peak_rss_mib"),
        );
    }
    for phase in phases {
        let seconds = phase["timeline"].as_array().unwrap_or(&empty);
        let column = |key: &str| {
            seconds
                .iter()
                .map(|second| format!("{:.0}", second[key].as_f64().unwrap_or(f64::NAN)))
                .collect::<Vec<_>>()
                .join(" ")
        };
        println!(
            "phase {} each second: units/s {}; 503s {}; 429s {}; server CPU % {}; server RSS MiB {}; connections {}",
            phase["phase"].as_str().unwrap_or(""),
            column("units_per_s"),
            column("shed_503"),
            column("limited_429"),
            column("server_cpu_pct"),
            column("server_rss_mib"),
            column("server_connections"),
        );
        println!(
            "  {} requests ({:.0}/s), {} server errors (5xx other than 503), {} transport \
             errors, {} refused, {} empty leases, {} duplicates; generator timer lag p50 / p99 \
             {} ms; {:.0} units per server CPU \
             second; server RSS {:.0} → {:.0} MiB; \
             {} distinct client addresses seen by the server over up to {} connections, {} \
             accept-queue overflows{}",
            phase["requests"],
            number(phase, "requests_per_s"),
            phase["server_errors"],
            phase["transport_errors"],
            phase["refused"],
            phase["empty_leases"],
            phase["duplicates"],
            pair(phase, "generator_lag"),
            number(phase, "units_per_server_cpu_s"),
            number(phase, "server_rss_start_mib"),
            number(phase, "server_rss_end_mib"),
            phase["peer_addresses"],
            phase["server_connections_max"],
            phase["listen_overflows"],
            phase
                .get("cycles")
                .map_or_else(String::new, |cycles| format!(
                    "; {cycles} cycles due, {} turned away at the lease, {:.1} s to drain; \
                     waits for a connection p50 / p99 {} ms",
                    phase["turned_away"],
                    number(phase, "drain_s"),
                    pair(phase, "connection_wait"),
                )),
        );
    }
    let recovery = &report["recovery"];
    println!(
        "recovered: {} (phase 3 at {:.0} % of phase 1's units/s, {}; \
         {} 503s after its first second; per server CPU second, {:.0} % of phase 1's units)",
        if recovery["recovered"].as_bool() == Some(true) {
            "yes"
        } else {
            "NO"
        },
        100.0 * number(recovery, "share_of_capacity"),
        recovery["back_at_80_pct_after_s"].as_f64().map_or_else(
            || "never at 80 %".to_owned(),
            |at| format!("at 80 % in its second {at:.0}")
        ),
        recovery["shed_503_after_first_second"],
        100.0 * number(recovery, "share_of_units_per_server_cpu_s"),
    );
    print_footer(report);
}

fn print_footer(report: &Value) {
    println!(
        "job of {} units created in {:.3} s; warm-ups {}; server RSS {:.0} MiB before the job, \
         {:.0} MiB after it (peak {:.0}); {} addresses; server flags {}; {} accepted, {} \
         validated, {} lost",
        report["units_in_job"],
        number(report, "job_creation_s"),
        report["warm_ups"]
            .as_array()
            .map(|warm_ups| {
                warm_ups
                    .iter()
                    .map(|warm_up| {
                        format!(
                            "{} connections in {:.1} s before phase {}",
                            warm_up["connections"],
                            number(warm_up, "seconds"),
                            warm_up["before"].as_str().unwrap_or(""),
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        number(report, "server_rss_before_job_mib"),
        number(report, "server_rss_after_job_mib"),
        number(report, "server_peak_rss_after_job_mib"),
        report["addresses"],
        report["server_args"],
        report["accepted"],
        report["validated"],
        report["lost"],
    );
    if report.get("phases").is_none() {
        println!(
            "{} empty leases, {} refused, {} server errors, {} transport errors; {} distinct \
             client addresses seen by the server over up to {} connections, {} accept-queue \
             overflows; generator timer lag p50 / p99 {} ms",
            report["empty_leases"],
            report["refused"],
            report["server_errors"],
            report["transport_errors"],
            report["peer_addresses"],
            report["server_connections_max"],
            report["listen_overflows"],
            pair(report, "generator_lag"),
        );
    }
}
