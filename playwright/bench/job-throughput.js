// Browser side of the job-throughput benchmark: runs each example job's .wasm module in headless
// Chromium over the inputs the native benchmark used, checks the outputs are identical, and
// prints throughput in the browser as a fraction of native. Run by `cargo xtask bench-jobs`.
const fs = require('node:fs');
const path = require('node:path');
const { chromium } = require('@playwright/test');

const [nativeReport, jobsDir] = process.argv.slice(2);
const native = JSON.parse(fs.readFileSync(nativeReport, 'utf8'));

// Runs in the page: the job ABI by hand, best of `passes` passes over the inputs.
async function runInBrowser({ moduleBytes, inputs, passes }) {
  const { instance } = await WebAssembly.instantiate(new Uint8Array(moduleBytes), {});
  const abi = instance.exports;
  const decoded = inputs.map((b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
  const onePass = () => decoded.map((input) => {
    const ptr = abi.cyclepool_alloc(input.length);
    new Uint8Array(abi.memory.buffer, ptr, input.length).set(input);
    if (abi.cyclepool_run(ptr, input.length) !== 0) return new Uint8Array();
    return new Uint8Array(abi.memory.buffer, abi.cyclepool_output_ptr(), abi.cyclepool_output_len()).slice();
  });
  onePass(); // warm-up: lets the engine tier up before timing
  let best = Infinity;
  let outputs = [];
  for (let i = 0; i < passes; i += 1) {
    const started = performance.now();
    outputs = onePass();
    best = Math.min(best, performance.now() - started);
  }
  let hash = 0xcbf29ce484222325n;
  for (const output of outputs) {
    for (const byte of output) {
      hash ^= BigInt(byte);
      hash = (hash * 0x100000001b3n) & 0xffffffffffffffffn;
    }
  }
  return { best, checksum: hash.toString(16).padStart(16, '0') };
}

(async () => {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const page = await browser.newPage();
  const version = browser.version();
  const rows = [];
  for (const job of native) {
    const moduleBytes = [...fs.readFileSync(path.join(jobsDir, `${job.job}.wasm`))];
    const result = await page.evaluate(runInBrowser, { moduleBytes, inputs: job.inputs, passes: job.passes });
    if (result.checksum !== job.checksum) {
      throw new Error(`${job.job}: browser outputs differ from native (${result.checksum} vs ${job.checksum})`);
    }
    rows.push({ job: job.job, units: job.inputs.length, native: job.native_best_ms, browser: result.best });
  }
  await browser.close();
  console.log(`Chromium ${version}; best of ${native[0].passes} passes each, outputs identical to native\n`);
  console.log('| job | units per pass | native (ms) | Chromium (ms) | browser / native throughput |');
  console.log('|---|---|---|---|---|');
  for (const row of rows) {
    console.log(`| ${row.job} | ${row.units} | ${row.native.toFixed(1)} | ${row.browser.toFixed(1)} | ${(row.native / row.browser).toFixed(2)} |`);
  }
})().catch((error) => { console.error(error); process.exit(1); });
