//! The server under load as a child process, and what `/proc` says about it: CPU time, memory,
//! and the client addresses of the connections it has accepted.

use std::collections::HashSet;
use std::io::{BufRead as _, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long the server gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// Server flags the generator sets itself: a run must stay on loopback with a fresh store.
const FIXED_FLAGS: [&str; 3] = ["--listen", "--data-dir", "--api-only"];

/// The server as a child process, with what its first start printed.
pub struct ServerProcess {
    child: Child,
    base: String,
    port: u16,
    pub admin_token: String,
    /// Removed after the server has stopped (fields drop after `Drop::drop`).
    _data_dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `binary` on `127.0.0.1:0` with a temporary store, `--api-only --demo-units 0`,
    /// and `extra` flags after those (so that they may override `--demo-units`).
    pub fn start(binary: &Path, extra: &[String]) -> anyhow::Result<Self> {
        if let Some(flag) = extra
            .iter()
            .find(|arg| FIXED_FLAGS.iter().any(|fixed| arg.starts_with(fixed)))
        {
            bail!("{flag}: the load generator sets --listen, --data-dir and --api-only itself");
        }
        let data_dir = tempfile::tempdir().context("creating a temporary data directory")?;
        let log = std::fs::File::create(data_dir.path().join("server.log"))
            .context("creating the server's log file")?;
        let mut child = Command::new(binary)
            .args(["--api-only", "--demo-units", "0", "--listen", "127.0.0.1:0"])
            .arg("--data-dir")
            .arg(data_dir.path().join("store"))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("the server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let (mut base, mut admin_token) = (None, None);
        // The server prints where it listens, then (first start only) its new admin token.
        while base.is_none() || admin_token.is_none() {
            let Some(line) = lines.next() else {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server stopped before printing its address and admin token");
            };
            let line = line.context("reading the server's output")?;
            if let Some(address) = line.strip_prefix("listening on ") {
                base = Some(format!("{}/api/v1", address.trim()));
            } else if line.starts_with("admin token") {
                admin_token = line.rsplit(' ').next().map(str::to_owned);
            }
        }
        // Keep reading so the server never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let (Some(base), Some(admin_token)) = (base, admin_token) else {
            bail!("the server printed no address or no admin token");
        };
        let Some(port) = base
            .strip_prefix("http://127.0.0.1:")
            .and_then(|rest| rest.split('/').next())
            .and_then(|port| port.parse().ok())
        else {
            bail!("the server listens on {base}, not on loopback");
        };
        Ok(Self {
            child,
            base,
            port,
            admin_token,
            _data_dir: data_dir,
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIGTERM, then SIGKILL if it has not stopped within [`STOP_GRACE`].
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
        let started = Instant::now();
        while started.elapsed() < STOP_GRACE {
            if self
                .child
                .try_wait()
                .context("waiting for the server")?
                .is_some()
            {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("the server did not stop within {STOP_GRACE:?} of SIGTERM; killing it");
        self.child.kill().context("killing the server")?;
        self.child.wait().context("waiting for the server")?;
        Ok(())
    }
}

impl Drop for ServerProcess {
    /// A run that fails half-way must not leave the server behind.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// CPU time (user + system) of a process (`"self"` or a pid), in seconds, from
/// `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: &str, ticks_per_second: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces; the fields after its closing parenthesis
    // start with field 3, so utime (14) and stime (15) are the 12th and 13th of them.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |index: usize| -> anyhow::Result<f64> {
        let field = fields.get(index).context("a short /proc stat line")?;
        Ok(field.parse::<u64>().context("a /proc stat field")? as f64)
    };
    Ok((ticks(11)? + ticks(12)?) / ticks_per_second)
}

/// A field of `/proc/<pid>/status` in kB (`VmHWM`, `VmRSS`), as MiB.
pub fn status_mib(pid: &str, field: &str) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|line| line.starts_with(&format!("{field}:")))
        .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
    let kib: f64 = line
        .split_whitespace()
        .nth(1)
        .context("an empty status line")?
        .parse()
        .context("a status value")?;
    Ok(kib / 1024.0)
}

/// Clock ticks per second, for reading `/proc` CPU times.
pub fn ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// The established connections to local `port`, and how many distinct client addresses they
/// come from, from the kernel's socket table: the addresses the server's `accept` returned,
/// which are what it sees as each request's `ConnectInfo` (and limits per address).
pub fn connections(port: u16) -> anyhow::Result<(usize, usize)> {
    let table = std::fs::read_to_string("/proc/net/tcp").context("reading /proc/net/tcp")?;
    let local_port = format!(":{port:04X}");
    let mut established = 0;
    let mut peers = HashSet::new();
    // Each line: `sl local_address rem_address st ...`, addresses as `HEXADDR:HEXPORT`.
    for line in table.lines().skip(1) {
        let mut fields = line.split_whitespace().skip(1);
        let (Some(local), Some(remote), Some(state)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        // 01 = ESTABLISHED.
        if state != "01" || !local.ends_with(&local_port) {
            continue;
        }
        established += 1;
        let Some((address, _)) = remote.split_once(':') else {
            continue;
        };
        // The kernel prints the address's network-order word as a native integer.
        if let Ok(word) = u32::from_str_radix(address, 16) {
            peers.insert(Ipv4Addr::from(word.to_ne_bytes()));
        }
    }
    Ok((established, peers.len()))
}

/// How many times a listening socket's accept queue was full, so that a connection's
/// handshake was dropped and its client had to retry it (a second or more later): the
/// kernel's `TcpExt: ListenOverflows`, for the whole network namespace.
pub fn listen_overflows() -> anyhow::Result<u64> {
    let netstat =
        std::fs::read_to_string("/proc/net/netstat").context("reading /proc/net/netstat")?;
    // Pairs of lines: `TcpExt: name name …`, then `TcpExt: value value …`.
    let mut lines = netstat.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        if let Some((_, value)) = names
            .split_whitespace()
            .zip(values.split_whitespace())
            .find(|(name, _)| *name == "ListenOverflows")
        {
            return value.parse().context("a /proc/net/netstat value");
        }
    }
    bail!("no ListenOverflows in /proc/net/netstat")
}
