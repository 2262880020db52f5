// Test fixture: starts the real cyclepool-server on 127.0.0.1:0 with a fresh store in a
// temporary directory, and offers the audit tool that re-checks its results natively.
const { test: base } = require('@playwright/test');
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '..', '..');
const serverBin = process.env.CYCLEPOOL_SERVER_BIN || path.join(root, 'target', 'debug', 'cyclepool-server');
const staticDir = process.env.CYCLEPOOL_STATIC_DIR || path.join(root, 'static');
const jobsDir = path.join(root, 'jobs', 'dist');

class Server {
  constructor(dataDir, extraArgs) {
    this.dataDir = dataDir;
    this.extraArgs = extraArgs;
    this.stderr = '';
  }

  async start() {
    // A restart keeps its port, hence its origin (and what the browser pinned for it).
    const listen = this.url ? new URL(this.url).host : '127.0.0.1:0';
    this.process = spawn(serverBin, [
      '--listen', listen, '--data-dir', this.dataDir, '--static-dir', staticDir,
      '--demo-module', path.join(jobsDir, 'mandelbrot.wasm'), ...this.extraArgs,
    ], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stderr.on('data', (chunk) => { this.stderr += chunk; });
    this.exited = new Promise((resolve) => this.process.on('exit', resolve));
    this.url = await new Promise((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`server did not start:\n${this.stderr}`)), 20_000);
      this.process.stdout.on('data', (chunk) => {
        out += chunk;
        const token = out.match(/admin token[^:]*: (cp_admin_[0-9a-f]+)/);
        if (token) this.adminToken = token[1];
        const match = out.match(/listening on (http:\/\/\S+)/);
        // The admin token is printed before the server listens, on first start only.
        if (match) { clearTimeout(timer); resolve(match[1]); }
      });
      this.process.on('exit', (code) => { clearTimeout(timer); reject(new Error(`server exited with ${code}:\n${this.stderr}`)); });
    });
    // On first start the server prints its admin token once, just after it starts listening.
    for (let waited = 0; !this.adminToken && !this.started && waited < 10_000; waited += 50) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    this.started = true;
    return this;
  }

  /** Stops the server gracefully (SIGTERM) and waits until it has flushed and exited. */
  async stop() {
    if (this.process.exitCode === null && this.process.signalCode === null) {
      this.process.kill('SIGTERM');
    }
    await this.exited;
  }

  /** Runs `cyclepool-server audit` on the stopped server's store: a native re-run of every result. */
  audit() {
    try {
      return JSON.parse(execFileSync(serverBin, ['audit', '--data-dir', this.dataDir, '--list-results'], { encoding: 'utf8' }));
    } catch (error) {
      if (error.stdout) return JSON.parse(error.stdout);
      throw error;
    }
  }

  async stats() {
    const response = await fetch(`${this.url}/api/v1/stats`);
    return response.json();
  }
}

/** Starts a server with a fresh store in a new temporary directory; `dispose()` stops it and
 * removes the directory. */
async function startServer(serverArgs) {
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'cyclepool-e2e-'));
  const server = await new Server(dataDir, serverArgs).start();
  server.dispose = async () => {
    await server.stop();
    fs.rmSync(dataDir, { recursive: true, force: true });
  };
  return server;
}

/** `server` starts a fresh server per test; `serverArgs` adds flags to it. */
const test = base.extend({
  serverArgs: [['--demo-units', '256'], { option: true }],
  server: async ({ serverArgs }, use) => {
    const server = await startServer(serverArgs);
    await use(server);
    await server.dispose();
  },
});

module.exports = { test, expect: base.expect };

/** Uploads a module file (from jobs/dist) and creates a job from it, as the portal's admin. */
async function createJob(server, moduleName, job) {
  return createJobAs(server, server.adminToken, moduleName, job);
}

/** The client reports the portal has received (admin view). */
async function reports(server) {
  const response = await fetch(`${server.url}/api/v1/reports`, { headers: { authorization: `Bearer ${server.adminToken}` } });
  return response.json();
}

/** Little-endian encodings for job inputs, as base64. */
const le = {
  u64: (value) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(value)); return b; },
  u16: (value) => { const b = Buffer.alloc(2); b.writeUInt16LE(value); return b; },
};

/** Q8.56 fixed point, as the Mandelbrot job takes its coordinates. */
const fixed = (value) => BigInt(Math.round(value * 2 ** 32)) * 2n ** 24n;

/**
 * Inputs (base64) of `units` 64 × 64 Mandelbrot tiles inside the main cardioid, where every
 * pixel runs all `maxIter` iterations: units of a steady size, proportional to `maxIter`
 * (8,000 takes about 0.1 s in Chromium here).
 */
