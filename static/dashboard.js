// The distributor dashboard: registration and sign-in, job creation, live progress over
// Server-Sent Events, pause/resume/cancel, result downloads, failures, API tokens and groups.
//
// The browser holds only an HttpOnly session cookie; the API token is shown once and never
// stored, and the session's CSRF token lives in this module's memory (a reload asks the
// server for it again). Everything that people or the server wrote (titles, names, messages)
// goes into the page as text, never as markup, so a hostile title stays a string.

import { el } from '/dom.js';

const API = '/api/v1';
const CSRF_HEADER = 'x-cyclepool-csrf';
/** The throughput chart shows at most this much of the past. */
const CHART_WINDOW_MS = 15 * 60_000;
/** The current throughput is the average over this much of the past. */
const RATE_WINDOW_MS = 30_000;
/** Progress samples kept per job from the live stream (one a second). */
const LIVE_SAMPLES_KEPT = CHART_WINDOW_MS / 1_000;
/** How long to wait before reopening a progress stream the server ended. */
const STREAM_RETRY_MS = 3_000;

const $ = (id) => document.getElementById(id);

const elements = {
  loading: $('loading'),
  signedOut: $('signed-out'),
  signedIn: $('signed-in'),
  registerForm: $('register-form'),
  registerError: $('register-error'),
  signinForm: $('signin-form'),
  signinToken: $('signin-token'),
  signinError: $('signin-error'),
  accountSecret: $('account-secret'),
  accountName: $('account-name'),
  accountOrganisation: $('account-organisation'),
  reviewPolicy: $('review-policy'),
  termsNeeded: $('terms-needed'),
  acceptTerms: $('accept-terms'),
  termsError: $('terms-error'),
  category: $('job-category'),
  accountId: $('account-id'),
  signout: $('signout'),
  jobForm: $('job-form'),
  jobTitle: $('job-title'),
  jobDescription: $('job-description'),
  jobModule: $('job-module'),
  moduleInfo: $('module-info'),
  moduleSha256: $('module-sha256'),
  moduleBytes: $('module-bytes'),
  moduleVerify: $('module-verify'),
  moduleMemory: $('module-memory'),
  moduleState: $('module-state'),
  inputsKindFile: $('inputs-kind-file'),
  inputsKindRange: $('inputs-kind-range'),
  inputsFileFields: $('inputs-file-fields'),
  inputsRangeFields: $('inputs-range-fields'),
  inputsFile: $('inputs-file'),
  rangeStart: $('range-start'),
  rangeEnd: $('range-end'),
  rangeStep: $('range-step'),
  inputsSummary: $('inputs-summary'),
  initialReplicas: $('policy-initial-replicas'),
  minQuorum: $('policy-min-quorum'),
  leaseTtl: $('policy-lease-ttl'),
  unitBudget: $('policy-unit-budget'),
  spotCheck: $('policy-spot-check'),
  reexecution: $('policy-reexecution'),
  useVerify: $('policy-use-verify'),
  priority: $('job-priority'),
  weight: $('job-weight'),
  group: $('job-group'),
  jobSubmit: $('job-submit'),
  jobError: $('job-error'),
  jobCreated: $('job-created'),
  streamState: $('stream-state'),
  jobs: $('jobs'),
  jobsEmpty: $('jobs-empty'),
  tokenForm: $('token-form'),
  tokenLabel: $('token-label'),
  tokenError: $('token-error'),
  tokenSecret: $('token-secret'),
  tokens: $('tokens'),
  groupForm: $('group-form'),
  groupName: $('group-name'),
  groupError: $('group-error'),
  groupSecret: $('group-secret'),
  groups: $('groups'),
  groupsEmpty: $('groups-empty'),
  groupsRefresh: $('groups-refresh'),
};

const session = {
  /** The session's CSRF token, echoed on every state-changing request; memory only. */
  csrf: null,
  account: null,
  events: null,
  retryTimer: null,
  /** Job id → { summary, view, live: [[client ms, validated]], clockOffset }. */
  jobs: new Map(),
  /** The module chosen in the job form: { file, upload: Promise<ModuleUploaded> }. */
  module: null,
  /** The inputs file chosen in the job form: { file, read: Promise<Uint8Array[]> }. */
  inputs: null,
};

// ---------------------------------------------------------------------------------------
// Talking to the API

class ApiFailure extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * One API request. `json` is sent as JSON, `body` as is (with `contentType`); `bearer` uses
 * a token instead of the session cookie. Answers the parsed JSON (null for no content), or
 * throws an ApiFailure carrying the server's error code and message.
 */
async function api(method, path, { json, body, contentType, bearer } = {}) {
  const headers = {};
  let payload = body;
  if (json !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(json);
  } else if (contentType) {
    headers['content-type'] = contentType;
  }
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  // The cookie alone never changes anything: the server also wants this token, which a
  // page on another origin cannot read.
  if (method !== 'GET' && session.csrf) headers[CSRF_HEADER] = session.csrf;
  let response;
  try {
    response = await fetch(`${API}${path}`, {
      method, headers, body: payload, credentials: 'same-origin', cache: 'no-store',
    });
  } catch (error) {
    throw new ApiFailure(0, 'network', `the portal cannot be reached (${error.message})`);
  }
  const text = await response.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (!response.ok) {
    const failure = new ApiFailure(
      response.status,
      data?.error?.code ?? 'unknown',
      data?.error?.message ?? `the portal answered HTTP ${response.status}`,
    );
    // A 401 on a cookie request means the session ended (expired, or signed out elsewhere).
    if (response.status === 401 && !bearer && session.account) {
      sessionEnded('Your session has ended; sign in again.');
    }
    throw failure;
  }
  return data;
}

