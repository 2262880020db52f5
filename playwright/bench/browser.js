// Browser benchmark: click → first computed unit (cold and warm visits), volunteer-worker
// utilisation with ~100 ms units, the page weight (bytes on the wire) of the volunteer page
// and the embed widget, and the API requests a tab makes per acknowledged result, in headless
// Chromium against the real server on loopback. It measures and reports; it passes or fails
// nothing. Run by `cargo xtask bench-browser`.
//
//   node bench/browser.js [--runs N] [--window SECONDS]
//                         [--only latency,utilisation,weight,requests] [--json FILE]
//                         [--settings WORKERSxSECONDS,...]   (utilisation: workers and their
//                                                             work buffer; default 1x30,2x30,1x1)
//
// Timings come from inside the page: `performance.now()` of the Start click (the event's
// timestamp) and of the worker messages the page already receives (`unit-computed` when a
// unit has been computed, `unit-done` when the portal acknowledged its result as durable).
// An init script wraps `window.Worker` to note those messages; the pages are not changed.
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const { chromium } = require('@playwright/test');
const {
  startServer, createJob, registerDistributor, steadyTiles, jobsDir,
} = require('../tests/server');

const options = parseArgs(process.argv.slice(2));

function parseArgs(args) {
  const parsed = {
    runs: 10, window: 30, only: ['latency', 'utilisation', 'weight', 'requests'], json: null,
    settings: [{ workers: 1, buffer_s: 30 }, { workers: 2, buffer_s: 30 }, { workers: 1, buffer_s: 1 }],
  };
  for (let i = 0; i < args.length; i += 1) {
    const value = args[i + 1];
    switch (args[i]) {
      case '--runs': parsed.runs = Number(value); i += 1; break;
      case '--window': parsed.window = Number(value); i += 1; break;
      case '--only': parsed.only = value.split(','); i += 1; break;
      case '--json': parsed.json = value; i += 1; break;
      case '--settings': parsed.settings = value.split(',').map(parseSetting); i += 1; break;
      default: throw new Error(`unknown argument ${args[i]}`);
    }
  }
  return parsed;
}

// `2x30`: two workers, thirty seconds of work in hand each.
function parseSetting(text) {
  const match = /^(\d+)x(\d+)$/.exec(text);
  if (match === null) throw new Error(`--settings takes WORKERSxSECONDS, e.g. 2x30, not ${text}`);
  return { workers: Number(match[1]), buffer_s: Number(match[2]) };
}

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// Runs in every frame before its own scripts: notes the Start (or consent) click and every
// message the volunteer workers post to the page, with `performance.now()`.
function instrument() {
  const bench = { click: null, events: [] };
  window.cyclepoolBench = bench;
  document.addEventListener('click', (event) => {
    const id = event.target?.id;
    if ((id === 'start' || id === 'consent') && bench.click === null) bench.click = event.timeStamp;
  }, true);
  const NativeWorker = window.Worker;
  if (!NativeWorker) return;
  let workers = 0;
  window.Worker = class extends NativeWorker {
    constructor(...args) {
      super(...args);
      const index = workers;
      workers += 1;
      this.addEventListener('message', (message) => {
        const data = message.data;
        if (data && typeof data.type === 'string') {
          bench.events.push({
            t: performance.now(), worker: index, type: data.type, busy: data.busy_ms, compute: data.compute_ms,
          });
        }
      });
    }
  };
}

