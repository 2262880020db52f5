// The volunteer page: starts module workers only after the person presses Start,
// aggregates what they report, and stops every one of them on Stop.

import { waitingWork } from '/offline-queue.js';
import {
  loadClient, setText, spawnWorker, startWorker, trustedPortalKeys, volunteerSeed,
} from '/volunteer-common.js';

const RATE_WINDOW_MS = 10_000;
const LOG_LIMIT = 50;
// Credit changes only when the portal accepts a result; every ten seconds is fresh enough.
const CREDIT_POLL_MS = 10_000;
// localStorage: the ids of the jobs the volunteer unchecked (so that new jobs start checked).
const EXCLUDED_JOBS_KEY = 'cyclepool-excluded-jobs';
// localStorage: the job categories the volunteer unchecked.
const EXCLUDED_CATEGORIES_KEY = 'cyclepool-excluded-categories';
// The portal's job categories (shared::distributor::Category), in the order they are listed.
const CATEGORIES = [
  ['mathematics', 'Mathematics'], ['physics', 'Physics'], ['astronomy', 'Astronomy'],
  ['biology', 'Biology'], ['medicine', 'Medicine'], ['climate', 'Climate'],
  ['cryptography', 'Cryptography'], ['computer_science', 'Computer science'], ['art', 'Art'],
  ['other', 'Other'],
];
// The protocol's limit on `exclude_jobs` in one lease request.
const MAX_EXCLUDED_JOBS = 256;
// localStorage: how many seconds of work each worker keeps in hand (the work buffer). The
// client clamps it too; the page shows the value it applies.
const WORK_BUFFER_KEY = 'cyclepool-work-buffer-s';
const WORK_BUFFER_MIN = 1;
const WORK_BUFFER_MAX = 600;
const WORK_BUFFER_DEFAULT = 30;
// Where an older page kept a number of units instead; it means nothing in seconds.
const OLD_PREFETCH_KEY = 'cyclepool-prefetch';
// The throughput chart: the last ten minutes in 15-second bars.
const CHART_WINDOW_MS = 10 * 60_000;
const CHART_BUCKET_MS = 15_000;

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
  runningLog: document.getElementById('running-log'),
  categoryList: document.getElementById('category-list'),
  volunteerId: document.getElementById('volunteer-id'),
  cpu: document.getElementById('cpu'),
  cpuValue: document.getElementById('cpu-value'),
  pauseHidden: document.getElementById('pause-hidden'),
  pauseBattery: document.getElementById('pause-battery'),
  workBuffer: document.getElementById('work-buffer'),
  resultsWaiting: document.getElementById('results-waiting'),
  unitsExpired: document.getElementById('units-expired'),
  busy: document.getElementById('busy'),
  reportOpen: document.getElementById('report-open'),
  reportForm: document.getElementById('report-form'),
  reportReason: document.getElementById('report-reason'),
  invitation: document.getElementById('invitation'),
  joinGroup: document.getElementById('join-group'),
  declineGroup: document.getElementById('decline-group'),
  jobList: document.getElementById('job-list'),
  jobListEmpty: document.getElementById('job-list-empty'),
  credit: document.getElementById('credit'),
  checksPassed: document.getElementById('checks-passed'),
  timeDonated: document.getElementById('time-donated'),
  sessionTime: document.getElementById('session-time'),
  throughput: document.getElementById('throughput'),
  throughputSummary: document.getElementById('throughput-summary'),
};