// ---------------------------------------------------------------------------------------
// Small DOM helpers (text only: nothing here parses markup)


function formatTime(ms) {
  return new Date(ms).toLocaleString();
}

function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} bytes`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

function formatRate(perMinute) {
  if (perMinute >= 100) return Math.round(perMinute).toLocaleString();
  return perMinute.toFixed(perMinute >= 10 ? 1 : 2);
}

function showError(target, error) {
  target.textContent = error ? (error.message ?? String(error)) : '';
}

/**
 * Shows a secret the server reveals only once (an API token, a group invitation) in `slot`,
 * with a copy button, until the person dismisses it.
 */
function showSecretOnce(slot, { heading, value, notice }) {
  const field = el('input', {
    class: 'secret-value', readonly: true, spellcheck: 'false', 'aria-label': heading,
  });
  field.value = value;
  const copied = el('span', { class: 'muted', role: 'status' });
  const copy = el('button', {
    type: 'button',
    onclick: async () => {
      try {
        await navigator.clipboard.writeText(field.value);
      } catch {
        // No clipboard permission (or an insecure context): copy the selection instead.
        field.select();
        document.execCommand('copy');
      }
      copied.textContent = 'Copied.';
    },
  }, 'Copy');
  const dismiss = el('button', {
    type: 'button', class: 'secondary', onclick: () => slot.replaceChildren(),
  }, 'I have saved it');
  slot.replaceChildren(el('div', { class: 'secret-once', role: 'alert' },
    el('h3', { text: heading }),
    el('p', { text: notice }),
    el('div', { class: 'secret-row' }, field, copy),
    el('div', { class: 'actions' }, dismiss, copied)));
  field.focus();
  field.select();
}

function clearSecrets() {
  for (const slot of [elements.accountSecret, elements.tokenSecret, elements.groupSecret]) {
    slot.replaceChildren();
  }
}

// ---------------------------------------------------------------------------------------
// Sessions

function showSignedOut(message = '') {
  elements.loading.hidden = true;
  elements.signedIn.hidden = true;
  elements.signedOut.hidden = false;
  elements.signinError.textContent = message;
}

function signedIn(info) {
  session.csrf = info.csrf_token;
  session.account = info.account;
  elements.accountName.textContent = info.account.name;
  elements.accountOrganisation.textContent = info.account.organisation;
  elements.accountId.textContent = String(info.account.account_id);
  showAccountStanding(info.account);
  elements.loading.hidden = true;
  elements.signedOut.hidden = true;
  elements.signedIn.hidden = false;
  elements.signinError.textContent = '';
  elements.registerError.textContent = '';
  openProgressStream();
  loadTokens();
  loadGroups();
}

// The version of the distributor terms at /terms.html (shared::distributor::TERMS_VERSION).
const TERMS_VERSION = 1;

/** Whether the account may publish (terms) and whether its jobs wait for review. */
function showAccountStanding(account) {
  elements.termsNeeded.hidden = account.terms_accepted === TERMS_VERSION;
  elements.reviewPolicy.textContent = account.trusted
    ? 'The portal trusts this account: its jobs are published as soon as they are created.'
    : 'New jobs wait for the portal\'s review before volunteers see them.';
}

elements.acceptTerms.addEventListener('click', async () => {
  elements.termsError.textContent = '';
  try {
    const account = await api('POST', '/account/terms', { json: { version: TERMS_VERSION } });
    session.account = account;
    showAccountStanding(account);
  } catch (error) {
    showError(elements.termsError, error);
  }
});

/** Forgets everything about the account: the page is as if freshly loaded, signed out. */
function sessionEnded(message = '') {
  closeProgressStream();
  session.csrf = null;
  session.account = null;
  session.module = null;
  session.inputs = null;
  for (const job of session.jobs.values()) job.view.card.remove();
  session.jobs.clear();
  elements.jobsEmpty.hidden = false;
  elements.tokens.replaceChildren();
  elements.groups.replaceChildren();
  elements.groupsEmpty.hidden = false;
  updateGroupChoices([]);
  elements.jobForm.reset();
  elements.moduleInfo.hidden = true;
  elements.moduleState.textContent = '';
  elements.inputsSummary.textContent = '';
  elements.jobError.textContent = '';
  elements.jobCreated.textContent = '';
  showInputsKind();
  clearSecrets();
  showSignedOut(message);
}

async function signInWith(token) {
  signedIn(await api('POST', '/session', { bearer: token }));
}

async function checkSession() {
  try {
    signedIn(await api('GET', '/session'));
  } catch (error) {
    if (error.status === 401) showSignedOut();
    else if (error.status === 403) showSignedOut(error.message);
    else {
      elements.loading.textContent = `The portal cannot be reached: ${error.message}. Retrying…`;
      setTimeout(checkSession, STREAM_RETRY_MS);
    }
  }
}

elements.registerForm.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  const form = elements.registerForm;
  const button = form.querySelector('button[type=submit]');
  button.disabled = true;
  elements.registerError.textContent = '';
  try {
    const created = await api('POST', '/accounts', {
      json: {
        name: form.elements.name.value.trim(),
        contact: form.elements.contact.value.trim(),
        organisation: form.elements.organisation.value.trim(),
        purpose: form.elements.purpose.value.trim(),
        accept_terms: form.elements.terms.checked,
      },
    });
    form.reset();
    showSecretOnce(elements.accountSecret, {
      heading: 'Your API token',
      value: created.token.secret,
      notice: 'Copy it now: it is shown only this once, and the portal keeps only its hash. '
        + 'It is how you sign in here and how the command-line client acts for you.',
    });
    await signInWith(created.token.secret);
  } catch (error) {
    showError(elements.registerError, error);
  } finally {
    button.disabled = false;
  }
});

elements.signinForm.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  const button = elements.signinForm.querySelector('button[type=submit]');
  button.disabled = true;
  elements.signinError.textContent = '';
  try {
    const token = elements.signinToken.value.trim();
    elements.signinToken.value = '';
    await signInWith(token);
  } catch (error) {
    showError(elements.signinError, error);
  } finally {
    button.disabled = false;
  }
});

elements.signout.addEventListener('click', async () => {
  elements.signout.disabled = true;
  try {
    await api('DELETE', '/session');
    sessionEnded();
  } catch (error) {
    // Already signed out on the server (the 401 handler has shown the sign-in forms).
    if (error.status !== 401) window.alert(`Signing out failed: ${error.message}`);
  } finally {
    elements.signout.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------
// Creating jobs

/** The bytes of each line of a file: one unit each. A final line break ends the last line
 * rather than starting an empty one, and a CR before a line break belongs to the break. */
function splitLines(bytes) {
  const lines = [];
  let start = 0;
  for (let i = 0; i <= bytes.length; i += 1) {
    if (i < bytes.length && bytes[i] !== 0x0a) continue;
    if (i === bytes.length && start === i) break;
    const end = i > start && bytes[i - 1] === 0x0d ? i - 1 : i;
    lines.push(bytes.subarray(start, end));
    start = i + 1;
  }
  return lines;
}

function base64(bytes) {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

const U64_MAX = (1n << 64n) - 1n;

/** A u64 typed in a text field, as a BigInt (JavaScript numbers lose digits above 2^53). */
function parseU64(input, name) {
  const text = input.value.trim();
  if (!/^[0-9]+$/.test(text) || BigInt(text) > U64_MAX) {
    throw new Error(`${name} must be a whole number from 0 to ${U64_MAX}`);
  }
  return BigInt(text);
}

function rangeInputs() {
  return {
    start: parseU64(elements.rangeStart, 'Start'),
    end: parseU64(elements.rangeEnd, 'End'),
    step: parseU64(elements.rangeStep, 'Step'),
  };
}

function inputsKind() {
  return elements.inputsKindRange.checked ? 'range' : 'file';
}

function showInputsKind() {
  const range = inputsKind() === 'range';
  elements.inputsRangeFields.hidden = !range;
  elements.inputsFileFields.hidden = range;
  summariseInputs();
}

async function summariseInputs() {
  const summary = elements.inputsSummary;
  try {
    if (inputsKind() === 'range') {
      const { start, end, step } = rangeInputs();
      const units = step > 0n && end > start ? (end - start + step - 1n) / step : 0n;
      summary.textContent = `${units.toLocaleString()} unit${units === 1n ? '' : 's'}`;
    } else if (session.inputs) {
      const chosen = session.inputs;
      const lines = await chosen.read;
      if (session.inputs !== chosen) return;
      const longest = lines.reduce((most, line) => Math.max(most, line.length), 0);
      summary.textContent = `${lines.length.toLocaleString()} unit${lines.length === 1 ? '' : 's'} `
        + `from ${chosen.file.name} (longest input ${formatBytes(longest)})`;
    } else {
      summary.textContent = '';
    }
  } catch (error) {
    summary.textContent = error.message;
  }
}

async function uploadModule(file) {
  elements.moduleInfo.hidden = true;
  elements.moduleState.classList.remove('error');
  elements.moduleState.textContent = `Uploading ${file.name} for checking…`;
  try {
    const uploaded = await api('PUT', '/modules', { body: file, contentType: 'application/wasm' });
    if (session.module?.file === file) {
      elements.moduleSha256.textContent = uploaded.module_sha256;
      elements.moduleBytes.textContent = formatBytes(uploaded.bytes);
      elements.moduleVerify.textContent = uploaded.has_verify
        ? 'yes: results are checked on arrival' : 'no: results are checked by replication';
      elements.moduleMemory.textContent = `${uploaded.memory_max_pages} pages `
        + `(${formatBytes(uploaded.memory_max_pages * 65536)})`;
      elements.moduleInfo.hidden = false;
      elements.moduleState.textContent = 'The portal checked and stored the module.';
    }
    return uploaded;
  } catch (error) {
    if (session.module?.file === file) {
      elements.moduleState.classList.add('error');
      elements.moduleState.textContent = `The portal refused the module: ${error.message}`;
    }
    throw error;
  }
}

elements.jobModule.addEventListener('change', () => {
  const file = elements.jobModule.files[0];
  session.module = null;
  elements.moduleInfo.hidden = true;
  elements.moduleState.textContent = '';
  if (!file) return;
  session.module = { file, upload: null };
  session.module.upload = uploadModule(file);
  // Shown next to the field already; the form reports it again if submitted.
  session.module.upload.catch(() => {});
});

elements.inputsFile.addEventListener('change', () => {
  const file = elements.inputsFile.files[0];
  session.inputs = file
    ? { file, read: file.arrayBuffer().then((buffer) => splitLines(new Uint8Array(buffer))) }
    : null;
  summariseInputs();
});

for (const input of [elements.inputsKindFile, elements.inputsKindRange]) {
  input.addEventListener('change', showInputsKind);
}
for (const input of [elements.rangeStart, elements.rangeEnd, elements.rangeStep]) {
  input.addEventListener('input', summariseInputs);
}

/** A number field's value, or undefined when it is empty (the server's default then). */
function optionalNumber(input) {
  return input.value.trim() === '' ? undefined : Number(input.value);
}

/** The JSON text of the job request. */
async function jobRequestBody() {
  const module = session.module;
  if (!module) throw new Error('Choose the job\'s module file first.');
  const { module_sha256: moduleSha256 } = await module.upload;
  const request = {
    title: elements.jobTitle.value.trim(),
    description: elements.jobDescription.value,
    module_sha256: moduleSha256,
    policy: {
      initial_replicas: optionalNumber(elements.initialReplicas),
      min_quorum: optionalNumber(elements.minQuorum),
      lease_ttl_ms: optionalNumber(elements.leaseTtl),
      unit_budget_ms: optionalNumber(elements.unitBudget),
      spot_check_rate: optionalNumber(elements.spotCheck),
      reexecution_rate: optionalNumber(elements.reexecution),
      use_verify: elements.useVerify.checked,
    },
    priority: optionalNumber(elements.priority),
    weight: optionalNumber(elements.weight),
    group: elements.group.value === '' ? undefined : Number(elements.group.value),
    category: elements.category.value,
  };
  let inputs;
  if (inputsKind() === 'range') {
    const { start, end, step } = rangeInputs();
    // Written by hand: JSON.stringify cannot write BigInts, and numbers above 2^53 would
    // lose digits. Each is a checked decimal string, so the text is valid JSON.
    inputs = `{"range":{"start":${start},"end":${end},"step":${step}}}`;
  } else {
    const chosen = session.inputs;
    if (!chosen) throw new Error('Choose the inputs file (one unit per line).');
    const lines = await chosen.read;
    if (lines.length === 0) throw new Error(`${chosen.file.name} has no lines, so the job would have no units.`);
    inputs = JSON.stringify({ list: lines.map(base64) });
  }
  return `{"inputs":${inputs},${JSON.stringify(request).slice(1)}`;
}

elements.jobForm.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  elements.jobError.textContent = '';
  elements.jobCreated.textContent = '';
  elements.jobSubmit.disabled = true;
  try {
    const body = await jobRequestBody();
    const created = await api('POST', '/jobs', { body, contentType: 'application/json' });
    elements.jobCreated.textContent = `Job ${created.job_id} created with `
      + `${created.units.toLocaleString()} unit${created.units === 1 ? '' : 's'}`
      + (created.review.state === 'approved' ? '; it is published.' : '; it waits for the portal\'s review.');
    elements.jobTitle.value = '';
    elements.jobDescription.value = '';
    // Shown at once; the progress stream keeps it current from its next tick.
    upsertJob(await api('GET', `/jobs/${created.job_id}`));
  } catch (error) {
    showError(elements.jobError, error);
  } finally {
    elements.jobSubmit.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------
// Live progress

function setStreamState(text, kind) {
  elements.streamState.textContent = text;
  elements.streamState.dataset.state = kind;
}

function openProgressStream() {
  closeProgressStream();
  const source = new EventSource(`${API}/jobs/events`);
  session.events = source;
  setStreamState('connecting…', 'connecting');
  source.addEventListener('open', () => setStreamState('live', 'live'));
  source.addEventListener('jobs', (event) => {
    let jobs;
    try {
      jobs = JSON.parse(event.data);
    } catch {
      return;
    }
    setStreamState('live', 'live');
    renderJobs(jobs);
  });
  source.addEventListener('error', () => {
    if (source !== session.events) return;
    setStreamState('reconnecting…', 'down');
    // EventSource retries a dropped connection by itself; it gives up only when the server
    // answers with an error (401 after the session ended, say). Then look why, and retry.
    if (source.readyState === EventSource.CLOSED) {
      session.events = null;
      session.retryTimer = setTimeout(retryProgressStream, STREAM_RETRY_MS);
    }
  });
}

async function retryProgressStream() {
  session.retryTimer = null;
  if (!session.account) return;
  try {
    await api('GET', '/session');
    openProgressStream();
  } catch (error) {
    // A 401 has signed the page out already; a 403 means the portal suspended the account;
    // anything else (the portal restarting, say) is worth another try.
    if (error.status === 403) sessionEnded(error.message);
    else if (error.status !== 401 && session.account) {
      session.retryTimer = setTimeout(retryProgressStream, STREAM_RETRY_MS);
    }
  }
}

function closeProgressStream() {
  if (session.events) session.events.close();
  session.events = null;
  clearTimeout(session.retryTimer);
  session.retryTimer = null;
}

/** Shows the stream's full list: new jobs appear, changed ones update, gone ones go. */
function renderJobs(summaries) {
  const seen = new Set();
  summaries.forEach((summary, position) => {
    seen.add(summary.job_id);
    const job = upsertJob(summary);
    // Moved only when out of place: moving an element takes the focus from its buttons.
    if (elements.jobs.children[position] !== job.view.card) {
      elements.jobs.insertBefore(job.view.card, elements.jobs.children[position] ?? null);
    }
  });
  for (const [id, job] of session.jobs) {
    if (!seen.has(id)) {
      job.view.card.remove();
      session.jobs.delete(id);
    }
  }
  elements.jobsEmpty.hidden = session.jobs.size > 0;
}

function upsertJob(summary) {
  let job = session.jobs.get(summary.job_id);
  if (!job) {
    job = { summary, view: jobCard(summary.job_id), live: [], clockOffset: Infinity };
    session.jobs.set(summary.job_id, job);
    elements.jobs.prepend(job.view.card);
    elements.jobsEmpty.hidden = true;
  }
  job.summary = summary;
  const now = Date.now();
  job.live.push([now, summary.progress.validated]);
  if (job.live.length > LIVE_SAMPLES_KEPT) job.live.splice(0, job.live.length - LIVE_SAMPLES_KEPT);
  // The history's times are the server's clock. Its newest sample is never younger than
  // now, so the smallest difference seen is the closest estimate of the clocks' offset.
  const newest = summary.progress.history.at(-1);
  if (newest) job.clockOffset = Math.min(job.clockOffset, now - newest.at_ms);
  updateJobCard(job);
  return job;
}

/** Builds the card of one job, with the handles that later updates fill in. */
function jobCard(jobId) {
  const figure = (label, name) => {
    const value = el('dd', { class: `job-${name}`, text: '0' });
    return [el('div', {}, el('dt', { text: label }), value), value];
  };
  const [unitsBox, units] = figure('Units', 'units');
  const [resultsBox, results] = figure('Results', 'results');
  const [validatedBox, validated] = figure('Validated', 'validated');
  const [failedBox, failed] = figure('Failed', 'failed');
  const [leasedBox, leased] = figure('Leased now', 'leased');
  const [volunteersBox, volunteers] = figure('Active volunteers', 'volunteers');
  const [rateBox, rate] = figure('Units / minute', 'rate');
  const title = el('h3', { class: 'job-title', id: `job-${jobId}-title` });
  const status = el('span', { class: 'status' });
  const review = el('p', { class: 'job-review', role: 'status' });
  const description = el('p', { class: 'job-description' });
  const progressText = el('span', { class: 'job-progress-text', id: `job-${jobId}-progress-text` });
  const progress = el('progress', { 'aria-labelledby': `job-${jobId}-progress-text`, max: '1', value: '0' });
  const chart = el('canvas', { class: 'throughput', role: 'img', 'aria-label': 'Throughput chart' });
  const meta = el('p', { class: 'job-meta muted' });
  const error = el('p', { class: 'form-error', role: 'alert' });
  const pause = el('button', { type: 'button', class: 'secondary job-pause' }, 'Pause');
  const resume = el('button', { type: 'button', class: 'secondary job-resume' }, 'Resume');
  const cancel = el('button', { type: 'button', class: 'danger job-cancel' }, 'Cancel');
  const failuresToggle = el('button', {
    type: 'button', class: 'secondary job-failures-toggle', 'aria-expanded': 'false',
    'aria-controls': `job-${jobId}-failures`,
  }, 'Failures');
  const failures = el('div', { class: 'failures', id: `job-${jobId}-failures`, hidden: true });
  const download = (href, label, name, filename) => el('a', {
    class: `button-link ${name}`, href, download: filename,
  }, label);
  const card = el('article', { class: 'job-card', 'data-job-id': String(jobId) },
    el('header', { class: 'job-head' }, title, status),
    review,
    description,
    el('div', { class: 'job-progress' }, progress, progressText),
    el('div', { class: 'job-body' },
      el('dl', { class: 'figures compact' },
        unitsBox, resultsBox, validatedBox, failedBox, leasedBox, volunteersBox, rateBox),
      chart),
    el('div', { class: 'actions' },
      pause, resume, cancel,
      download(`${API}/jobs/${jobId}/results`, 'Results (JSON lines)', 'download-json', `job-${jobId}-results.jsonl`),
      download(`${API}/jobs/${jobId}/results.tar`, 'Outputs (tar)', 'download-tar', `job-${jobId}-results.tar`),
      failuresToggle),
    error,
    failures,
    meta);
  // Every card has the same buttons; their description says which job they act on.
  for (const control of card.querySelectorAll('.actions button, .actions a')) {
    control.setAttribute('aria-describedby', title.id);
  }
  const view = {
    card, title, status, review, description, progress, progressText, chart, meta, error, failures,
    failuresToggle, pause, resume, cancel, units, results, validated, failed, leased, volunteers, rate,
  };
  pause.addEventListener('click', () => changeStatus(jobId, 'pause'));
  resume.addEventListener('click', () => changeStatus(jobId, 'resume'));
  cancel.addEventListener('click', () => changeStatus(jobId, 'cancel'));
  failuresToggle.addEventListener('click', () => {
    const open = failures.hidden;
    failures.hidden = !open;
    failuresToggle.setAttribute('aria-expanded', String(open));
    if (open) loadFailures(jobId);
  });
  return view;
}

function updateJobCard(job) {
  const { summary, view } = job;
  const { progress } = summary;
  view.card.dataset.status = summary.status;
  view.title.textContent = summary.title;
  view.description.textContent = summary.description;
  view.description.hidden = summary.description === '';
  const finished = progress.units > 0 && progress.validated + progress.failed >= progress.units;
  view.status.textContent = summary.status === 'active' && finished ? 'finished' : summary.status;
  view.status.className = `status status-${summary.status}${finished ? ' finished' : ''}`;
  view.units.textContent = progress.units.toLocaleString();
  view.results.textContent = progress.results.toLocaleString();
  view.validated.textContent = progress.validated.toLocaleString();
  view.failed.textContent = progress.failed.toLocaleString();
  view.leased.textContent = progress.leased.toLocaleString();
  view.volunteers.textContent = progress.active_volunteers.toLocaleString();
  view.progress.max = Math.max(progress.units, 1);
  view.progress.value = progress.validated;
  const percent = progress.units ? Math.floor((100 * progress.validated) / progress.units) : 0;
  view.progressText.textContent = `${progress.validated.toLocaleString()} of `
    + `${progress.units.toLocaleString()} units validated (${percent} %)`;
  showReview(view, summary);
  view.pause.disabled = summary.status !== 'active';
  view.resume.disabled = summary.status !== 'paused';
  view.cancel.disabled = summary.status === 'cancelled';
  const details = [
    `Job ${summary.job_id}`,
    `created ${formatTime(summary.created_ms)}`,
    `expires ${formatTime(summary.expires_ms)}`,
    `priority ${summary.priority}, weight ${summary.weight}`,
    `category ${summary.category.replace('_', ' ')}`,
    summary.group === null || summary.group === undefined ? 'open to everyone' : `group ${summary.group}`,
    `${summary.policy.initial_replicas} replica${summary.policy.initial_replicas === 1 ? '' : 's'}, quorum ${summary.policy.min_quorum}`,
    summary.signed_by ? `declaration signed by key ${summary.signed_by}` : 'declaration not signed',
    `module ${summary.module_sha256}`,
  ];
  view.meta.textContent = details.join(' · ');
  const samples = throughputSamples(job);
  const perMinute = currentRate(samples);
  view.rate.textContent = formatRate(perMinute);
  view.chart.setAttribute('aria-label', `Throughput chart: now ${formatRate(perMinute)} units per minute`);
  drawChart(view.chart, samples);
}

/** Where the job stands in the portal's review, and its entry in the public record. */
function showReview(view, summary) {
  const { review } = summary;
  view.card.dataset.review = review.state;
  const texts = {
    approved: 'Published',
    pending: 'Waiting for the portal\'s review: volunteers do not see it yet.',
    rejected: `Rejected by the portal: ${review.reason}`,
    withdrawn: `Withdrawn by the portal: ${review.reason}`,
  };
  const parts = [texts[review.state] ?? review.state];
  view.review.replaceChildren(parts[0]);
  if (summary.log_seq !== null && summary.log_seq !== undefined) {
    view.review.append(' · ', el('a', { href: `/log.html#entry-${summary.log_seq}` },
      `public record #${summary.log_seq}`));
  }
  view.review.className = `job-review review-${review.state}`;
}

