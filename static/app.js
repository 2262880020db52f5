// The volunteer page: starts module workers only after the person presses Start,
// aggregates what they report, and stops every one of them on Stop.

const KEYS_URL = '/.well-known/cyclepool-keys.json';
const RATE_WINDOW_MS = 10_000;
const LOG_LIMIT = 50;

const elements = {
  workers: document.getElementById('workers'),
  start: document.getElementById('start'),
  stop: document.getElementById('stop'),
  state: document.getElementById('state'),
  unitsDone: document.getElementById('units-done'),
  rate: document.getElementById('rate'),
  activeWorkers: document.getElementById('active-workers'),
  log: document.getElementById('log'),
  jobTitle: document.getElementById('job-title'),
  jobProgress: document.getElementById('job-progress'),
  runningJob: document.getElementById('running-job'),
  runningTitle: document.getElementById('running-title'),
  runningDistributor: document.getElementById('running-distributor'),
  runningModule: document.getElementById('running-module'),
  volunteerId: document.getElementById('volunteer-id'),
  cpu: document.getElementById('cpu'),
  cpuValue: document.getElementById('cpu-value'),
  pauseHidden: document.getElementById('pause-hidden'),
  pauseBattery: document.getElementById('pause-battery'),
  busy: document.getElementById('busy'),
  reportOpen: document.getElementById('report-open'),
  reportForm: document.getElementById('report-form'),
  reportReason: document.getElementById('report-reason'),
  invitation: document.getElementById('invitation'),
  joinGroup: document.getElementById('join-group'),
  declineGroup: document.getElementById('decline-group'),
};

const session = {
  workers: [],
  unitsDone: 0,
  completions: [], // timestamps (ms) of recent unit completions, for the rate
  busy: [], // [timestamp, compute ms] of recent units, for the processor use
  onBattery: false,
};

const BUSY_WINDOW_MS = 5_000;

// The identity this browser gives itself: an ed25519 key pair whose 32-byte seed comes from
// the browser's CSPRNG once, and is kept in IndexedDB. Results are signed with it; its public
// half is the volunteer id that credit will attach to.
async function volunteerSeed() {
  let seed = await keyStore('readonly', (store) => store.get('volunteer-seed'));
  if (!/^[0-9a-f]{64}$/.test(seed ?? '')) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    seed = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    await keyStore('readwrite', (store) => store.put(seed, 'volunteer-seed'));
  }
  return seed;
}

function log(message, kind = 'info') {
  const item = document.createElement('li');
  item.className = kind;
  // textContent, never innerHTML: messages may quote what the server or a job sent.
  item.textContent = `${new Date().toLocaleTimeString()} ${message}`;
  elements.log.prepend(item);
  while (elements.log.children.length > LOG_LIMIT) elements.log.lastElementChild.remove();
}

// The portal keys this browser trusts, kept in IndexedDB: trusted on first use, and after that
// extended only by keys that a trusted key endorsed (the check runs in the wasm client).
function openKeyStore() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open('cyclepool', 1);
    request.onupgradeneeded = () => request.result.createObjectStore('trust');
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