const median = (values) => {
  if (!values.length) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
const round = (value, digits = 1) => Number(value.toFixed(digits));

// --- Requests -----------------------------------------------------------------------------

/**
 * Notes every finished request of `context` (pages, frames and their workers alike) until
 * `settled()`, which waits for the notes in progress.
 */
/** For `POST /api/v1/exchange`, what it carried: `{ lease, results }`; otherwise null. */
function exchangeCarries(request) {
  if (request.method() !== 'POST' || new URL(request.url()).pathname !== '/api/v1/exchange') return null;
  const body = request.postDataJSON();
  return { lease: Boolean(body?.lease), results: body?.results?.length ?? 0 };
}

function recordRequests(context) {
  const records = [];
  const pending = [];
  const onFinished = (request) => {
    // A request that finishes as its page closes has nothing more to say: skipped.
    pending.push((async () => {
      const response = await request.response();
      const timing = request.timing();
      const sizes = await request.sizes().catch(() => null);
      records.push({
        url: request.url(),
        path: new URL(request.url()).pathname,
        method: request.method(),
        // What an exchange carried: a request for units, results.
        carries: exchangeCarries(request),
        encoding: (await response?.headerValue('content-encoding')) ?? null,
        accept: await request.headerValue('accept-encoding'),
        start: timing.startTime,
        end: timing.startTime + timing.responseEnd,
        body: sizes?.responseBodySize ?? 0,
      });
    })().catch(() => {}));
  };
  context.on('requestfinished', onFinished);
  const settled = async () => {
    context.off('requestfinished', onFinished);
    await Promise.all(pending);
  };
  return { records, settled };
}

// --- Click → first unit -------------------------------------------------------------------

/** Loads the volunteer page, presses Start, and waits for the first acknowledged result. */
async function visitAndStart(context, url) {
  const requests = recordRequests(context);
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'networkidle' });
  // A person reads before pressing Start: let the page's own loading finish first.
  await page.waitForTimeout(500);
  await page.click('#start');
  await page.waitForFunction(() => window.cyclepoolBench.events.some((e) => e.type === 'unit-done'),
    null, { timeout: 60_000 });
  const marks = await page.evaluate(() => ({
    click: window.cyclepoolBench.click,
    origin: performance.timeOrigin,
    events: window.cyclepoolBench.events,
  }));
  await page.click('#stop');
  await requests.settled();
  const clickEpoch = marks.origin + marks.click;
  const first = (type) => marks.events.find((e) => e.type === type)?.t - marks.click;
  // Where the time went: each request of the first unit's path, from the click.
  const since = (path, method = 'GET', carrying = () => true) => {
    const found = requests.records.filter((r) => r.method === method && path.test(r.path) && r.start >= clickEpoch - 1 && carrying(r))
      .sort((a, b) => a.start - b.start)[0];
    return found ? { start: found.start - clickEpoch, end: found.end - clickEpoch } : null;
  };
  const phases = {
    'client wasm (page)': since(/\/pkg\/cyclepool_web_client_bg\.wasm$/),
    'portal keys': since(/^\/\.well-known\/cyclepool-keys\.json$/),
    'worker.js': since(/^\/worker\.js$/),
    // The web client asks for units and hands in results by exchange (before: /lease, /results).
    'first lease': since(/^\/api\/v1\/(lease|exchange)$/, 'POST', (r) => !r.carries || r.carries.lease),
    'manifest': since(/^\/api\/v1\/jobs\/\d+\/manifest$/),
    'log check': since(/^\/api\/v1\/log\/jobs\/\d+$/),
    'job module': since(/^\/api\/v1\/modules\//),
    'sandbox.js': since(/^\/sandbox\.js$/),
    'first result': since(/^\/api\/v1\/(results|exchange)$/, 'POST', (r) => !r.carries || r.carries.results > 0),
  };
  // Stop stops the workers; the tab goes too.
  await page.close();
  return {
    computed: first('unit-computed'),
    acknowledged: first('unit-done'),
    phases,
  };
}

/** Forgets the units a visit left in hand, so that the next one must lease, as a first does. */
async function clearOfflineQueue(context, url) {
  const page = await context.newPage();
  await page.goto(`${url}/terms.html`);
  await page.evaluate(() => new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase('cyclepool-offline');
    request.onsuccess = resolve;
    request.onerror = () => reject(request.error);
  }));
  await page.close();
}

async function latency(browser) {
  // Plenty of the demo's small tiles (a few ms each): the time measured is the client's own.
  const server = await startServer(['--demo-units', '16384']);
  try {
    const cold = [];
    const warm = [];
    // One visit first, not counted: the server's first manifest signature and log reads.
    for (let run = -1; run < options.runs; run += 1) {
      // A fresh context: empty HTTP cache, no storage, nothing pinned; then a second visit in
      // the same context (HTTP cache, pinned keys and volunteer key kept; no units in hand).
      const context = await browser.newContext();
      await context.addInitScript(instrument);
      const first = await visitAndStart(context, server.url);
      await clearOfflineQueue(context, server.url);
      const second = await visitAndStart(context, server.url);
      await context.close();
      if (run >= 0) {
        cold.push(first);
        warm.push(second);
        process.stderr.write(`latency run ${run + 1}/${options.runs}: cold ${first.computed.toFixed(0)} ms, warm ${second.computed.toFixed(0)} ms\n`);
      }
    }
    const summarise = (visits) => ({
      runs: visits.length,
      computed_ms: { median: round(median(visits.map((v) => v.computed))), worst: round(Math.max(...visits.map((v) => v.computed))) },
      acknowledged_ms: { median: round(median(visits.map((v) => v.acknowledged))), worst: round(Math.max(...visits.map((v) => v.acknowledged))) },
      // The median start and end of each step, from the click.
      phases: Object.fromEntries(Object.keys(visits[0].phases).map((name) => {
        const seen = visits.map((v) => v.phases[name]).filter(Boolean);
        return [name, seen.length ? { start: round(median(seen.map((p) => p.start))), end: round(median(seen.map((p) => p.end))) } : null];
      })),
    });
    return { cold: summarise(cold), warm: summarise(warm) };
  } finally {
    await server.dispose();
  }
}

