// The embed widget (embed.html, framed by embed.js on a registered site): says plainly what
// would run, takes consent only from a click on its own button (this frame is on the portal's
// origin, so the page around it can neither click it nor read it), runs volunteer workers as
// the volunteer page does, crediting the site, and tells the page around it only what happened:
// consent given or withdrawn, started, stopped, units done, errors. Never a key or a secret.
import {
  loadClient, setText, spawnWorker, startWorker, storageAvailable, trustedPortalKeys, visitIdentity,
  volunteerSeed,
} from '/volunteer-common.js';

// The protocol's limit on `exclude_jobs` in one lease request.
const MAX_EXCLUDED_JOBS = 256;
// Public jobs change slowly; a widget on many pages should not poll hard.
const JOBS_POLL_MS = 30_000;
// After an error, is the site still registered? Asked at most this often.
const SITE_CHECK_MS = 30_000;

const elements = Object.fromEntries(['for-site', 'site-name', 'jobs', 'portal-host', 'usage', 'consent-box',
  'consent', 'running', 'state', 'units', 'start', 'stop', 'withdraw', 'message']
  .map((id) => [id.replace(/-(\w)/g, (_, c) => c.toUpperCase()), document.getElementById(id)]));

const config = readConfig(new URLSearchParams(window.location.search));
const framed = window.parent !== window;
const CONSENT_KEY = `cyclepool-embed-consent-${config.site}`;
const STOPPED_KEY = `cyclepool-embed-stopped-${config.site}`;

const session = {
  site: null, // the site as the portal describes it (name, origin, ...)
  consented: stored(CONSENT_KEY) !== null,
  workers: [],
  starting: false,
  generation: 0, // bumped by stop(), so that a start still loading gives up
  units: 0,
  excludedJobs: [],
  distributors: new Map(), // job id → distributor, from its manifest
  siteCheckedAt: 0,
  persistent: false, // whether the key and pinned portal keys are kept (IndexedDB works here)
};

function readConfig(params) {
  const number = (name, fallback, min, max) => {
    const value = Number(params.get(name) ?? fallback);
    return Number.isFinite(value) ? Math.min(max, Math.max(min, value)) : fallback;
  };
  const site = /^[0-9]{1,15}$/.test(params.get('site') ?? '') ? Number(params.get('site')) : null;
  const jobs = params.get('jobs');
  return {
    site,
    throttle: number('throttle', 0.25, 0.1, 1),
    workers: Math.floor(number('workers', 1, 1, navigator.hardwareConcurrency || 1)),
    // null: every public job; else only these.
    jobs: jobs ? jobs.split(',').filter((id) => /^[0-9]{1,15}$/.test(id)).map(Number) : null,
    theme: ['dark', 'auto'].includes(params.get('theme')) ? params.get('theme') : 'light',
  };
}

// localStorage, where the browser allows it in a frame (otherwise consent lasts for this visit).
function stored(key) {
  try { return localStorage.getItem(key); } catch { return null; }
}

function remember(key, value) {
  try {
    if (value === null) localStorage.removeItem(key);
    else localStorage.setItem(key, value);
  } catch {
    // Storage is off: the choice holds for this visit only.
  }
}

function say(text, kind = 'info') {
  // textContent, never innerHTML: messages may quote what the server or a job sent.
  elements.message.textContent = text;
  elements.message.classList.toggle('error', kind === 'error');
}

// Tells the page around the widget what happened, and nobody else: the target is the origin
// the site registered, the only one allowed to frame this page (frame-ancestors).
const outbox = [];
function tell(type, detail = {}) {
  if (!framed) return;
  const message = { cyclepool: 1, type, ...detail };
  if (session.site) window.parent.postMessage(message, session.site.origin);
  else outbox.push(message);
}

// What the page around may ask: start (which only shows the consent prompt until the visitor
// agreed here) and stop. It can never give consent.
window.addEventListener('message', (event) => {
  if (!framed || !session.site || event.source !== window.parent || event.origin !== session.site.origin) return;
  const command = event.data;
  if (!command || command.cyclepool !== 1) return;
  if (command.type === 'start') requestStart();
  else if (command.type === 'stop') stop(false);
});

function requestStart() {
  if (!session.consented) {
    elements.consentBox.classList.add('attention');
    say('This page asks you to lend processor time: press "I agree" if you do.');
    tell('consent-needed');
    return;
  }
  remember(STOPPED_KEY, null);
  start();
}

// Where the browser can tell (IntersectionObserver v2), a consent click counts only while the
// button is drawn as is: not covered, faded or transformed by the page around the frame, which
// could otherwise trick a click meant for something else. null: this browser cannot tell.
let consentVisible = null;
try {
  const observer = new IntersectionObserver((entries) => {
    const entry = entries[entries.length - 1];
    if (typeof entry.isVisible === 'boolean') consentVisible = entry.isVisible;
  }, { trackVisibility: true, delay: 100 });
  observer.observe(elements.consent);
} catch {
  // No visibility tracking here: frame-ancestors (registered sites only) is the guard.
}