const session = {
  workers: [],
  unitsDone: 0,
  completions: [], // timestamps (ms) of recent unit completions, for the rate
  busy: [], // [timestamp, compute ms] of recent units, for the processor use
  onBattery: false,
  busyTotalMs: 0, // compute time of every unit this page finished, for "time donated"
  throughput: new Map(), // 15-second bar (performance.now() / CHART_BUCKET_MS) → units done
  excludedJobs: loadExcludedJobs(), // ids of the jobs the volunteer chose not to compute
  excludedCategories: loadExcludedCategories(), // names of the categories left to others
  jobChoices: new Map(), // job id → its list item, checkbox, title and progress elements
  unreachable: new Set(), // indexes of the workers that cannot reach the portal right now
  idle: false, // the last word from the workers was "no work right now"
  waiting: { units: 0, results: 0 }, // what the offline queue (IndexedDB) holds
  unitsExpired: 0, // units dropped without computing because their deadline passed
  portalAnswered: true, // whether the page's own last request to the portal got an answer
};

const BUSY_WINDOW_MS = 5_000;

function log(message, kind = 'info') {
  const item = document.createElement('li');
  item.className = kind;
  // textContent, never innerHTML: messages may quote what the server or a job sent.
  item.textContent = `${new Date().toLocaleTimeString()} ${message}`;
  elements.log.prepend(item);
  while (elements.log.children.length > LOG_LIMIT) elements.log.lastElementChild.remove();
}

// Worker events come several times a second per worker (two per unit). Each one redrew the
// page, and that repainting took a tenth of a core from the units on a 2-core machine; now the
// page is redrawn at most once a second for them and for the timers (the count of waiting
// work, the chart), all in one frame: at four times a second, with the chart and the job list
// drawn apart, the page painted ten frames a second, which took 1.6 % of a core (style, layout,
// paint, raster, compositing) from the units.
const RENDER_INTERVAL_MS = 1000;
let renderTimer;
let lastRenderAt = -Infinity;

function renderSoon() {
  if (renderTimer !== undefined) return;
  const wait = Math.max(0, lastRenderAt + RENDER_INTERVAL_MS - performance.now());
  renderTimer = setTimeout(render, wait);
}

function render() {
  clearTimeout(renderTimer);
  renderTimer = undefined;
  const now = performance.now();
  lastRenderAt = now;
  session.completions = session.completions.filter((t) => now - t <= RATE_WINDOW_MS);
  const windowMs = Math.min(RATE_WINDOW_MS, now - (session.startedAt ?? now)) || RATE_WINDOW_MS;
  const rate = session.workers.length ? (session.completions.length * 1000) / Math.max(windowMs, 1000) : 0;
  setText(elements.unitsDone, String(session.unitsDone));
  setText(elements.rate, `${rate.toFixed(1)} units/s`);
  setText(elements.activeWorkers, String(session.workers.length));
  setText(elements.resultsWaiting, String(session.waiting.results));
  setText(elements.unitsExpired, String(session.unitsExpired));
  showState();
  setText(elements.sessionTime, `this page: ${formatDuration(session.busyTotalMs)} computing`);
  // Processor use: time the workers spent computing over the last few seconds, per worker.
  session.busy = session.busy.filter(([t]) => now - t <= BUSY_WINDOW_MS);
  const running = now - (session.startedAt ?? now);
  if (session.workers.length && running >= 1000 && !isPaused()) {
    const spent = session.busy.reduce((sum, [, ms]) => sum + ms, 0);
    const share = spent / (Math.min(BUSY_WINDOW_MS, running) * session.workers.length);
    setText(elements.busy, `${Math.round(100 * share)} %`);
  } else {
    setText(elements.busy, isPaused() && session.workers.length ? 'paused' : '–');
  }
  drawThroughput();
}

// What the workers are doing, in a word or two (while they run; Stop writes "stopped").
function showState() {
  if (!session.workers.length || session.starting) return;
  let state = 'computing';
  if (isPaused()) {
    state = 'paused';
  } else if (session.unreachable.size) {
    const { results } = session.waiting;
    const where = navigator.onLine === false ? 'offline' : 'portal unreachable';
    state = `${where}: ${results} result${results === 1 ? '' : 's'} waiting`;
  } else if (session.idle) {
    state = 'waiting for work';
  }
  setText(elements.state, state);
}