// --- Utilisation --------------------------------------------------------------------------

/** The `max_iter` that makes a steady 64 × 64 tile take about `targetMs` in this Chromium. */
async function calibrate(browser, targetMs) {
  const page = await browser.newPage();
  const moduleBytes = [...fs.readFileSync(`${jobsDir}/mandelbrot.wasm`)];
  const probeIter = 4_000;
  const [input] = steadyTiles(1, probeIter);
  const ms = await page.evaluate(async ({ moduleBytes, input }) => {
    const { instance } = await WebAssembly.instantiate(new Uint8Array(moduleBytes), {});
    const abi = instance.exports;
    const bytes = Uint8Array.from(atob(input), (c) => c.charCodeAt(0));
    const times = [];
    for (let i = 0; i < 7; i += 1) {
      const ptr = abi.cyclepool_alloc(bytes.length);
      new Uint8Array(abi.memory.buffer, ptr, bytes.length).set(bytes);
      const started = performance.now();
      abi.cyclepool_run(ptr, bytes.length);
      times.push(performance.now() - started);
    }
    // The fastest run: the machine's speed without whatever else ran meanwhile.
    return Math.min(...times);
  }, { moduleBytes, input });
  await page.close();
  return Math.min(65_535, Math.round((probeIter * targetMs) / ms));
}

/**
 * Per worker: the share of the time between its units' ends that its sandbox held a unit
 * (`busy_ms`: from handing the unit over to the answer) and that it spent in the job's module
 * (`compute_ms`, as the sandbox measured it; whole ms, so ±0.5 ms a unit, which averages out).
 */
function utilisationOf(events, from, to) {
  const perWorker = new Map();
  for (const event of events) {
    if (event.type !== 'unit-computed' || event.t < from || event.t > to) continue;
    if (!perWorker.has(event.worker)) perWorker.set(event.worker, []);
    perWorker.get(event.worker).push(event);
  }
  return [...perWorker.entries()].sort(([a], [b]) => a - b).map(([worker, units]) => {
    // From the end of the first unit in the window to the end of the last: the units between
    // were computed inside it; what is left is the time between units.
    const wall = units[units.length - 1].t - units[0].t;
    const busy = units.slice(1).reduce((sum, unit) => sum + unit.busy, 0);
    const compute = units.slice(1).reduce((sum, unit) => sum + unit.compute, 0);
    const gaps = units.slice(1).map((unit, i) => unit.t - units[i].t - unit.busy);
    return {
      worker,
      units: units.length - 1,
      wall_s: round(wall / 1000, 2),
      utilisation: round(compute / wall, 4),
      sandbox_held: round(busy / wall, 4),
      unit_ms_median: round(median(units.map((u) => u.busy))),
      gap_ms_median: round(median(gaps), 2),
      gap_ms_max: round(Math.max(...gaps), 1),
    };
  });
}

/** The kernel's unit for thread times in /proc (USER_HZ, 100 on Linux whatever the kernel's HZ). */
const USER_HZ = 100;

/**
 * CPU time so far (ms) of every thread of this process's descendants (Chromium's processes
 * and the server), by `pid/tid`, with the thread's name; `null` without a Linux /proc.
 */