function giveConsent(click) {
  if (!click.isTrusted) return;
  if (consentVisible === false) {
    say('The page around this widget covers or fades it, so this click cannot count as your consent.', 'error');
    return;
  }
  session.consented = true;
  remember(CONSENT_KEY, String(Date.now()));
  remember(STOPPED_KEY, null);
  elements.consentBox.classList.remove('attention');
  tell('consent', { consented: true });
  start();
}

function withdrawConsent() {
  stop(false);
  session.consented = false;
  remember(CONSENT_KEY, null);
  remember(STOPPED_KEY, null);
  showConsent();
  tell('consent', { consented: false });
  say('Consent withdrawn: nothing runs here until you agree again.');
}

function showConsent() {
  elements.consentBox.hidden = false;
  elements.running.hidden = true;
}

function showRunning(running) {
  elements.consentBox.hidden = true;
  elements.running.hidden = false;
  elements.start.hidden = running;
  elements.stop.hidden = !running;
  elements.state.textContent = running ? 'starting' : 'stopped';
}

function isPaused() {
  return document.visibilityState === 'hidden';
}

function broadcast(message) {
  for (const worker of session.workers) worker.postMessage(message);
}

async function start() {
  if (session.workers.length || session.starting || !session.consented || !session.site) return;
  session.starting = true;
  const generation = session.generation;
  showRunning(true);
  // The workers' threads and scripts load while the keys are read; they get nothing to do
  // before that is done.
  const spawned = Array.from({ length: config.workers }, (_, i) => spawnWorker(i, onWorkerEvent, (message) => {
    say(`A worker failed to load: ${message}`, 'error');
    tell('error', { message: `a worker failed to load: ${message}` });
  }));
  let command; // the workers' start command
  try {
    // The client is loaded only now, after the visitor said yes; the keys are read meanwhile.
    const client = loadClient();
    client.catch(() => {}); // awaited below; a failure is reported there
    session.persistent = await storageAvailable();
    const identity = session.persistent
      ? await Promise.all([trustedPortalKeys(client), volunteerSeed()]).then(([trustedKeys, seed]) => ({ trustedKeys, seed }))
      : await visitIdentity((await client).pin_portal_keys);
    command = {
      ...identity,
      dutyCycle: config.throttle,
      paused: isPaused(),
      excludedJobs: [...session.excludedJobs],
      // Leases carry the site, so that the validated results are credited to it too.
      site: config.site,
    };
  } catch (error) {
    for (const worker of spawned) worker.terminate();
    session.starting = false;
    if (generation !== session.generation) return;
    showRunning(false);
    say(`Not starting: ${error?.message ?? error}`, 'error');
    tell('error', { message: `not starting: ${error?.message ?? error}` });
    return;
  }
  session.starting = false;
  if (generation !== session.generation) { // stopped while loading
    for (const worker of spawned) worker.terminate();
    return;
  }
  for (const worker of spawned) {
    startWorker(worker, command);
    session.workers.push(worker);
  }
  elements.state.textContent = isPaused() ? 'paused' : 'computing';
  // Without storage (third-party storage blocked), nothing outlives this visit: say so.
  say(session.persistent ? '' : 'This browser keeps nothing for this widget here: it will ask again next visit.');
  tell('started', { workers: config.workers });
}

function stop(byVisitor) {
  session.generation += 1;
  const wasRunning = session.workers.length > 0 || session.starting;
  session.starting = false;
  // Terminated at once: a unit cut short is handed to someone else after its deadline.
  for (const worker of session.workers) worker.terminate();
  session.workers = [];
  if (byVisitor) remember(STOPPED_KEY, '1');
  if (session.consented) showRunning(false);
  if (wasRunning) tell('stopped');
}

function onWorkerEvent(event) {
  switch (event.type) {
    case 'unit-done':
      session.units += 1;
      elements.units.textContent = String(session.units);
      setText(elements.state, 'computing');
      tell('unit', { units: session.units });
      break;
    case 'job':
      say(`Running "${event.title}" by ${event.distributor} (checked against the portal's signature).`);
      break;
    case 'idle':
      elements.state.textContent = 'waiting for work';
      break;
    case 'refused':
      say(`Refused job ${event.job_id}: ${event.reason} (reported to the portal)`, 'error');
      break;
    case 'unit-failed':
      say(`${event.reason} (reported to the portal)`, 'error');
      break;
    case 'error':
    case 'panic':
      say(event.message, 'error');
      tell('error', { message: event.message });
      checkSite();
      break;
    default:
      break;
  }
}