async function changeStatus(jobId, action) {
  const job = session.jobs.get(jobId);
  if (!job) return;
  if (action === 'cancel' && !window.confirm(
    `Cancel job ${jobId} (“${job.summary.title}”) for good? No more units will be handed out, `
    + 'results still out will be refused, and a cancelled job cannot be resumed.',
  )) return;
  job.view.error.textContent = '';
  try {
    upsertJob(await api('POST', `/jobs/${jobId}/${action}`));
  } catch (error) {
    showError(job.view.error, error);
  }
}

async function loadFailures(jobId) {
  const job = session.jobs.get(jobId);
  if (!job) return;
  const panel = job.view.failures;
  panel.replaceChildren(el('p', { class: 'muted', text: 'Loading…' }));
  let failures;
  try {
    failures = await api('GET', `/jobs/${jobId}/failures`);
  } catch (error) {
    panel.replaceChildren(el('p', { class: 'form-error', text: error.message }));
    return;
  }
  const refresh = el('button', {
    type: 'button', class: 'secondary small', onclick: () => loadFailures(jobId),
  }, 'Refresh');
  const failed = failures.failed_units.length
    ? `Units given up on: ${failures.failed_units.join(', ')}`
    : 'No unit has been given up on.';
  const rows = failures.reports.map((report) => el('tr', {},
    el('td', { text: report.unit === null || report.unit === undefined ? '–' : String(report.unit) }),
    el('td', { text: report.kind }),
    el('td', { class: 'message', text: report.message }),
    el('td', {}, el('code', { class: 'key', title: report.volunteer, text: `${report.volunteer.slice(0, 12)}…` })),
    el('td', { text: formatTime(report.received_ms) })));
  const reports = rows.length
    ? el('div', { class: 'table-wrap' }, el('table', { class: 'failures-table' },
      el('caption', { text: `Reports from volunteers' browsers (${rows.length}, newest first)` }),
      el('thead', {}, el('tr', {},
        ...['Unit', 'Kind', 'Message', 'Volunteer', 'Received'].map((name) => el('th', { scope: 'col', text: name })))),
      el('tbody', {}, ...rows)))
    : el('p', { class: 'muted', text: 'No volunteer has reported a problem with this job.' });
  panel.replaceChildren(el('div', { class: 'section-head' }, el('p', { class: 'failed-units', text: failed }), refresh), reports);
}