// Reads how much work the offline queue holds (shared by every worker of this browser).
async function refreshWaiting() {
  if (session.countingWaiting) return;
  session.countingWaiting = true;
  try {
    const waiting = await waitingWork();
    session.waiting = waiting ?? { units: 0, results: 0 };
  } finally {
    session.countingWaiting = false;
  }
  renderSoon();
}

function clampWorkBuffer(value) {
  return Number.isFinite(value)
    ? Math.max(WORK_BUFFER_MIN, Math.min(value, WORK_BUFFER_MAX)) : WORK_BUFFER_DEFAULT;
}

function workBuffer() {
  return clampWorkBuffer(Number.parseInt(elements.workBuffer.value, 10));
}

function loadWorkBuffer() {
  try {
    localStorage.removeItem(OLD_PREFETCH_KEY);
    return clampWorkBuffer(Number.parseInt(localStorage.getItem(WORK_BUFFER_KEY) ?? '', 10));
  } catch {
    return WORK_BUFFER_DEFAULT;
  }
}

function chooseWorkBuffer() {
  const seconds = workBuffer();
  try {
    localStorage.setItem(WORK_BUFFER_KEY, String(seconds));
  } catch {
    // Storage is off or full: the choice still holds for this visit.
  }
  broadcast({ type: 'work-buffer', value: seconds });
}

// The network (or the portal) is back: workers send what waits now rather than at the end of
// their backoff.
function networkBack() {
  broadcast({ type: 'online' });
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
    if (session.workers.length) log(paused ? 'paused' : 'resumed');
    // The busy window restarts, so that time paused does not count as idle.
    session.busy = [];
    session.startedAt = performance.now();
  }
  render();
}

