//! One phase of a load run: its workload (the closed loop or open-loop arrivals), the
//! server sampled once a second meanwhile, and the phase's figures; and whether the last phase
//! of an overload run recovered to the first one's throughput.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};

use crate::server::{connections, cpu_seconds, listen_overflows, status_mib};
use crate::traffic::{Load, Phase};

/// How long the overload phase's cycles may still submit the results they hold after the
/// phase (arrivals stop at its end).
const SUBMIT_GRACE: Duration = Duration::from_secs(5);

/// The generator measures its own runtime's lag with a timer of this period.
const LAG_PROBE: Duration = Duration::from_millis(10);

/// Phase 3 has recovered if its units per second reach this share of phase 1's.
const RECOVERED_SHARE: f64 = 0.8;

/// The `p`-th percentile of sorted values, in milliseconds.
fn percentile_ms(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    f64::from(sorted[rank.clamp(1, sorted.len()) - 1]) / 1000.0
}

/// Where the server's figures come from.
pub struct Probe {
    pub pid: String,
    pub port: u16,
    pub ticks: f64,
}

/// The tallies and the server's state at one moment of a phase.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at_s: f64,
    accepted: u64,
    shed: u64,
    limited: u64,
    requests: u64,
    server_cpu_s: f64,
    rss_mib: f64,
    connections: usize,
    peers: usize,
}

impl Probe {
    fn sample(&self, phase: &Phase, started: Instant) -> anyhow::Result<Sample> {
        let tally = &phase.tally;
        let (connections, peers) = connections(self.port)?;
        Ok(Sample {
            at_s: started.elapsed().as_secs_f64(),
            accepted: tally.accepted.load(Ordering::Relaxed),
            shed: tally.shed.load(Ordering::Relaxed),
            limited: tally.limited.load(Ordering::Relaxed),
            requests: tally.requests.load(Ordering::Relaxed),
            server_cpu_s: cpu_seconds(&self.pid, self.ticks)?,
            rss_mib: status_mib(&self.pid, "VmRSS")?,
            connections,
            peers,
        })
    }

    /// Resets the server's peak RSS (`VmHWM`) to its current RSS, so that the next reading
    /// is the peak since now (Linux ≥ 4.0); false if the kernel refused.
    fn reset_peak(&self) -> bool {
        std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5").is_ok()
    }
}

/// Samples the phase once a second until `stop` fires, then once more.
async fn sample_phase(
    probe: Arc<Probe>,
    phase: Arc<Phase>,
    started: Instant,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    let mut ticker = tokio::time::interval_at(
        (started + Duration::from_secs(1)).into(),
        Duration::from_secs(1),
    );
    loop {
        let asleep = Instant::now();
        tokio::select! {
            _ = &mut stop => break,
            _ = ticker.tick() => samples.push(probe.sample(&phase, started)?),
            () = tokio::time::sleep(LAG_PROBE) => {
                phase.tally.lag.record_duration(asleep.elapsed().saturating_sub(LAG_PROBE));
            }
        }
    }
    samples.push(probe.sample(&phase, started)?);
    Ok(samples)
}

/// What a phase runs.
#[derive(Debug, Clone, Copy)]
pub enum Workload {
    /// Every volunteer in its closed loop.
    Closed,
    /// Cycles arriving at this rate.
    Open { cycles_per_s: f64, max_cycles: u32 },
}

/// A phase's figures: the JSON report and what the next phases need from it.
pub struct PhaseResult {
    pub report: Value,
    /// The median of the phase's whole seconds: unlike the mean, it does not count the slow
    /// first seconds after a large job's creation, or a moment another process took the CPU.
    pub median_units_per_s: f64,
    pub accepted: u64,
    pub unknown_outcomes: u64,
    samples: Vec<Sample>,
}