// ---------------------------------------------------------------------------------------
// Throughput

/** Validated units over time on this browser's clock: the server's history (a sample every
 * few seconds, from before this page opened) merged with the stream's (one a second). */
function throughputSamples(job) {
  const offset = Number.isFinite(job.clockOffset) ? job.clockOffset : 0;
  const samples = job.summary.progress.history.map((sample) => [sample.at_ms + offset, sample.validated]);
  samples.push(...job.live);
  samples.sort((a, b) => a[0] - b[0]);
  // Validated units never decrease; where the two clocks' estimated offset puts a history
  // sample after a newer live one, the larger count stands.
  let most = 0;
  return samples.map(([at, validated]) => {
    most = Math.max(most, validated);
    return [at, most];
  });
}

/** Validated units at time `t`, interpolated between samples. */
function validatedAt(samples, t) {
  if (t <= samples[0][0]) return samples[0][1];
  for (let i = 1; i < samples.length; i += 1) {
    const [t1, v1] = samples[i];
    if (t <= t1) {
      const [t0, v0] = samples[i - 1];
      return t1 === t0 ? v1 : v0 + ((v1 - v0) * (t - t0)) / (t1 - t0);
    }
  }
  return samples.at(-1)[1];
}

function currentRate(samples) {
  if (samples.length < 2) return 0;
  const now = samples.at(-1)[0];
  const from = Math.max(samples[0][0], now - RATE_WINDOW_MS);
  if (now - from < 1_000) return 0;
  return Math.max(0, ((samples.at(-1)[1] - validatedAt(samples, from)) * 60_000) / (now - from));
}