function onWorkerEvent(event, index) {
  switch (event.type) {
    case 'unit-computed': {
      // Computed (and stored): the rate, processor use and chart count computation, which goes
      // on without the network; "units done" waits for the portal's acknowledgement.
      const now = performance.now();
      const busyMs = event.busy_ms ?? event.compute_ms;
      session.idle = false;
      session.completions.push(now);
      session.busy.push([now, busyMs]);
      session.busyTotalMs += busyMs;
      const bar = Math.floor(now / CHART_BUCKET_MS);
      session.throughput.set(bar, (session.throughput.get(bar) ?? 0) + 1);
      break;
    }
    case 'unit-done':
      // Acknowledged by the portal as durable (possibly computed before a reload).
      session.unitsDone += 1;
      break;
    case 'unit-expired':
      session.unitsExpired += 1;
      log(`unit ${event.unit} of job ${event.job_id} skipped: its deadline passed before it could be computed`);
      break;
    case 'result-refused':
      log(`the portal refused the result of unit ${event.unit} of job ${event.job_id}: ${event.message}; it is dropped`, 'error');
      break;
    case 'connection':
      if (event.reachable) session.unreachable.delete(index);
      else session.unreachable.add(index);
      refreshWaiting();
      break;
    case 'queue':
      // Every worker says it; once is enough.
      if (!event.persistent && !session.queueWarned) {
        session.queueWarned = true;
        log(`finished results are kept in memory only (${event.reason}): a reload loses those not yet sent`, 'error');
      }
      break;
    case 'job':
      session.currentJob = event.job_id;
      elements.runningJob.hidden = false;
      elements.runningTitle.textContent = event.title;
      elements.runningDistributor.textContent = event.distributor;
      elements.runningModule.textContent = event.module_sha256;
      elements.runningLog.href = `/log.html#entry-${event.log_seq}`;
      elements.runningLog.textContent = `entry #${event.log_seq}`;
      break;
    case 'refused':
      log(`refused job ${event.job_id}: ${event.reason} (reported to the portal)`, 'error');
      break;
    case 'unit-failed':
      log(`${event.reason} (reported to the portal)`, 'error');
      break;
    case 'idle':
      session.idle = true;
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
  renderSoon();
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
  const count = Math.max(1, Math.min(Number.parseInt(elements.workers.value, 10) || 1, navigator.hardwareConcurrency || 64));
  elements.workers.value = String(count);
  // The workers' threads and scripts load while the page reads the keys; they get nothing to
  // do before that is done.
  const spawned = Array.from({ length: count }, (_, i) => spawnWorker(i, (event) => onWorkerEvent(event, i),
    (message) => log(`worker failed to load: ${message}`, 'error')));
  let trustedKeys;
  try {
    // The client is loaded only now, after the person said yes; the keys are read meanwhile.
    const client = loadClient();
    client.catch(() => {}); // awaited below; a failure is reported there
    [trustedKeys, session.seed] = await Promise.all([
      trustedPortalKeys(client, () => {
        log('the portal cannot be reached; using the keys this browser pinned before', 'error');
      }),
      volunteerSeed(),
    ]);
    session.volunteerId = (await client).volunteer_id(session.seed);
    elements.volunteerId.textContent = session.volunteerId;
  } catch (error) {
    for (const worker of spawned) worker.terminate();
    log(`not starting: ${error?.message ?? error}`, 'error');
    elements.start.disabled = false;
    session.starting = false;
    return;
  }
  session.starting = false;
  session.startedAt = performance.now();
  session.completions = [];
  session.unreachable = new Set();
  session.idle = false;
  for (const worker of spawned) {
    startWorker(worker, {
      seed: session.seed, trustedKeys, dutyCycle: dutyCycle(), paused: isPaused(),
      excludedJobs: [...session.excludedJobs], workBuffer: workBuffer(),
      excludedCategories: [...session.excludedCategories],
    });
    session.workers.push(worker);
  }
  elements.start.disabled = true;
  elements.stop.disabled = false;
  elements.workers.disabled = true;
  session.paused = isPaused();
  log(`started ${count} worker${count === 1 ? '' : 's'} at ${Math.round(dutyCycle() * 100)} % processor use, ${workBuffer()} s of work in hand each`);
  render();
  refreshCredit();
}

function stop() {
  // Terminate at once: a unit cut short is simply re-issued to someone after its deadline.
  for (const worker of session.workers) worker.terminate();
  const count = session.workers.length;
  session.workers = [];
  session.unreachable = new Set();
  elements.start.disabled = false;
  elements.stop.disabled = true;
  elements.workers.disabled = false;
  elements.state.textContent = 'stopped';
  if (count) log('stopped all workers');
  render();
  // Units in hand and results not yet sent stay in this browser for the next Start.
  refreshWaiting();
  // The last results acknowledged before Stop count too.
  refreshCredit();
}

async function refreshJobs() {
  try {
    const response = await fetch('/api/v1/stats');
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const stats = await response.json();
    if (!session.portalAnswered) {
      session.portalAnswered = true;
      networkBack();
    }
    renderJobChoice(stats.jobs);
    const unfinished = stats.jobs.filter((j) => j.done < j.units);
    const job = unfinished.find((j) => !session.excludedJobs.has(j.job_id)) ?? unfinished[0]
      ?? stats.jobs[stats.jobs.length - 1];
    setText(elements.jobTitle, job ? job.title : 'nothing at the moment');
    setText(elements.jobProgress, job ? `${job.done} of ${job.units} units done` : '–');
  } catch (error) {
    session.portalAnswered = false;
    setText(elements.jobProgress, `progress unavailable: ${error.message}`);
  }
}

// The jobs the volunteer unchecked, as remembered in this browser (nothing when storage is off).
function loadExcludedJobs() {
  try {
    const stored = JSON.parse(localStorage.getItem(EXCLUDED_JOBS_KEY) ?? '[]');
    const ids = Array.isArray(stored) ? stored.filter((id) => Number.isSafeInteger(id) && id >= 0) : [];
    return new Set(ids.slice(0, MAX_EXCLUDED_JOBS));
  } catch {
    return new Set();
  }
}

function saveExcludedJobs() {
  try {
    localStorage.setItem(EXCLUDED_JOBS_KEY, JSON.stringify([...session.excludedJobs]));
  } catch {
    // Storage is off or full: the choice still holds for this visit.
  }
}

// Tells running workers; each sends the new list with its next lease request.
function sendExcludedJobs() {
  broadcast({ type: 'exclude-jobs', jobs: [...session.excludedJobs] });
}

function jobTitle(jobId) {
  return session.jobChoices.get(jobId)?.title.textContent || `job ${jobId}`;
}

function chooseJob(jobId, checkbox) {
  if (checkbox.checked) {
    session.excludedJobs.delete(jobId);
  } else if (session.excludedJobs.size >= MAX_EXCLUDED_JOBS) {
    checkbox.checked = true;
    log(`at most ${MAX_EXCLUDED_JOBS} jobs can be left out`, 'error');
    return;
  } else {
    session.excludedJobs.add(jobId);
  }
  saveExcludedJobs();
  sendExcludedJobs();
  const when = session.workers.length ? ' from the next request for work' : '';
  log(checkbox.checked ? `computing "${jobTitle(jobId)}" again${when}` : `leaving "${jobTitle(jobId)}" to others${when}`);
}

function jobChoiceItem(jobId) {
  const item = document.createElement('li');
  const label = document.createElement('label');
  const checkbox = document.createElement('input');
  checkbox.type = 'checkbox';
  checkbox.dataset.jobId = String(jobId);
  checkbox.checked = !session.excludedJobs.has(jobId);
  checkbox.addEventListener('change', () => chooseJob(jobId, checkbox));
  const title = document.createElement('span');
  title.className = 'job-name';
  const progress = document.createElement('span');
  progress.className = 'job-progress';
  // Who distributes it, its category, and its entry in the public record.
  const about = document.createElement('span');
  about.className = 'job-about';
  const record = document.createElement('a');
  record.className = 'job-record';
  label.append(checkbox, ' Compute ', title);
  item.append(label, ' ', progress, ' ', about, ' ', record);
  return { item, checkbox, title, progress, about, record };
}

// Keeps one list item per public job, updated in place (rebuilding it every refresh would
// take the focus from a checkbox being used). Titles are the distributors' text: textContent.
function renderJobChoice(jobs) {
  const listed = new Set(jobs.map((job) => job.job_id));
  for (const [jobId, choice] of session.jobChoices) {
    if (!listed.has(jobId)) {
      choice.item.remove();
      session.jobChoices.delete(jobId);
    }
  }
  for (const job of jobs) {
    let choice = session.jobChoices.get(job.job_id);
    if (!choice) {
      choice = jobChoiceItem(job.job_id);
      session.jobChoices.set(job.job_id, choice);
      // The portal lists jobs by id, so a new job belongs at the end.
      elements.jobList.append(choice.item);
    }
    // Written only where they changed: every DOM write costs the page a frame.
    setText(choice.title, job.title);
    const category = CATEGORIES.find(([name]) => name === job.category)?.[1] ?? job.category;
    setText(choice.about, `by ${job.distributor} · ${category}`
      + (session.excludedCategories.has(job.category) ? ' (category left to others)' : ''));
    if (job.log_seq !== null && job.log_seq !== undefined) {
      const href = `/log.html#entry-${job.log_seq}`;
      if (choice.record.getAttribute('href') !== href) choice.record.href = href;
      setText(choice.record, `public record #${job.log_seq}`);
    }
    setText(choice.progress, job.done >= job.units
      ? `finished (${job.units} units)`
      : `${job.done} of ${job.units} units done`);
  }
  if (elements.jobListEmpty.hidden !== jobs.length > 0) elements.jobListEmpty.hidden = jobs.length > 0;
  setText(elements.jobListEmpty, 'no public jobs at the moment');
  // A job that is gone (finished and removed, cancelled) need not be excluded any more.
  const gone = [...session.excludedJobs].filter((jobId) => !listed.has(jobId));
  if (gone.length) {
    for (const jobId of gone) session.excludedJobs.delete(jobId);
    saveExcludedJobs();
    sendExcludedJobs();
  }
}

// The categories the volunteer unchecked, as remembered in this browser.
function loadExcludedCategories() {
  try {
    const stored = JSON.parse(localStorage.getItem(EXCLUDED_CATEGORIES_KEY) ?? '[]');
    const known = new Set(CATEGORIES.map(([name]) => name));
    return new Set(Array.isArray(stored) ? stored.filter((name) => known.has(name)) : []);
  } catch {
    return new Set();
  }
}

// One checkbox per category; the portal leaves out the unchecked ones' jobs in every lease,
// jobs published later included.
function renderCategoryChoice() {
  for (const [name, label] of CATEGORIES) {
    const item = document.createElement('li');
    const choice = document.createElement('label');
    const checkbox = document.createElement('input');
    checkbox.type = 'checkbox';
    checkbox.dataset.category = name;
    checkbox.checked = !session.excludedCategories.has(name);
    checkbox.addEventListener('change', () => {
      if (checkbox.checked) session.excludedCategories.delete(name);
      else session.excludedCategories.add(name);
      try {
        localStorage.setItem(EXCLUDED_CATEGORIES_KEY, JSON.stringify([...session.excludedCategories]));
      } catch {
        // Storage is off or full: the choice still holds for this visit.
      }
      broadcast({ type: 'exclude-categories', categories: [...session.excludedCategories] });
      const when = session.workers.length ? ' from the next request for work' : '';
      log(checkbox.checked ? `computing ${label} jobs again${when}` : `leaving ${label} jobs to others${when}`);
      refreshJobs();
    });
    choice.append(checkbox, ` ${label}`);
    item.append(choice);
    elements.categoryList.append(item);
  }
}
renderCategoryChoice();

// Another tab of this portal changed the choice: follow it here too.
window.addEventListener('storage', (change) => {
  if (change.key !== EXCLUDED_JOBS_KEY) return;
  session.excludedJobs = loadExcludedJobs();
  for (const [jobId, choice] of session.jobChoices) choice.checkbox.checked = !session.excludedJobs.has(jobId);
  sendExcludedJobs();
});

function formatDuration(ms) {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${String(Math.floor(seconds % 60)).padStart(2, '0')} s`;
  return `${Math.floor(minutes / 60)} h ${String(minutes % 60).padStart(2, '0')} min`;
}

// What the portal credited to this browser's key: results accepted as valid and the compute
// time they took. Asked only once the person pressed Start (the key is not sent before).
async function refreshCredit() {
  const volunteer = session.volunteerId;
  if (!volunteer) return;
  try {
    const response = await fetch(`/api/v1/volunteers/${volunteer}`);
    const answer = await response.json();
    if (!response.ok) throw new Error(answer.error?.message ?? `HTTP ${response.status}`);
    if (answer.volunteer !== session.volunteerId) return;
    elements.credit.textContent = `${answer.credit} result${answer.credit === 1 ? '' : 's'}`;
    elements.checksPassed.textContent = answer.checks_passed
      ? `accepted as valid; ${answer.checks_passed} check${answer.checks_passed === 1 ? '' : 's'} passed`
      : 'accepted as valid';
    elements.timeDonated.textContent = formatDuration(answer.compute_ms);
    if (answer.blacklisted && !session.blacklistShown) {
      session.blacklistShown = true;
      log('the portal caught this key returning a wrong answer and gives it no more work', 'error');
    }
  } catch (error) {
    elements.checksPassed.textContent = `credit unavailable: ${error?.message ?? error}`;
  }
}

// Units per minute in 15-second bars over the last ten minutes, from this page's own
// completions. Redrawn once a second at most; nothing is drawn until a unit is done.
function drawThroughput() {
  const canvas = elements.throughput;
  const bars = CHART_WINDOW_MS / CHART_BUCKET_MS;
  const lastBar = Math.floor(performance.now() / CHART_BUCKET_MS);
  for (const bar of session.throughput.keys()) {
    if (bar <= lastBar - bars) session.throughput.delete(bar);
  }
  const perMinute = 60_000 / CHART_BUCKET_MS;
  const rates = Array.from({ length: bars }, (_, i) => perMinute * (session.throughput.get(lastBar - bars + 1 + i) ?? 0));
  const peak = Math.max(...rates);
  const total = rates.reduce((sum, rate) => sum + rate, 0) / perMinute;
  const summary = peak ? `${total} units, at most ${peak} units/min` : 'none yet';
  setText(elements.throughputSummary, summary);
  // Drawn at the display's resolution, so the bars stay sharp.
  const scale = window.devicePixelRatio || 1;
  const width = Math.max(1, Math.round(canvas.clientWidth * scale));
  const height = Math.max(1, Math.round(canvas.clientHeight * scale));
  // The same bars at the same size are not drawn again (a bar changes every 15 s at most
  // when nothing is computed, with every unit when something is).
  const drawn = `${rates.join(',')} ${width}x${height} ${scale}`;
  if (drawn === session.chartDrawn) return;
  session.chartDrawn = drawn;
  canvas.setAttribute('aria-label', `Units per minute over the last 10 minutes: ${summary}`);
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = canvas.getContext('2d');
  if (!context) return;
  context.clearRect(0, 0, width, height);
  if (!peak) return;
  const style = getComputedStyle(canvas);
  const labelHeight = 16 * scale;
  const slot = width / bars;
  const gap = Math.max(1, Math.round(slot * 0.2));
  context.fillStyle = style.getPropertyValue('--accent').trim() || '#2f7d5b';
  rates.forEach((rate, i) => {
    const barHeight = Math.round(((height - labelHeight) * rate) / peak);
    context.fillRect(Math.round(i * slot), height - barHeight, Math.max(1, Math.round(slot) - gap), barHeight);
  });
  context.fillStyle = style.color;
  context.font = `${11 * scale}px system-ui, sans-serif`;
  context.textBaseline = 'top';
  context.fillText(`${peak} units/min`, 4 * scale, 2 * scale);
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
elements.workBuffer.value = String(loadWorkBuffer());
// Applied while typing; the field shows the clamped value once the person leaves it.
elements.workBuffer.addEventListener('input', chooseWorkBuffer);
elements.workBuffer.addEventListener('change', () => {
  elements.workBuffer.value = String(workBuffer());
  chooseWorkBuffer();
});
window.addEventListener('online', networkBack);
window.addEventListener('offline', render);
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
setInterval(() => { if (session.workers.length) refreshWaiting(); else renderSoon(); }, 1000);
setInterval(refreshJobs, 2000);
setInterval(() => { if (session.workers.length) refreshCredit(); }, CREDIT_POLL_MS);
refreshJobs();
// Work kept from an earlier visit (results not yet sent, units in hand) waits for Start.
waitingWork().then((waiting) => {
  if (!waiting || (!waiting.results && !waiting.units)) return;
  session.waiting = waiting;
  const parts = [];
  if (waiting.results) parts.push(`${waiting.results} finished result${waiting.results === 1 ? '' : 's'}`);
  if (waiting.units) parts.push(`${waiting.units} unit${waiting.units === 1 ? '' : 's'} in hand`);
  log(`${parts.join(' and ')} from an earlier visit ${waiting.results + waiting.units === 1 ? 'is' : 'are'} kept in this browser; Start sends and computes them`);
  render();
});