function threadCpu() {
  let pids;
  try {
    pids = fs.readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return null;
  }
  const parentOf = new Map();
  for (const pid of pids) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      parentOf.set(pid, stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    } catch { /* ended meanwhile */ }
  }
  const self = String(process.pid);
  const descends = (pid) => {
    for (let up = parentOf.get(pid); up && up !== '0'; up = parentOf.get(up)) if (up === self) return true;
    return false;
  };
  const threads = new Map();
  for (const pid of parentOf.keys()) {
    if (!descends(pid)) continue;
    let tids = [];
    try { tids = fs.readdirSync(`/proc/${pid}/task`); } catch { /* ended meanwhile */ }
    for (const tid of tids) {
      try {
        const stat = fs.readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        threads.set(`${pid}/${tid}`, {
          name: stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')),
          ms: ((Number(fields[11]) + Number(fields[12])) * 1000) / USER_HZ, // utime + stime
        });
      } catch { /* ended meanwhile */ }
    }
  }
  return threads;
}

/**
 * Where the CPU went between two `threadCpu()` readings: the sandboxes' share of all the CPU
 * the browser and the server used, and the CPU used outside the sandboxes per unit computed.
 * The sandboxes are the busiest worker threads, one per volunteer worker. "In the module"
 * counts a unit's wall time, which includes the time its thread waited for a core while the
 * page, the volunteer workers, the browser's own processes and the server ran; this counts
 * what each of them used.
 */
function cpuBetween(before, after, sandboxes, units) {
  if (!before || !after || units === 0) return null;
  const spent = [...after].map(([key, thread]) => ({ name: thread.name, ms: thread.ms - (before.get(key)?.ms ?? 0) }));
  const total = spent.reduce((sum, thread) => sum + thread.ms, 0);
  const sandboxThreads = new Set(spent.filter((thread) => thread.name.startsWith('DedicatedWorker'))
    .sort((a, b) => b.ms - a.ms).slice(0, sandboxes));
  const inSandboxes = [...sandboxThreads].reduce((sum, thread) => sum + thread.ms, 0);
  // The rest by thread name (the volunteer workers are the other DedicatedWorker threads),
  // busiest first: where to look for the CPU a unit costs besides its computation.
  const byName = new Map();
  for (const thread of spent) {
    if (sandboxThreads.has(thread) || thread.ms <= 0) continue;
    byName.set(thread.name, (byName.get(thread.name) ?? 0) + thread.ms);
  }
  const outsideByThread = Object.fromEntries([...byName].sort((a, b) => b[1] - a[1]).slice(0, 8)
    .map(([name, ms]) => [name, round(ms / units, 2)]));
  return {
    sandbox_share: round(inSandboxes / total, 4),
    outside_ms_per_unit: round((total - inSandboxes) / units, 2),
    outside_ms_per_unit_by_thread: outsideByThread,
  };
}

/**
 * The ceiling: the portal's sandbox script alone in a page, every unit handed to it at once,
 * so that it never waits for anyone: the share of the wall time it spends in the module.
 */
async function sandboxAlone(browser, server, maxIter) {
  const page = await browser.newPage();
  await page.goto(`${server.url}/terms.html`);
  const moduleBytes = [...fs.readFileSync(`${jobsDir}/mandelbrot.wasm`)];
  const inputs = steadyTiles(61, maxIter);
  const result = await page.evaluate(async ({ moduleBytes, inputs }) => {
    const module = await WebAssembly.compile(new Uint8Array(moduleBytes));
    const sandbox = new Worker('/sandbox.js', { type: 'module' });
    const answers = [];
    await new Promise((resolve) => {
      sandbox.onmessage = (message) => {
        answers.push({ t: performance.now(), ms: message.data.ms });
        if (answers.length === inputs.length) resolve();
      };
      inputs.forEach((base64, i) => {
        const input = Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
        sandbox.postMessage(i === 0 ? { module, key: 'k', input } : { key: 'k', input });
      });
    });
    sandbox.terminate();
    const wall = answers[answers.length - 1].t - answers[0].t;
    return { units: answers.length - 1, wall, inModule: answers.slice(1).reduce((sum, a) => sum + a.ms, 0) };
  }, { moduleBytes, inputs });
  await page.close();
  return { units: result.units, wall_s: round(result.wall / 1000, 2), utilisation: round(result.inModule / result.wall, 4) };
}