/** Draws units per minute over time as a filled step chart. */
function drawChart(canvas, samples) {
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (!width || !height) return;
  const ratio = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * ratio) || canvas.height !== Math.round(height * ratio)) {
    canvas.width = Math.round(width * ratio);
    canvas.height = Math.round(height * ratio);
  }
  const context = canvas.getContext('2d');
  context.setTransform(ratio, 0, 0, ratio, 0, 0);
  context.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  const accent = getComputedStyle(document.documentElement).getPropertyValue('--accent').trim() || '#2f7d5b';
  context.font = `11px ${style.fontFamily}`;
  context.fillStyle = style.color;
  if (samples.length < 2) {
    context.fillText('throughput appears once units are validated', 6, height / 2);
    return;
  }
  const now = samples.at(-1)[0];
  const span = Math.min(CHART_WINDOW_MS, Math.max(60_000, now - samples[0][0]));
  const from = now - span;
  // Buckets of at least five seconds smooth the one-second steps of whole units into a
  // readable rate; at most one per six pixels.
  const buckets = Math.max(1, Math.min(Math.floor(width / 6), Math.floor(span / 5_000)));
  const bucketMs = span / buckets;
  const rates = [];
  for (let i = 0; i < buckets; i += 1) {
    const start = from + i * bucketMs;
    const end = start + bucketMs;
    const known = end > samples[0][0];
    const units = known ? validatedAt(samples, end) - validatedAt(samples, Math.max(start, samples[0][0])) : 0;
    rates.push(Math.max(0, (units * 60_000) / bucketMs));
  }
  const top = Math.max(...rates, 1);
  const plotTop = 16;
  const plotHeight = height - plotTop - 14;
  const x = (i) => (i / buckets) * width;
  const y = (rate) => plotTop + plotHeight - (rate / top) * plotHeight;
  context.beginPath();
  context.moveTo(0, y(0));
  rates.forEach((rate, i) => {
    context.lineTo(x(i), y(rate));
    context.lineTo(x(i + 1), y(rate));
  });
  context.lineTo(width, y(0));
  context.closePath();
  context.globalAlpha = 0.25;
  context.fillStyle = accent;
  context.fill();
  context.globalAlpha = 1;
  context.strokeStyle = accent;
  context.lineWidth = 1.5;
  context.stroke();
  context.fillStyle = style.color;
  context.textBaseline = 'top';
  context.fillText(`${formatRate(top)} units/min`, 4, 2);
  context.textBaseline = 'bottom';
  const minutes = Math.round(span / 60_000);
  context.fillText(`${minutes} min ago`, 4, height);
  context.textAlign = 'right';
  context.fillText('now', width - 4, height);
  context.textAlign = 'left';
}