/// Runs `workload` for `duration` (an open loop's cycles then drain) and reports on it.
pub async fn run_phase(
    name: &str,
    load: &Arc<Load>,
    probe: &Arc<Probe>,
    workload: Workload,
    duration: Duration,
) -> anyhow::Result<PhaseResult> {
    let peak_reset = probe.reset_peak();
    let rss_start = status_mib(&probe.pid, "VmRSS")?;
    let server_cpu_start = cpu_seconds(&probe.pid, probe.ticks)?;
    let own_cpu_start = cpu_seconds("self", probe.ticks)?;
    let overflows_start = listen_overflows()?;
    let started = Instant::now();
    let slotted = matches!(workload, Workload::Open { .. });
    let phase = Arc::new(Phase::new(Arc::clone(load), started + duration, slotted));
    let (stop, stopped) = tokio::sync::oneshot::channel();
    let sampler = tokio::spawn(sample_phase(
        Arc::clone(probe),
        Arc::clone(&phase),
        started,
        stopped,
    ));
    let mut drain = Duration::ZERO;
    match workload {
        Workload::Closed => {
            let tasks: Vec<_> = (0..load.volunteers.len())
                .map(|index| tokio::spawn(Arc::clone(&phase).volunteer(index)))
                .collect();
            for task in tasks {
                task.await.context("a volunteer task panicked")?;
            }
        }
        Workload::Open {
            cycles_per_s,
            max_cycles,
        } => {
            drain = Arc::clone(&phase)
                .open_loop(cycles_per_s, max_cycles, SUBMIT_GRACE)
                .await;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let _ = stop.send(());
    let samples = sampler.await.context("the sampler panicked")??;
    let server_cpu = cpu_seconds(&probe.pid, probe.ticks)? - server_cpu_start;
    let own_cpu = cpu_seconds("self", probe.ticks)? - own_cpu_start;
    let rss_end = status_mib(&probe.pid, "VmRSS")?;
    let overflows = listen_overflows()? - overflows_start;
    let sampled_peak = samples.iter().map(|s| s.rss_mib).fold(rss_start, f64::max);
    let peak = if peak_reset {
        status_mib(&probe.pid, "VmHWM")?
    } else {
        sampled_peak
    };

    let tally = &phase.tally;
    let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
    let accepted = get(&tally.accepted);
    let units_per_s = accepted as f64 / seconds;
    let lease = tally.lease.sorted();
    let submit = tally.submit.sorted();
    let exchange = tally.exchange.sorted();
    let shed = tally.shed_latency.sorted();
    let limited = tally.limited_latency.sorted();
    let lag = tally.lag.sorted();
    let mut timeline = Vec::new();
    let mut previous = (0.0, 0, 0, 0, server_cpu_start);
    for sample in &samples {
        let span = sample.at_s - previous.0;
        if span < 0.5 {
            // The sample taken as the phase ended, a moment after the last whole second: its
            // rates would say little.
            continue;
        }
        timeline.push(json!({
            "at_s": sample.at_s,
            "units_per_s": (sample.accepted - previous.1) as f64 / span,
            "shed_503": sample.shed - previous.2,
            "limited_429": sample.limited - previous.3,
            "server_cpu_pct": 100.0 * (sample.server_cpu_s - previous.4) / span,
            "server_rss_mib": sample.rss_mib,
            "server_connections": sample.connections,
            "requests": sample.requests,
        }));
        previous = (
            sample.at_s,
            sample.accepted,
            sample.shed,
            sample.limited,
            sample.server_cpu_s,
        );
    }
    let mut rates: Vec<f64> = timeline
        .iter()
        .filter_map(|second| second["units_per_s"].as_f64())
        .collect();
    rates.sort_unstable_by(f64::total_cmp);
    let median_units_per_s = rates.get(rates.len() / 2).copied().unwrap_or(units_per_s);
    let mut report = json!({
        "phase": name,
        "seconds": seconds,
        "accepted": accepted,
        "units_per_s": units_per_s,
        "median_units_per_s": median_units_per_s,
        "duplicates": get(&tally.duplicates),
        "refused": get(&tally.refused),
        "empty_leases": get(&tally.empty_leases),
        "shed_503": get(&tally.shed),
        "limited_429": get(&tally.limited),
        "server_errors": get(&tally.server_errors),
        "transport_errors": get(&tally.transport_errors),
        "unknown_outcomes": get(&tally.unknown_outcomes),
        "requests": get(&tally.requests),
        "requests_per_s": get(&tally.requests) as f64 / seconds,
        "lease_requests": lease.len(),
        "lease_p50_ms": percentile_ms(&lease, 50.0),
        "lease_p99_ms": percentile_ms(&lease, 99.0),
        "submit_p50_ms": percentile_ms(&submit, 50.0),
        "submit_p99_ms": percentile_ms(&submit, 99.0),
        "exchange_requests": exchange.len(),
        "exchange_p50_ms": percentile_ms(&exchange, 50.0),
        "exchange_p99_ms": percentile_ms(&exchange, 99.0),
        "shed_p50_ms": percentile_ms(&shed, 50.0),
        "shed_p99_ms": percentile_ms(&shed, 99.0),
        "limited_p50_ms": percentile_ms(&limited, 50.0),
        "limited_p99_ms": percentile_ms(&limited, 99.0),
        "generator_lag_p50_ms": percentile_ms(&lag, 50.0),
        "generator_lag_p99_ms": percentile_ms(&lag, 99.0),
        "server_cpu_pct": 100.0 * server_cpu / seconds,
        // Throughput per CPU second the server got: tells a server that slowed down from one
        // that was given less CPU (the generator and anything else share the machine).
        "units_per_server_cpu_s": accepted as f64 / server_cpu,
        "generator_cpu_pct": 100.0 * own_cpu / seconds,
        "server_rss_start_mib": rss_start,
        "server_rss_end_mib": rss_end,
        "server_peak_rss_mib": peak,
        "peer_addresses": samples.iter().map(|s| s.peers).max().unwrap_or(0),
        "server_connections_max": samples.iter().map(|s| s.connections).max().unwrap_or(0),
        "listen_overflows": overflows,
        "timeline": timeline,
    });
    match workload {
        Workload::Closed => {
            report["workload"] =
                json!(format!("closed loop, {} volunteers", load.volunteers.len()));
        }
        Workload::Open {
            cycles_per_s,
            max_cycles,
        } => {
            let arrivals = duration.as_secs_f64();
            let units = f64::from(load.max_units);
            let connections = load.connections_per_client * load.clients.len();
            let waits = tally.connection_wait.sorted();
            report["workload"] = json!(format!(
                "open loop, {cycles_per_s:.0} cycles/s, at most {max_cycles} at once over \
                 {connections} connections"
            ));
            report["connection_wait_p50_ms"] = json!(percentile_ms(&waits, 50.0));
            report["connection_wait_p99_ms"] = json!(percentile_ms(&waits, 99.0));
            report["target_units_per_s"] = json!(cycles_per_s * units);
            report["offered_units_per_s"] = json!(get(&tally.cycles) as f64 * units / arrivals);
            report["cycles"] = json!(get(&tally.cycles));
            report["dropped_by_generator"] = json!(get(&tally.dropped));
            report["turned_away"] = json!(get(&tally.turned_away));
            report["drain_s"] = json!(drain.as_secs_f64());
        }
    }
    Ok(PhaseResult {
        report,
        median_units_per_s,
        accepted,
        unknown_outcomes: get(&tally.unknown_outcomes),
        samples,
    })
}

/// Phase 3 against phase 1: its share of phase 1's units per second (medians of whole seconds), the 503s it got after
/// its first second, and whether that counts as recovered.
pub fn recovery(capacity: &PhaseResult, after: &PhaseResult) -> Value {
    let share = after.median_units_per_s / capacity.median_units_per_s;
    let total_shed = after.report["shed_503"].as_u64().unwrap_or(0);
    let shed_in_first_second = after.samples.first().map_or(total_shed, |first| first.shed);
    let late_shed = total_shed - shed_in_first_second;
    // The first whole second at the recovered rate.
    let back_after_s = after.report["timeline"]
        .as_array()
        .and_then(|seconds| {
            seconds.iter().find(|second| {
                second["units_per_s"].as_f64().unwrap_or(0.0)
                    >= RECOVERED_SHARE * capacity.median_units_per_s
            })
        })
        .and_then(|second| second["at_s"].as_f64());
    let efficiency = |phase: &PhaseResult| {
        phase.report["units_per_server_cpu_s"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    json!({
        "share_of_capacity": share,
        "share_of_units_per_server_cpu_s": efficiency(after) / efficiency(capacity),
        "shed_503_after_first_second": late_shed,
        "back_at_80_pct_after_s": back_after_s,
        "recovered": share >= RECOVERED_SHARE && late_shed == 0,
    })
}