async function utilisation(browser) {
  const maxIter = await calibrate(browser, 100);
  const server = await startServer(['--demo-units', '0']);
  const rows = [];
  try {
    const alone = await sandboxAlone(browser, server, maxIter);
    process.stderr.write(`utilisation, the sandbox alone: ${(100 * alone.utilisation).toFixed(2)} %\n`);
    const { settings } = options;
    const warmupMs = 5_000;
    const windowMs = options.window * 1000;
    // Enough units for every setting: ten units a second per worker, and a margin.
    const units = Math.ceil((settings.reduce((sum, s) => sum + s.workers, 0) * 12 * (warmupMs + windowMs)) / 1000);
    await createJob(server, 'mandelbrot', { title: 'Steady tiles (benchmark)', inputs: { list: steadyTiles(units, maxIter) } });
    for (const setting of settings) {
      const context = await browser.newContext();
      await context.addInitScript(instrument);
      const page = await context.newPage();
      // API requests the page and its workers make during the window (counted in Node).
      let requestsInWindow = null;
      context.on('request', (request) => {
        if (requestsInWindow !== null && new URL(request.url()).pathname.startsWith('/api/')) requestsInWindow += 1;
      });
      await page.goto(server.url);
      await page.fill('#workers', String(setting.workers));
      await page.locator('#cpu').fill('100');
      await page.fill('#work-buffer', String(setting.buffer_s));
      await page.click('#start');
      await page.waitForFunction(() => window.cyclepoolBench.events.some((e) => e.type === 'unit-computed'), null, { timeout: 60_000 });
      const firstUnit = await page.evaluate(() => window.cyclepoolBench.events.find((e) => e.type === 'unit-computed').t);
      await page.waitForFunction((from) => performance.now() > from, firstUnit + warmupMs,
        { timeout: warmupMs + 30_000, polling: 100 });
      const cpuBefore = threadCpu();
      requestsInWindow = 0;
      await page.waitForFunction((until) => performance.now() > until, firstUnit + warmupMs + windowMs,
        { timeout: windowMs + 30_000, polling: 100 });
      const cpuAfter = threadCpu();
      const requests = requestsInWindow;
      requestsInWindow = null;
      const events = await page.evaluate(() => window.cyclepoolBench.events);
      await page.click('#stop');
      await context.close();
      const perWorker = utilisationOf(events, firstUnit + warmupMs, firstUnit + warmupMs + windowMs);
      const errors = events.filter((e) => e.type === 'error' || e.type === 'unit-failed' || e.type === 'unit-expired').length;
      const computed = perWorker.reduce((sum, w) => sum + w.units, 0);
      rows.push({
        ...setting,
        max_iter: maxIter,
        units_per_s: round(computed / (windowMs / 1000), 2),
        cpu: cpuBetween(cpuBefore, cpuAfter, setting.workers, computed),
        requests_per_unit: computed ? round(requests / computed, 3) : null,
        utilisation_min: Math.min(...perWorker.map((w) => w.utilisation)),
        per_worker: perWorker,
        errors,
      });
      process.stderr.write(`utilisation, ${setting.workers} worker(s), buffer ${setting.buffer_s} s: ${perWorker.map((w) => (100 * w.utilisation).toFixed(2)).join(' %, ')} %\n`);
    }
    return { sandbox_alone: alone, settings: rows };
  } finally {
    await server.dispose();
  }
}

// --- Page weight --------------------------------------------------------------------------

/** What a response is, for the page weight: the page itself (HTML, JS, wasm, CSS) or not. */
function kind(path) {
  if (path.startsWith('/api/') || path.startsWith('/.well-known/')) return 'api';
  if (path.endsWith('.wasm')) return 'wasm';
  if (path.endsWith('.js')) return 'js';
  if (path.endsWith('.css')) return 'css';
  if (path === '/' || path.endsWith('.html')) return 'html';
  return 'other';
}

/**
 * The page weight of a visit: every distinct file it fetched from the portal, at the size the
 * server sends it with the Accept-Encoding Chromium sent (`encoded`, from `encodedSizes`).
 * Playwright's own size figures are kept beside it (they miss worker scripts' bodies).
 */