window.addEventListener('resize', () => {
  for (const job of session.jobs.values()) drawChart(job.view.chart, throughputSamples(job));
});

// ---------------------------------------------------------------------------------------
// API tokens

async function loadTokens() {
  let tokens;
  try {
    tokens = await api('GET', '/tokens');
  } catch (error) {
    showError(elements.tokenError, error);
    return;
  }
  elements.tokens.replaceChildren(...tokens.map((token) => el('tr', { 'data-token-id': String(token.token_id) },
    el('td', { text: token.label }),
    el('td', { text: formatTime(token.created_ms) }),
    el('td', { class: 'token-state', text: token.revoked ? 'revoked' : 'active' }),
    el('td', {}, el('button', {
      type: 'button',
      class: 'danger small',
      disabled: token.revoked,
      'aria-label': `Revoke token ${token.label}`,
      onclick: () => revokeToken(token),
    }, 'Revoke')))));
}

async function revokeToken(token) {
  if (!window.confirm(`Revoke the token “${token.label}”? Programs using it stop working at once.`)) return;
  elements.tokenError.textContent = '';
  try {
    await api('DELETE', `/tokens/${token.token_id}`);
  } catch (error) {
    showError(elements.tokenError, error);
  }
  loadTokens();
}

elements.tokenForm.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  elements.tokenError.textContent = '';
  try {
    const created = await api('POST', '/tokens', { json: { label: elements.tokenLabel.value.trim() } });
    elements.tokenForm.reset();
    showSecretOnce(elements.tokenSecret, {
      heading: `New API token “${created.info.label}”`,
      value: created.secret,
      notice: 'Copy it now: it is shown only this once. Send it as `Authorization: Bearer <token>`.',
    });
  } catch (error) {
    showError(elements.tokenError, error);
  }
  loadTokens();
});