function steadyTiles(units, maxIter) {
  return Array.from({ length: units }, (_, i) => {
    const input = Buffer.alloc(36);
    input.writeBigInt64LE(fixed(-0.25), 0);
    input.writeBigInt64LE(fixed(0.1 + i * 1e-4), 8);
    input.writeBigInt64LE(fixed(2 ** -20), 16);
    input.writeUInt32LE(64, 24);
    input.writeUInt32LE(64, 28);
    input.writeUInt32LE(maxIter, 32);
    return input.toString('base64');
  });
}

module.exports.createJob = createJob;
module.exports.steadyTiles = steadyTiles;
module.exports.reports = reports;
module.exports.le = le;
module.exports.Server = Server;
module.exports.startServer = startServer;

/** Uploads a module file (from jobs/dist) and creates a job from it through the distributor
 * API, as the holder of the API token `token`. */
async function createJobAs(server, token, moduleName, job) {
  const auth = { authorization: `Bearer ${token}` };
  const module = fs.readFileSync(path.join(jobsDir, `${moduleName}.wasm`));
  const uploaded = await fetch(`${server.url}/api/v1/modules`, { method: 'PUT', headers: auth, body: module });
  if (uploaded.status !== 201) throw new Error(`module upload failed: ${uploaded.status} ${await uploaded.text()}`);
  const { module_sha256: moduleSha256 } = await uploaded.json();
  const created = await fetch(`${server.url}/api/v1/jobs`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ description: '', ...job, module_sha256: moduleSha256 }),
  });
  if (created.status !== 201) throw new Error(`job creation failed: ${created.status} ${await created.text()}`);
  return created.json();
}

/** A fresh, valid ed25519 public key as 64 hex digits (a volunteer id that no browser holds). */
function randomVolunteerKey() {
  const { publicKey } = require('node:crypto').generateKeyPairSync('ed25519');
  return Buffer.from(publicKey.export({ format: 'jwk' }).x, 'base64url').toString('hex');
}

module.exports.createJobAs = createJobAs;
module.exports.randomVolunteerKey = randomVolunteerKey;
module.exports.jobsDir = jobsDir;

/** Calls the portal's API as its admin; throws on a non-2xx answer. */
async function adminApi(server, method, route, body) {
  const response = await fetch(`${server.url}${route}`, {
    method,
    headers: { authorization: `Bearer ${server.adminToken}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body && JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return JSON.parse(text);
}

/**
 * Registers a distributor through the API, accepting the terms. Trusted (the default), the
 * admin publishes its jobs without review; untrusted, they wait in the review queue.
 * Returns its account id, token and bearer headers.
 */
async function registerDistributor(server, name, { trusted = true } = {}) {
  const response = await fetch(`${server.url}/api/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      name, contact: `${name.replace(/\W+/g, '.')}@example.org`, organisation: 'A lab',
      purpose: 'Computations for a browser test', accept_terms: true,
    }),
  });
  if (response.status !== 201) throw new Error(`registration failed: ${response.status} ${await response.text()}`);
  const created = await response.json();
  const accountId = created.account.account_id;
  if (trusted) await trustAccount(server, accountId);
  const token = created.token.secret;
  return { accountId, token, authorization: { authorization: `Bearer ${token}` } };
}

/** The admin trusts an account: its jobs are published as soon as they are created. */
async function trustAccount(server, accountId) {
  return adminApi(server, 'PATCH', `/api/v1/admin/accounts/${accountId}`, { trusted: true });
}

/** The distributor CLI built beside the server binary (`cargo build` builds both). */
const cliBin = path.join(path.dirname(serverBin), 'cyclepool');

/**
 * The request for units a browser request carries, or null: the body of `POST /api/v1/lease`,
 * or the `lease` of a `POST /api/v1/exchange` (how the web client asks for units).
 */
function leaseRequestOf(request) {
  const path = new URL(request.url()).pathname;
  if (request.method() !== 'POST') return null;
  if (path === '/api/v1/lease') return request.postDataJSON();
  if (path === '/api/v1/exchange') return request.postDataJSON()?.lease ?? null;
  return null;
}

/** The answer to a request for units `body` (a lease or exchange answer) carries, or null. */
function leaseAnswerOf(path, body) {
  if (path === '/api/v1/lease') return body;
  if (path === '/api/v1/exchange') return body?.lease ?? null;
  return null;
}

module.exports.leaseRequestOf = leaseRequestOf;
module.exports.leaseAnswerOf = leaseAnswerOf;
module.exports.adminApi = adminApi;
module.exports.registerDistributor = registerDistributor;
module.exports.trustAccount = trustAccount;
module.exports.cliBin = cliBin;