function weighOf(records, origin, encoded, clickEpoch) {
  const files = new Map();
  for (const record of records) {
    if (!record.url.startsWith(origin) || record.method !== 'GET') continue;
    const entry = files.get(record.path) ?? {
      path: record.path, kind: kind(record.path), requests: 0, seen_bytes: 0, encoding: null, before_click: false,
    };
    entry.before_click ||= record.start < clickEpoch;
    entry.requests += 1;
    entry.seen_bytes += record.body;
    entry.encoding ??= record.encoding;
    entry.accept ??= record.accept;
    files.set(record.path, entry);
  }
  const list = [...files.values()].map((f) => {
    const sizes = encoded[f.path];
    return {
      ...f, bytes: sizes ? sizes.sent : f.seen_bytes, encoding: sizes ? sizes.sent_encoding : f.encoding,
      br: sizes?.br ?? null, gzip: sizes?.gzip ?? null, identity_bytes: sizes?.identity ?? null,
    };
  });
  const page = list.filter((f) => ['html', 'js', 'wasm', 'css'].includes(f.kind));
  const sum = (entries, field) => entries.reduce((total, f) => total + (f[field] ?? 0), 0);
  return {
    page_bytes: sum(page, 'bytes'),
    page_identity_bytes: sum(page, 'identity_bytes'),
    // What the page costs before the person agrees to anything.
    page_bytes_before_click: sum(page.filter((f) => f.before_click), 'bytes'),
    by_kind: Object.fromEntries(['html', 'js', 'wasm', 'css', 'other'].map((k) => [k, sum(list.filter((f) => f.kind === k), 'bytes')])),
    files: list.filter((f) => f.kind !== 'api'),
  };
}

/** Fetches one file from Node with `accept` as Accept-Encoding: its length and encoding. */
function fetchEncoded(url, accept) {
  return new Promise((resolve, reject) => {
    http.get(url, { headers: { 'accept-encoding': accept } }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({ length: Buffer.concat(chunks).length, encoding: response.headers['content-encoding'] ?? 'identity' }));
    }).on('error', reject);
  });
}

/** Every static file of `records` fetched again: as Chromium asked for it, and per encoding. */
async function encodedSizes(records, origin) {
  const sizes = {};
  for (const record of records) {
    if (!record.url.startsWith(origin) || record.method !== 'GET' || kind(record.path) === 'api' || sizes[record.path]) continue;
    const sent = await fetchEncoded(record.url, record.accept ?? 'gzip, deflate, br, zstd');
    const entry = { sent: sent.length, sent_encoding: sent.encoding };
    for (const encoding of ['br', 'gzip', 'identity']) {
      const one = await fetchEncoded(record.url, encoding);
      entry[encoding] = one.encoding === encoding ? one.length : null;
    }
    sizes[record.path] = entry;
  }
  return sizes;
}