// ---------------------------------------------------------------------------------------
// Volunteer groups

async function loadGroups() {
  let groups;
  try {
    groups = await api('GET', '/groups');
  } catch (error) {
    showError(elements.groupError, error);
    return;
  }
  elements.groups.replaceChildren(...groups.map(groupCard));
  elements.groupsEmpty.hidden = groups.length > 0;
  updateGroupChoices(groups);
}

/** Offers the account's groups in the job form, keeping the current choice. */
function updateGroupChoices(groups) {
  const chosen = elements.group.value;
  elements.group.replaceChildren(
    el('option', { value: '' }, 'Everyone'),
    ...groups.map((group) => el('option', { value: String(group.group_id) },
      `Members of “${group.name}” (group ${group.group_id})`)),
  );
  if (groups.some((group) => String(group.group_id) === chosen)) elements.group.value = chosen;
}

function groupCard(group) {
  const error = el('p', { class: 'form-error', role: 'alert' });
  const keyField = el('input', {
    id: `group-${group.group_id}-key`,
    required: true,
    pattern: '[0-9a-fA-F]{64}',
    spellcheck: 'false',
    placeholder: '64 hex digits',
  });
  const add = el('form', { class: 'inline-form' },
    el('label', { for: `group-${group.group_id}-key`, text: 'Add a volunteer key' }),
    keyField,
    el('button', { type: 'submit', class: 'small' }, 'Add'));
  add.addEventListener('submit', async (submitted) => {
    submitted.preventDefault();
    try {
      await api('POST', `/groups/${group.group_id}/members`, {
        json: { volunteers: [keyField.value.trim().toLowerCase()] },
      });
      loadGroups();
    } catch (error_) {
      showError(error, error_);
    }
  });
  const members = group.members.length
    ? el('ul', { class: 'members' }, ...group.members.map((member) => el('li', {},
      el('code', { class: 'key', text: member }),
      el('button', {
        type: 'button',
        class: 'secondary small',
        'aria-label': `Remove volunteer ${member} from the group`,
        onclick: async () => {
          try {
            await api('DELETE', `/groups/${group.group_id}/members/${member}`);
            loadGroups();
          } catch (error_) {
            showError(error, error_);
          }
        },
      }, 'Remove'))))
    : el('p', { class: 'muted', text: 'No members yet.' });
  return el('article', { class: 'group-card', 'data-group-id': String(group.group_id) },
    el('h3', { text: group.name }),
    el('p', { class: 'muted', text: `Group ${group.group_id}, created ${formatTime(group.created_ms)}, `
      + `${group.members.length} member${group.members.length === 1 ? '' : 's'}` }),
    members,
    add,
    error);
}

// Volunteers join through the invitation link at any time: this shows who has since.
elements.groupsRefresh.addEventListener('click', () => {
  elements.groupError.textContent = '';
  loadGroups();
});

elements.groupForm.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  elements.groupError.textContent = '';
  try {
    const created = await api('POST', '/groups', { json: { name: elements.groupName.value.trim() } });
    elements.groupForm.reset();
    showSecretOnce(elements.groupSecret, {
      heading: `Invitation link for “${created.group.name}”`,
      value: `${window.location.origin}/#join=${encodeURIComponent(created.invite)}`,
      notice: 'Send this link to the volunteers you want in the group: opening it offers to '
        + 'join. It is shown only this once; anyone with it can join.',
    });
  } catch (error) {
    showError(elements.groupError, error);
  }
  loadGroups();
});

// ---------------------------------------------------------------------------------------

showInputsKind();
checkSession();