async function keyStore(mode, action) {
  const db = await openKeyStore();
  try {
    return await new Promise((resolve, reject) => {
      const request = action(db.transaction('trust', mode).objectStore('trust'));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

async function trustedPortalKeys(pinPortalKeys) {
  const response = await fetch(KEYS_URL);
  if (!response.ok) throw new Error(`cannot read the portal's keys (HTTP ${response.status})`);
  const offered = await response.text();
  const pinned = (await keyStore('readonly', (store) => store.get('portal-keys'))) ?? '';
  // Throws if the portal offers a key that no key trusted before has endorsed.
  const trusted = pinPortalKeys(pinned, offered);
  await keyStore('readwrite', (store) => store.put(trusted, 'portal-keys'));
  return trusted;
}

function render() {
  const now = performance.now();
  session.completions = session.completions.filter((t) => now - t <= RATE_WINDOW_MS);
  const windowMs = Math.min(RATE_WINDOW_MS, now - (session.startedAt ?? now)) || RATE_WINDOW_MS;
  const rate = session.workers.length ? (session.completions.length * 1000) / Math.max(windowMs, 1000) : 0;
  elements.unitsDone.textContent = String(session.unitsDone);
  elements.rate.textContent = `${rate.toFixed(1)} units/s`;
  elements.activeWorkers.textContent = String(session.workers.length);
  // Processor use: time the workers spent computing over the last few seconds, per worker.
  session.busy = session.busy.filter(([t]) => now - t <= BUSY_WINDOW_MS);
  const running = now - (session.startedAt ?? now);
  if (session.workers.length && running >= 1000 && !isPaused()) {
    const spent = session.busy.reduce((sum, [, ms]) => sum + ms, 0);
    const share = spent / (Math.min(BUSY_WINDOW_MS, running) * session.workers.length);
    elements.busy.textContent = `${Math.round(100 * share)} %`;
  } else {
    elements.busy.textContent = isPaused() && session.workers.length ? 'paused' : '–';
  }
}

function dutyCycle() {
  return Number(elements.cpu.value) / 100;
}

function isPaused() {
  return (elements.pauseHidden.checked && document.visibilityState === 'hidden')
    || (elements.pauseBattery.checked && session.onBattery);
}

function broadcast(message) {
  for (const worker of session.workers) worker.postMessage(message);
}

function applyPause() {
  const paused = isPaused();
  if (paused !== session.paused) {
    session.paused = paused;
    broadcast({ type: 'paused', value: paused });
    if (session.workers.length) {
      elements.state.textContent = paused ? 'paused' : 'computing';
      log(paused ? 'paused' : 'resumed');
    }
    // The busy window restarts, so that time paused does not count as idle.
    session.busy = [];
    session.startedAt = performance.now();
  }
  render();
}

function onWorkerEvent(event) {
  switch (event.type) {
    case 'unit-done':
      session.unitsDone += 1;
      session.completions.push(performance.now());
      session.busy.push([performance.now(), event.busy_ms ?? event.compute_ms]);
      break;
    case 'job':
      session.currentJob = event.job_id;
      elements.runningJob.hidden = false;
      elements.runningTitle.textContent = event.title;
      elements.runningDistributor.textContent = event.distributor;
      elements.runningModule.textContent = event.module_sha256;
      break;
    case 'refused':
      log(`refused job ${event.job_id}: ${event.reason} (reported to the portal)`, 'error');
      break;
    case 'unit-failed':
      log(`${event.reason} (reported to the portal)`, 'error');
      break;
    case 'idle':
      elements.state.textContent = 'waiting for work';
      break;
    case 'error':
      log(event.message + (event.retry_ms ? ` (retrying in ${(event.retry_ms / 1000).toFixed(1)} s)` : ''), 'error');
      break;
    case 'panic':
      log(`worker crashed: ${event.message}`, 'error');
      break;
    case 'stopped':
      break;
    default:
      break;
  }
  render();
}

// The web client, loaded once and only after the person agreed to something (Start, Join).
async function loadClient() {
  const client = await import('/pkg/cyclepool_web_client.js');
  await client.default({ module_or_path: '/pkg/cyclepool_web_client_bg.wasm' });
  return client;
}

// A private group's invitation arrives as `/#join=<invite>`: in the fragment, so it never
// reaches a server log. It is taken out of the address bar at once, and used only if the
// person agrees.
function takeInvitation() {
  const match = /^#join=(cp_invite_[0-9a-f]{64})$/.exec(window.location.hash);
  if (!match) return;
  history.replaceState(null, '', window.location.pathname + window.location.search);
  session.invite = match[1];
  elements.invitation.hidden = false;
}

async function joinGroup() {
  elements.joinGroup.disabled = true;
  try {
    const client = await loadClient();
    const seed = await volunteerSeed();
    const body = client.group_join_request(seed, session.invite, Date.now());
    const response = await fetch('/api/v1/groups/join', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error?.message ?? `HTTP ${response.status}`);
    log(`joined the group "${answer.name}" of ${answer.distributor}; its jobs run here when you start`);
    elements.invitation.hidden = true;
    session.invite = undefined;
  } catch (error) {
    log(`could not join the group: ${error?.message ?? error}`, 'error');
    elements.joinGroup.disabled = false;
  }
}

async function start() {
  if (session.workers.length || session.starting) return;
  session.starting = true;
  elements.start.disabled = true;
  let trustedKeys;
  try {
    // The client is loaded only now, after the person said yes.
    const client = await loadClient();
    trustedKeys = await trustedPortalKeys(client.pin_portal_keys);
    session.seed = await volunteerSeed();
    session.volunteerId = client.volunteer_id(session.seed);
    elements.volunteerId.textContent = session.volunteerId;
  } catch (error) {
    log(`not starting: ${error?.message ?? error}`, 'error');
    elements.start.disabled = false;
    session.starting = false;
    return;
  }
  session.starting = false;
  const count = Math.max(1, Math.min(Number.parseInt(elements.workers.value, 10) || 1, navigator.hardwareConcurrency || 64));
  elements.workers.value = String(count);
  session.startedAt = performance.now();
  session.completions = [];
  for (let i = 0; i < count; i += 1) {
    const worker = new Worker('/worker.js', { type: 'module', name: `cyclepool-${i}` });
    worker.addEventListener('message', (message) => onWorkerEvent(message.data));
    worker.addEventListener('error', (error) => log(`worker failed to load: ${error.message ?? 'unknown error'}`, 'error'));
    worker.postMessage({ type: 'start', seed: session.seed, trustedKeys, dutyCycle: dutyCycle(), paused: isPaused() });
    session.workers.push(worker);
  }
  elements.start.disabled = true;
  elements.stop.disabled = false;
  elements.workers.disabled = true;
  session.paused = isPaused();
  elements.state.textContent = session.paused ? 'paused' : 'computing';
  log(`started ${count} worker${count === 1 ? '' : 's'} at ${Math.round(dutyCycle() * 100)} % processor use`);
  render();
}

function stop() {
  // Terminate at once: a unit cut short is simply re-issued to someone after its deadline.
  for (const worker of session.workers) worker.terminate();
  const count = session.workers.length;
  session.workers = [];
  elements.start.disabled = false;
  elements.stop.disabled = true;
  elements.workers.disabled = false;
  elements.state.textContent = 'stopped';
  if (count) log('stopped all workers');
  render();
}

async function refreshJobs() {
  try {
    const response = await fetch('/api/v1/stats');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const stats = await response.json();
    const job = stats.jobs.find((j) => j.done < j.units) ?? stats.jobs[stats.jobs.length - 1];
    elements.jobTitle.textContent = job ? job.title : 'nothing at the moment';
    elements.jobProgress.textContent = job ? `${job.done} of ${job.units} units done` : '–';
  } catch (error) {
    elements.jobProgress.textContent = `progress unavailable: ${error.message}`;
  }
}

elements.workers.max = String(navigator.hardwareConcurrency || 1);
elements.workers.value = String(Math.max(1, Math.floor((navigator.hardwareConcurrency || 2) / 2)));
elements.start.addEventListener('click', start);
elements.reportOpen.addEventListener('click', () => {
  elements.reportForm.hidden = false;
  elements.reportReason.focus();
});
elements.reportForm.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  const report = {
    protocol: 1,
    volunteer: session.volunteerId,
    job_id: session.currentJob,
    kind: 'abuse',
    message: elements.reportReason.value.slice(0, 1000),
  };
  try {
    const response = await fetch('/api/v1/reports', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(report),
    });
    if (!response.ok) throw new Error((await response.json()).error?.message ?? `HTTP ${response.status}`);
    elements.reportForm.hidden = true;
    elements.reportReason.value = '';
    log(`reported job ${report.job_id} to the portal for review; thank you`);
  } catch (error) {
    log(`the report could not be sent: ${error.message}`, 'error');
  }
});
elements.cpu.addEventListener('input', () => {
  elements.cpuValue.textContent = `${elements.cpu.value} %`;
  broadcast({ type: 'duty-cycle', value: dutyCycle() });
  session.busy = [];
  session.startedAt = performance.now();
});
elements.pauseHidden.addEventListener('change', applyPause);
elements.pauseBattery.addEventListener('change', applyPause);
document.addEventListener('visibilitychange', applyPause);
// Battery status where the browser tells it (not every browser does).
if (typeof navigator.getBattery === 'function') {
  navigator.getBattery().then((battery) => {
    const update = () => { session.onBattery = !battery.charging; applyPause(); };
    battery.addEventListener('chargingchange', update);
    update();
  }, () => {});
}
elements.stop.addEventListener('click', stop);
elements.joinGroup.addEventListener('click', joinGroup);
elements.declineGroup.addEventListener('click', () => {
  elements.invitation.hidden = true;
  session.invite = undefined;
});
takeInvitation();
if (!('Worker' in window) || typeof WebAssembly !== 'object') {
  elements.start.disabled = true;
  log('this browser lacks Web Workers or WebAssembly, which computing here needs', 'error');
}
setInterval(render, 1000);
setInterval(refreshJobs, 2000);
refreshJobs();