// A revoked site gets no more work (its lease requests are refused): stop, and say why.
async function checkSite() {
  if (Date.now() - session.siteCheckedAt < SITE_CHECK_MS) return;
  session.siteCheckedAt = Date.now();
  try {
    const response = await fetch(`/api/v1/sites/${config.site}`);
    const site = response.status === 404 ? null : await response.json();
    if (response.status === 404 || site?.revoked) {
      stop(false);
      elements.consent.disabled = true;
      elements.start.disabled = true;
      say('This site is no longer registered with the portal, so the widget stopped.', 'error');
    }
  } catch {
    // The portal is unreachable; the workers retry by themselves.
  }
}

async function jobDistributor(jobId) {
  if (!session.distributors.has(jobId)) {
    // For display only: the workers check the manifest's signature before running anything.
    const response = await fetch(`/api/v1/jobs/${jobId}/manifest`);
    const signed = await response.json();
    session.distributors.set(jobId, JSON.parse(signed.manifest).distributor);
  }
  return session.distributors.get(jobId);
}

async function refreshJobs() {
  try {
    const response = await fetch('/api/v1/stats');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const { jobs } = await response.json();
    const chosen = config.jobs ? jobs.filter((job) => config.jobs.includes(job.job_id)) : jobs;
    // Only the chosen jobs run: every other public job is excluded.
    const excluded = config.jobs
      ? jobs.filter((job) => !config.jobs.includes(job.job_id)).map((job) => job.job_id).slice(0, MAX_EXCLUDED_JOBS)
      : [];
    if (excluded.join() !== session.excludedJobs.join()) {
      session.excludedJobs = excluded;
      broadcast({ type: 'exclude-jobs', jobs: excluded });
    }
    const open = chosen.filter((job) => job.done < job.units);
    const shown = await Promise.all(open.slice(0, 2).map(async (job) => {
      const distributor = await jobDistributor(job.job_id).catch(() => null);
      return distributor ? `"${job.title}" (by ${distributor})` : `"${job.title}"`;
    }));
    const more = open.length > 2 ? ` and ${open.length - 2} more` : '';
    elements.jobs.textContent = shown.length
      ? `small pieces of ${shown.join(' and ')}${more}`
      : 'pieces of public computations (none waiting right now)';
  } catch (error) {
    elements.jobs.textContent = 'small pieces of public computations';
    say(`Job list unavailable: ${error?.message ?? error}`, 'error');
  }
}

async function loadSite() {
  const response = await fetch(`/api/v1/sites/${config.site}`);
  const site = await response.json();
  if (!response.ok) throw new Error(site.error?.message ?? `HTTP ${response.status}`);
  if (site.revoked) throw new Error('this site is no longer registered with the portal');
  return site;
}

async function main() {
  if (config.theme !== 'light') document.documentElement.classList.add(config.theme);
  elements.portalHost.textContent = window.location.host;
  const cores = config.workers === 1 ? 'one core' : `${config.workers} cores`;
  elements.usage.textContent = `up to ${Math.round(config.throttle * 100)} % of ${cores}, paused while the tab is hidden`;
  elements.consent.addEventListener('click', giveConsent);
  elements.stop.addEventListener('click', () => stop(true));
  elements.start.addEventListener('click', () => { remember(STOPPED_KEY, null); start(); });
  elements.withdraw.addEventListener('click', withdrawConsent);
  document.addEventListener('visibilitychange', () => {
    broadcast({ type: 'paused', value: isPaused() });
    if (session.workers.length) elements.state.textContent = isPaused() ? 'paused' : 'computing';
  });
  if (typeof WebAssembly !== 'object' || typeof Worker !== 'function' || !('indexedDB' in window)) {
    say('This browser lacks WebAssembly, Web Workers or IndexedDB, which computing here needs.', 'error');
    tell('error', { message: 'missing WebAssembly, Web Workers or IndexedDB' });
    return;
  }
  if (config.site === null) {
    say('This widget needs a site number.', 'error');
    return;
  }
  try {
    session.site = await loadSite();
  } catch (error) {
    say(`The widget cannot run here: ${error?.message ?? error}`, 'error');
    return;
  }
  elements.siteName.textContent = session.site.name;
  elements.forSite.hidden = false;
  for (const message of outbox.splice(0)) window.parent.postMessage(message, session.site.origin);
  await refreshJobs();
  setInterval(refreshJobs, JOBS_POLL_MS);
  elements.consent.disabled = false;
  tell('ready', { consented: session.consented });
  if (session.consented) {
    tell('consent', { consented: true });
    // The visitor agreed on an earlier visit and did not stop it since: carry on.
    if (stored(STOPPED_KEY) === null) start();
    else showRunning(false);
  }
}

main();