/** A static server on another loopback address: the site that embeds the widget of `site.id`. */
async function embedder(portal) {
  const site = { id: null };
  const server = http.createServer((request, response) => {
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    // The empty icon keeps the browser from asking this origin for /favicon.ico.
    response.end(`<!doctype html><html><head><meta charset="utf-8"><title>A blog</title>
      <link rel="icon" href="data:,"></head><body><h1>A post</h1>
      <script src="${portal}/embed.js" data-site="${site.id}" data-workers="1"></script></body></html>`);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.2', resolve));
  site.origin = `http://127.0.0.2:${server.address().port}`;
  site.close = () => new Promise((resolve) => server.close(resolve));
  return site;
}

async function weight(browser) {
  const server = await startServer(['--demo-units', '1024']);
  try {
    // The volunteer page, first visit: everything it loads up to the first acknowledged unit.
    const context = await browser.newContext();
    await context.addInitScript(instrument);
    const requests = recordRequests(context);
    const page = await context.newPage();
    await page.goto(server.url, { waitUntil: 'networkidle' });
    await page.click('#start');
    await page.waitForFunction(() => window.cyclepoolBench.events.some((e) => e.type === 'unit-done'), null, { timeout: 60_000 });
    const click = await page.evaluate(() => performance.timeOrigin + window.cyclepoolBench.click);
    await page.click('#stop');
    await requests.settled();
    await context.close();
    const volunteer = weighOf(requests.records, server.url, await encodedSizes(requests.records, server.url), click);

    // The embed widget on another site, first visit: embed.js, the framed page, and what it
    // loads after the consent click up to the first acknowledged unit.
    const site = await embedder(server.url);
    let widget;
    try {
      const distributor = await registerDistributor(server, 'A blog');
      const registered = await fetch(`${server.url}/api/v1/sites`, {
        method: 'POST',
        headers: { ...distributor.authorization, 'content-type': 'application/json' },
        body: JSON.stringify({ name: 'A blog', origin: site.origin }),
      });
      if (registered.status !== 201) throw new Error(`site registration: ${registered.status} ${await registered.text()}`);
      site.id = (await registered.json()).site_id;
      const embedContext = await browser.newContext();
      await embedContext.addInitScript(instrument);
      const embedRequests = recordRequests(embedContext);
      const embedPage = await embedContext.newPage();
      await embedPage.goto(`${site.origin}/`, { waitUntil: 'networkidle' });
      await embedPage.frameLocator('iframe.cyclepool-widget').locator('#consent').click();
      const frame = embedPage.frames().find((f) => f.url().includes('/embed.html'));
      await frame.waitForFunction(() => window.cyclepoolBench.events.some((e) => e.type === 'unit-done'), null, { timeout: 60_000 });
      const click = await frame.evaluate(() => performance.timeOrigin + window.cyclepoolBench.click);
      await embedRequests.settled();
      await embedContext.close();
      widget = weighOf(embedRequests.records, server.url, await encodedSizes(embedRequests.records, server.url), click);
    } finally {
      await site.close();
    }
    return { volunteer, widget };
  } finally {
    await server.dispose();
  }
}

// --- Report -------------------------------------------------------------------------------

// --- Requests per result -------------------------------------------------------------------

/**
 * The demo job (Mandelbrot tiles of a few ms each): one tab per worker count computes for
 * `--window` seconds after a 5 s warm-up; the API requests its workers made in the window, by
 * path, against the results the portal acknowledged in it (`unit-done` messages).
 */
async function requestsPerResult(browser) {
  const rows = [];
  for (const workers of [1, 2]) {
    const server = await startServer(['--demo-units', '65536']);
    try {
      const context = await browser.newContext();
      await context.addInitScript(instrument);
      const page = await context.newPage();
      await page.goto(server.url, { waitUntil: 'networkidle' });
      await page.fill('#workers', String(workers));
      await page.click('#start');
      await page.waitForTimeout(5_000);
      const counts = {};
      const count = (request) => {
        const path = new URL(request.url()).pathname;
        if (!path.startsWith('/api/')) return;
        const key = path.replace(/\/\d+/g, '/{n}');
        counts[key] = (counts[key] ?? 0) + 1;
      };
      const from = await page.evaluate(() => performance.now());
      context.on('request', count);
      await page.waitForTimeout(options.window * 1_000);
      context.off('request', count);
      const to = await page.evaluate(() => performance.now());
      const done = await page.evaluate(([a, b]) => window.cyclepoolBench.events
        .filter((e) => e.type === 'unit-done' && e.t >= a && e.t < b).length, [from, to]);
      await page.click('#stop');
      await context.close();
      const requests = Object.values(counts).reduce((a, b) => a + b, 0);
      rows.push({
        workers, seconds: options.window, results: done, requests, by_path: counts,
        results_per_s: Number((done / options.window).toFixed(1)),
        requests_per_result: done ? Number((requests / done).toFixed(3)) : null,
      });
    } finally {
      await server.dispose();
    }
  }
  return rows;
}

function report(results, version) {
  const load = (averages) => averages.map((value) => value.toFixed(2)).join(' ');
  const lines = [
    `Chromium ${version}, headless; server ${process.env.CYCLEPOOL_SERVER_BIN ?? 'target/debug/cyclepool-server'} on loopback`,
    `${results.cores} cores; load average (1, 5, 15 min) ${load(results.load_before)} before, ${load(results.load_after)} after`,
    '',
  ];
  if (results.latency) {
    lines.push('Click → first unit (ms from the Start click; median / worst of ' + `${results.latency.cold.runs} runs)`, '');
    lines.push('| visit | first unit computed | first result acknowledged |', '|---|---|---|');
    for (const name of ['cold', 'warm']) {
      const v = results.latency[name];
      lines.push(`| ${name} | ${v.computed_ms.median} / ${v.computed_ms.worst} | ${v.acknowledged_ms.median} / ${v.acknowledged_ms.worst} |`);
    }
    lines.push('', 'Where the time goes (median start → end of each request, ms from the click):', '');
    lines.push('| step | cold | warm |', '|---|---|---|');
    for (const step of Object.keys(results.latency.cold.phases)) {
      const show = (p) => (p ? `${p.start} → ${p.end}` : '–');
      lines.push(`| ${step} | ${show(results.latency.cold.phases[step])} | ${show(results.latency.warm.phases[step])} |`);
    }
    lines.push('');
  }
  if (results.utilisation) {
    const { sandbox_alone: alone, settings } = results.utilisation;
    lines.push(`Worker utilisation (compute time / wall time, ${options.window} s window after 5 s, units of max_iter ${settings[0].max_iter})`, '');
    lines.push(`The sandbox alone, ${alone.units} units handed over at once: ${(100 * alone.utilisation).toFixed(2)} % in the module over ${alone.wall_s} s`, '');
    lines.push('| workers | work buffer (s) | units/s | median unit (ms) | in the module, per worker | sandbox holding a unit | median gap (ms) | largest gap (ms) | sandboxes\' share of the CPU used | CPU outside the sandboxes per unit | API requests per unit | errors |', '|---|---|---|---|---|---|---|---|---|---|---|---|');
    const percent = (row, field) => row.per_worker.map((w) => `${(100 * w[field]).toFixed(2)} %`).join(', ');
    for (const row of settings) {
      lines.push(`| ${row.workers} | ${row.buffer_s} | ${row.units_per_s} | ${row.per_worker.map((w) => w.unit_ms_median).join(', ')} | ${percent(row, 'utilisation')} | ${percent(row, 'sandbox_held')} | ${row.per_worker.map((w) => w.gap_ms_median).join(', ')} | ${row.per_worker.map((w) => w.gap_ms_max).join(', ')} | ${row.cpu ? `${(100 * row.cpu.sandbox_share).toFixed(1)} %` : '–'} | ${row.cpu ? `${row.cpu.outside_ms_per_unit} ms` : '–'} | ${row.requests_per_unit} | ${row.errors} |`);
    }
    lines.push('', 'CPU outside the sandboxes per unit, by thread (ms; the volunteer workers are the other DedicatedWorker threads):', '');
    for (const row of settings.filter((row) => row.cpu)) {
      const threads = Object.entries(row.cpu.outside_ms_per_unit_by_thread).map(([name, ms]) => `${name} ${ms}`).join(', ');
      lines.push(`- ${row.workers} worker(s), buffer ${row.buffer_s} s: ${threads}`);
    }
    lines.push('');
  }
  if (results.requests) {
    lines.push(`API requests per acknowledged result, demo job (tiles of a few ms), ${options.window} s after 5 s`, '');
    lines.push('| workers | results/s | requests | requests per result | by path |', '|---|---|---|---|---|');
    for (const row of results.requests) {
      const paths = Object.entries(row.by_path).map(([path, n]) => `${path} ${n}`).join(', ');
      lines.push(`| ${row.workers} | ${row.results_per_s} | ${row.requests} | ${row.requests_per_result ?? '–'} | ${paths} |`);
    }
    lines.push('');
  }
  if (results.weight) {
    const kb = (bytes) => (bytes / 1000).toFixed(1);
    for (const [name, w] of [['volunteer page', results.weight.volunteer], ['embed widget', results.weight.widget]]) {
      lines.push(`Page weight, ${name} (first visit up to the first acknowledged unit): ${kb(w.page_bytes)} kB of HTML, JS, wasm and CSS as sent (${kb(w.page_identity_bytes)} kB uncompressed), of which ${kb(w.page_bytes_before_click)} kB before the click; by kind: ${Object.entries(w.by_kind).map(([k, v]) => `${k} ${kb(v)}`).join(', ')} kB`, '');
      lines.push('| file | requests | as sent (bytes) | encoding | br | gzip | uncompressed |', '|---|---|---|---|---|---|---|');
      for (const f of w.files) {
        const sizes = [f.bytes, f.encoding];
        lines.push(`| ${f.path} | ${f.requests} | ${sizes.join(' | ')} | ${f.br ?? '–'} | ${f.gzip ?? '–'} | ${f.identity_bytes ?? '–'} |`);
      }
      lines.push('');
    }
  }
  return lines.join('\n');
}

(async () => {
  const browser = await chromium.launch({ executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const version = browser.version();
  // Other processes on the machine lengthen every figure: the load is part of the report.
  const results = {
    chromium: version, measured_at: new Date().toISOString(), options, cores: os.cpus().length, load_before: os.loadavg(),
  };
  try {
    if (options.only.includes('weight')) results.weight = await weight(browser);
    if (options.only.includes('latency')) results.latency = await latency(browser);
    if (options.only.includes('utilisation')) results.utilisation = await utilisation(browser);
    if (options.only.includes('requests')) results.requests = await requestsPerResult(browser);
  } finally {
    await browser.close();
  }
  results.load_after = os.loadavg();
  console.log(report(results, version));
  if (options.json) fs.writeFileSync(options.json, `${JSON.stringify(results, null, 2)}\n`);
})().catch((error) => { console.error(error); process.exit(1); });
