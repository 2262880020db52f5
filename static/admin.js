// The portal admin's page: signs in with the admin token, then shows the review queue,
// the published jobs, the distributor accounts and volunteers' abuse reports, with the
// actions on each (approve, reject, withdraw, trust, suspend, reinstate, revoke, resolve).
//
// The admin token lives in this module's memory only: never in storage, a cookie or the
// URL, so reloading or closing the page forgets it, and requests send no cookie at all.
// Everything people wrote (titles, descriptions, names, volunteers' messages) goes into the
// page as text, never as markup, so a hostile title stays a string.

import { el } from '/dom.js';

const API = '/api/v1';
/** How often the page asks the server again while visible. */
const REFRESH_MS = 10_000;
/** The server's bounds on a reason (reject, withdraw, suspend, revoke) and on a note. */
const REASON_MIN = 3;
const REASON_MAX = 500;
const NOTE_MAX = 500;

const $ = (id) => document.getElementById(id);

const elements = {
  signedOut: $('signed-out'),
  signedIn: $('signed-in'),
  signinForm: $('signin-form'),
  signinToken: $('signin-token'),
  signinSubmit: $('signin-submit'),
  signinError: $('signin-error'),
  signout: $('signout'),
  refresh: $('refresh'),
  refreshState: $('refresh-state'),
  status: $('admin-status'),
  failure: $('admin-error'),
  queue: $('queue'),
  queueCount: $('queue-count'),
  queueEmpty: $('queue-empty'),
  queueError: $('queue-error'),
  published: $('published'),
  publishedCount: $('published-count'),
  publishedEmpty: $('published-empty'),
  publishedError: $('published-error'),
  accounts: $('accounts'),
  accountsTable: $('accounts-table'),
  accountsCount: $('accounts-count'),
  accountsEmpty: $('accounts-empty'),
  accountsError: $('accounts-error'),
  reports: $('reports'),
  reportsCount: $('reports-count'),
  reportsEmpty: $('reports-empty'),
  reportsError: $('reports-error'),
  reportsResolved: $('reports-resolved'),
};

const admin = {
  /** The admin token, once the server accepted it; memory only. */
  token: null,
  /** Bumped at every sign-in and sign-out, so an answer to an older session is dropped. */
  generation: 0,
  timer: null,
  /** The refresh under way, and whether another was asked for meanwhile. */
  refreshing: null,
  again: false,
  /** Account id → AccountInfo, to name the account that owns a job. */
  accounts: new Map(),
  /** Per section: key → { signature, node, update }, reused while the item is unchanged. */
  views: { queue: new Map(), published: new Map(), accounts: new Map(), reports: new Map() },
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
 * One API request with the admin token (or `token`, while signing in). Answers the parsed
 * JSON, or throws an ApiFailure with the server's error code and message. A token the
 * server stops accepting (a new admin token was made) signs the page out.
 */
async function api(method, path, json, token = admin.token) {
  if (!token) throw new ApiFailure(0, 'signed_out', 'sign in first');
  const headers = { authorization: `Bearer ${token}` };
  if (json !== undefined) headers['content-type'] = 'application/json';
  let response;
  try {
    response = await fetch(`${API}${path}`, {
      method,
      headers,
      body: json === undefined ? undefined : JSON.stringify(json),
      // A distributor's session cookie on this origin has no business here.
      credentials: 'omit',
      cache: 'no-store',
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
    if ((response.status === 401 || response.status === 403) && token === admin.token) {
      signOut('The portal no longer accepts this admin token (was a new one made?). Sign in again.');
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

function plural(count, one, many = `${one}s`) {
  return `${count.toLocaleString()} ${count === 1 ? one : many}`;
}

function showError(target, error) {
  target.textContent = error ? (error.message ?? String(error)) : '';
}

/** “Quoted” for confirmations: a title or name, shortened so the dialog stays readable. */
function quoted(text) {
  const short = text.length > 80 ? `${text.slice(0, 79)}…` : text;
  return `“${short}”`;
}

/** The distributor of a job and the account that owns it, as one line of text. */
function whose(distributor, owner) {
  if (owner === null || owner === undefined) return `from ${distributor} (the portal's own job)`;
  // The job carries the name its account had when it was created; say so if it changed.
  const account = admin.accounts.get(owner);
  const renamed = account && account.name !== distributor ? ` (now ${quoted(account.name)})` : '';
  return `from ${distributor} · account ${owner}${renamed}`;
}

function categoryName(category) {
  const text = String(category ?? 'other').replaceAll('_', ' ');
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** A small definition list of label → value (a string or a node). */
function facts(pairs) {
  return el('dl', { class: 'facts' }, ...pairs.map(([label, value]) => el('div', {},
    el('dt', { text: label }),
    typeof value === 'string' ? el('dd', { text: value }) : el('dd', {}, value))));
}

/**
 * Keeps `container`'s children in the order of `items`. An item whose signature is
 * unchanged keeps its view (so a half-typed reason or an error shown next to an action
 * survives the periodic refresh); `update` refreshes the figures that change all the time.
 */
function syncViews(container, views, items, { key, signature, build }) {
  const next = new Map();
  const nodes = items.map((item) => {
    const id = key(item);
    const sig = signature(item);
    let view = views.get(id);
    if (!view || view.signature !== sig) view = { signature: sig, update: null, ...build(item) };
    view.update?.(item);
    next.set(id, view);
    return view.node;
  });
  // Moves only what is out of place: moving a node would take the focus from a field in it.
  nodes.forEach((node, index) => {
    if (container.children[index] !== node) container.insertBefore(node, container.children[index] ?? null);
  });
  while (container.children.length > nodes.length) container.lastElementChild.remove();
  views.clear();
  for (const [id, view] of next) views.set(id, view);
}

/**
 * A disclosure holding a form that asks why (a reason the server requires for rejecting,
 * withdrawing, suspending or revoking). `act(reason)` runs on submit; its failure is shown
 * in the form, next to the button.
 */
function reasonForm({ id, summary, label, submit, act, minLength = REASON_MIN }) {
  const field = el('textarea', {
    id, required: true, minlength: minLength, maxlength: REASON_MAX, rows: 2,
  });
  const button = el('button', { type: 'submit', class: 'danger small' }, submit);
  const error = el('p', { class: 'form-error', role: 'alert' });
  const form = el('form', { class: 'stacked reason' },
    el('label', { for: id, text: label }), field, button, error);
  form.addEventListener('submit', async (submitted) => {
    submitted.preventDefault();
    error.textContent = '';
    const reason = field.value.trim();
    // Counted as the server counts: in characters, not UTF-16 code units.
    if ([...reason].length < minLength) {
      error.textContent = `Give a reason of at least ${minLength} characters.`;
      field.focus();
      return;
    }
    button.disabled = true;
    try {
      const done = await act(reason);
      if (done !== false) field.value = '';
    } catch (failure) {
      showFailure(error, failure);
    } finally {
      button.disabled = false;
    }
  });
  return el('details', { class: 'reason-form' }, el('summary', { text: summary }), form);
}

/** Runs an action from a button: disables it meanwhile, shows a failure in `error`. */
async function fromButton(button, error, action) {
  error.textContent = '';
  button.disabled = true;
  try {
    await action();
  } catch (failure) {
    showFailure(error, failure);
  } finally {
    button.disabled = false;
  }
}

/**
 * Shows why the server refused an action next to it, then refreshes: a refusal usually means
 * the portal changed meanwhile. If the refresh takes the card away (the job was rejected
 * elsewhere, say), the reason moves to the top of the page so it is not lost with the card.
 */
async function showFailure(error, failure) {
  showError(error, failure);
  const generation = admin.generation;
  await refresh();
  if (!error.isConnected && generation === admin.generation) {
    elements.status.textContent = '';
    elements.failure.textContent = failure.message;
  }
}

/** Says what an action did, at the top of the page (the card it came from may be gone). */
function announce(...parts) {
  elements.failure.textContent = '';
  elements.status.replaceChildren(...parts);
}

// ---------------------------------------------------------------------------------------
// Signing in and out

elements.signinForm.addEventListener('submit', async (submitted) => {
  submitted.preventDefault();
  elements.signinError.textContent = '';
  const token = elements.signinToken.value.trim();
  // A header value must be printable ASCII; anything else is not a token of this portal.
  if (!/^[\x21-\x7e]+$/.test(token)) {
    elements.signinError.textContent = 'That is not an admin token: it looks like cp_admin_ followed by hex digits.';
    return;
  }
  elements.signinSubmit.disabled = true;
  try {
    await api('GET', '/admin/review', undefined, token);
  } catch (failure) {
    const messages = {
      401: 'The portal does not accept this token. Paste the whole admin token (cp_admin_…); '
        + 'if a newer one was made with cyclepool-server admin-token, use that one.',
      403: 'This token belongs to a distributor, not to the portal\'s admin. Use the admin '
        + 'token (cp_admin_…), or sign in on the distributor dashboard.',
    };
    elements.signinError.textContent = messages[failure.status] ?? `Cannot sign in: ${failure.message}`;
    elements.signinToken.select();
    return;
  } finally {
    elements.signinSubmit.disabled = false;
  }
  signIn(token);
});

function signIn(token) {
  admin.token = token;
  admin.generation += 1;
  // The field's value is not storage, but nothing should hold the token longer than needed.
  elements.signinForm.reset();
  elements.signedOut.hidden = true;
  elements.signedIn.hidden = false;
  elements.status.textContent = '';
  elements.failure.textContent = '';
  refresh();
  admin.timer = window.setInterval(() => {
    if (!document.hidden) refresh();
  }, REFRESH_MS);
}

/** Forgets the token and everything shown with it. */
function signOut(message = '') {
  admin.token = null;
  admin.generation += 1;
  window.clearInterval(admin.timer);
  admin.timer = null;
  admin.accounts.clear();
  for (const views of Object.values(admin.views)) views.clear();
  for (const container of [elements.queue, elements.published, elements.accounts, elements.reports]) {
    container.replaceChildren();
  }
  for (const error of [elements.queueError, elements.publishedError, elements.accountsError, elements.reportsError]) {
    error.textContent = '';
  }
  elements.status.textContent = '';
  elements.failure.textContent = '';
  elements.refreshState.textContent = '';
  elements.signedIn.hidden = true;
  elements.signedOut.hidden = false;
  elements.signinError.textContent = message;
  elements.signinToken.focus();
}

elements.signout.addEventListener('click', () => signOut());
elements.refresh.addEventListener('click', () => refresh());
elements.reportsResolved.addEventListener('change', () => refresh());
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && admin.token) refresh();
});

// ---------------------------------------------------------------------------------------
// Loading

/** Asks the server for everything again; a request made meanwhile runs once more after. */
async function refresh() {
  if (!admin.token) return;
  if (admin.refreshing) {
    admin.again = true;
    await admin.refreshing;
    return;
  }
  admin.refreshing = (async () => {
    do {
      admin.again = false;
      await loadAll();
    } while (admin.again && admin.token);
  })();
  try {
    await admin.refreshing;
  } finally {
    admin.refreshing = null;
  }
}

async function loadAll() {
  const generation = admin.generation;
  const open = !elements.reportsResolved.checked;
  const [accounts, queue, jobs, reports] = await Promise.allSettled([
    api('GET', '/admin/accounts'),
    api('GET', '/admin/review'),
    api('GET', '/jobs'),
    api('GET', `/admin/reports?open=${open}`),
  ]);
  if (generation !== admin.generation) return;
  // Accounts first: the other sections name the account that owns each job.
  settle(accounts, elements.accountsError, showAccounts);
  settle(queue, elements.queueError, showQueue);
  settle(jobs, elements.publishedError, (all) => showPublished(all.filter((job) => job.review.state === 'approved')));
  settle(reports, elements.reportsError, (list) => showReports(list, open));
  elements.refreshState.textContent = `Updated ${new Date().toLocaleTimeString()}; refreshes every ${REFRESH_MS / 1000} s.`;
}

function settle(outcome, error, show) {
  if (outcome.status === 'fulfilled') {
    error.textContent = '';
    show(outcome.value);
  } else {
    error.textContent = `Could not load this section: ${outcome.reason.message}`;
  }
}

/** Makes a change, then shows the portal as it now stands (a refused change refreshes in
 * `showFailure`). */
async function change(method, path, json) {
  const result = await api(method, path, json);
  refresh();
  return result;
}

// ---------------------------------------------------------------------------------------
// Review queue

function showQueue(jobs) {
  elements.queueCount.textContent = `(${jobs.length})`;
  elements.queueEmpty.hidden = jobs.length > 0;
  syncViews(elements.queue, admin.views.queue, jobs, {
    key: (job) => job.job_id,
    // The account's name is part of what the card shows.
    signature: (job) => JSON.stringify([job, admin.accounts.get(job.owner)?.name]),
    build: queueCard,
  });
}

function queueCard(job) {
  const error = el('p', { class: 'form-error', role: 'alert' });
  const approve = el('button', {
    type: 'button', class: 'small', 'aria-label': `Approve job ${job.job_id}`,
  }, 'Approve');
  approve.addEventListener('click', () => fromButton(approve, error, async () => {
    const approved = await change('POST', `/admin/jobs/${job.job_id}/approve`);
    const parts = [`Job ${approved.job_id} ${quoted(approved.title)} is published.`];
    if (approved.log_seq !== null && approved.log_seq !== undefined) {
      parts.push(' ', el('a', { href: `/log.html#entry-${approved.log_seq}` }, `Public record #${approved.log_seq}`));
    }
    announce(...parts);
  }));
  const reject = reasonForm({
    id: `reject-${job.job_id}-reason`,
    summary: 'Reject…',
    label: 'Why it is rejected (its distributor sees this)',
    submit: 'Reject job',
    act: async (reason) => {
      const rejected = await change('POST', `/admin/jobs/${job.job_id}/reject`, { reason });
      announce(`Job ${rejected.job_id} ${quoted(rejected.title)} is rejected.`);
    },
  });
  const node = el('article', { class: 'job-card review-card', 'data-job-id': String(job.job_id) },
    el('div', { class: 'job-head' },
      el('h3', { class: 'job-title', text: job.title }),
      el('span', { class: 'status status-paused', text: 'waiting' })),
    el('p', { class: 'muted whose', text: `Job ${job.job_id} ${whose(job.distributor, job.owner)}` }),
    el('p', { class: 'job-description', text: job.description || '(no description)' }),
    facts([
      ['Category', categoryName(job.category)],
      ['Units', job.progress.units.toLocaleString()],
      ['Created', formatTime(job.created_ms)],
      ['Validation', `${plural(job.policy.initial_replicas, 'replica')}, quorum ${job.policy.min_quorum}`],
      ['Volunteers', job.group === null || job.group === undefined ? 'everyone' : `group ${job.group}`],
      ['Declaration', job.signed_by ? el('code', { class: 'key', text: `signed by key ${job.signed_by}` }) : 'not signed'],
      ['Module SHA-256', el('code', { class: 'key', text: job.module_sha256 })],
    ]),
    el('div', { class: 'actions' }, approve, reject),
    error);
  return { node };
}

// ---------------------------------------------------------------------------------------
// Published jobs

function showPublished(jobs) {
  elements.publishedCount.textContent = `(${jobs.length})`;
  elements.publishedEmpty.hidden = jobs.length > 0;
  syncViews(elements.published, admin.views.published, jobs, {
    key: (job) => job.job_id,
    // Progress changes every few seconds and is updated in place; the rest rebuilds the card.
    signature: (job) => JSON.stringify([
      job.title, job.description, job.distributor, job.owner, job.status, job.log_seq,
      job.review, admin.accounts.get(job.owner)?.name,
    ]),
    build: publishedCard,
  });
}

function publishedCard(job) {
  const progress = el('p', { class: 'job-progress' });
  const record = job.log_seq !== null && job.log_seq !== undefined
    ? el('a', { href: `/log.html#entry-${job.log_seq}`, class: 'record-link' }, `Public record #${job.log_seq}`)
    : el('span', { class: 'muted', text: 'not in the public record (published before it existed)' });
  const withdraw = reasonForm({
    id: `withdraw-${job.job_id}-reason`,
    summary: 'Withdraw…',
    label: 'Why it is withdrawn (written to the public record)',
    submit: 'Withdraw job',
    act: async (reason) => {
      if (!window.confirm(`Withdraw job ${job.job_id} ${quoted(job.title)}? It stops being served `
        + 'at once, volunteers\' browsers refuse it from then on, and the withdrawal and its '
        + 'reason are written to the public record.')) return false;
      const withdrawn = await change('POST', `/admin/jobs/${job.job_id}/withdraw`, { reason });
      announce(`Job ${withdrawn.job_id} ${quoted(withdrawn.title)} is withdrawn.`);
      return true;
    },
  });
  const node = el('article', { class: 'job-card published-card', 'data-job-id': String(job.job_id) },
    el('div', { class: 'job-head' },
      el('h3', { class: 'job-title', text: job.title }),
      el('span', { class: `status status-${job.status}`, text: job.status })),
    el('p', { class: 'muted whose', text: `Job ${job.job_id} ${whose(job.distributor, job.owner)}` }),
    progress,
    el('div', { class: 'actions' }, record, withdraw));
  const update = (current) => {
    const p = current.progress;
    progress.textContent = `${p.validated.toLocaleString()} of ${plural(p.units, 'unit')} validated · `
      + `${plural(p.failed, 'failed unit')} · ${plural(p.active_volunteers, 'active volunteer')}`;
  };
  return { node, update };
}

// ---------------------------------------------------------------------------------------
// Distributors

function showAccounts(accounts) {
  admin.accounts = new Map(accounts.map((account) => [account.account_id, account]));
  elements.accountsCount.textContent = `(${accounts.length})`;
  elements.accountsEmpty.hidden = accounts.length > 0;
  elements.accountsTable.hidden = accounts.length === 0;
  syncViews(elements.accounts, admin.views.accounts, accounts, {
    key: (account) => account.account_id,
    signature: (account) => JSON.stringify(account),
    build: accountRow,
  });
}

function accountRow(account) {
  const id = account.account_id;
  const label = `${quoted(account.name)} (account ${id})`;

  const trustError = el('p', { class: 'form-error', role: 'alert' });
  const trusted = el('input', { type: 'checkbox', id: `account-${id}-trusted`, class: 'trusted' });
  trusted.checked = account.trusted;
  trusted.addEventListener('change', async () => {
    trustError.textContent = '';
    trusted.disabled = true;
    try {
      await change('PATCH', `/admin/accounts/${id}`, { trusted: trusted.checked });
      announce(trusted.checked
        ? `${account.name}'s jobs are now published without review.`
        : `${account.name}'s jobs now wait for review.`);
    } catch (failure) {
      trusted.checked = !trusted.checked;
      showFailure(trustError, failure);
    } finally {
      trusted.disabled = false;
    }
  });

  const standingError = el('p', { class: 'form-error', role: 'alert' });
  let standing;
  if (account.suspended) {
    const reinstate = el('button', {
      type: 'button', class: 'secondary small', 'aria-label': `Reinstate ${account.name}`,
    }, 'Reinstate');
    reinstate.addEventListener('click', () => fromButton(reinstate, standingError, async () => {
      await change('PATCH', `/admin/accounts/${id}`, { suspended: false });
      announce(`${account.name} is reinstated; its withdrawn jobs stay withdrawn.`);
    }));
    standing = [el('span', { class: 'standing suspended', text: 'Suspended' }), reinstate];
  } else {
    standing = [el('span', { class: 'standing active', text: 'Active' }), reasonForm({
      id: `suspend-${id}-reason`,
      summary: 'Suspend…',
      label: 'Why it is suspended (written to the public record with each withdrawal)',
      submit: 'Suspend distributor',
      act: async (reason) => {
        if (!window.confirm(`Suspend ${label}? Its published jobs are withdrawn, its queued `
          + 'jobs rejected, and it can no longer sign in or use its tokens.')) return false;
        await change('PATCH', `/admin/accounts/${id}`, { suspended: true, reason });
        announce(`${account.name} is suspended.`);
        return true;
      },
    })];
  }

  const keys = account.keys.length
    ? el('ul', { class: 'keys' }, ...account.keys.map((key) => keyItem(account, key)))
    : el('span', { class: 'muted', text: 'none' });

  const terms = account.terms_accepted === null || account.terms_accepted === undefined
    ? el('span', { class: 'terms missing', text: 'not accepted' })
    : el('span', { class: 'terms', text: `accepted (version ${account.terms_accepted})` });

  const node = el('tr', { 'data-account-id': String(id) },
    el('td', { class: 'who' },
      el('strong', { class: 'account-name', text: account.name }),
      el('div', { class: 'muted', text: `account ${id} · ${account.organisation}` }),
      el('div', { class: 'contact', text: account.contact }),
      el('div', { class: 'muted', text: `registered ${formatTime(account.created_ms)}` })),
    el('td', { class: 'message purpose', text: account.purpose }),
    el('td', {}, terms),
    el('td', {},
      el('label', { class: 'check', for: `account-${id}-trusted` }, trusted, ' Publish without review'),
      trustError),
    el('td', { class: 'standing-cell' }, ...standing, standingError),
    el('td', { class: 'keys-cell' }, keys));
  return { node };
}

function keyItem(account, key) {
  const name = `key ${key.key_id}${key.label ? ` (${key.label})` : ''}`;
  const revoke = key.revoked
    ? el('span', { class: 'standing suspended', text: 'revoked' })
    : reasonForm({
      id: `revoke-${key.key_id}-reason`,
      summary: 'Revoke…',
      label: `Why ${name} is revoked (written to the public record)`,
      submit: 'Revoke key',
      act: async (reason) => {
        if (!window.confirm(`Revoke ${name} of ${quoted(account.name)}? Every job it declared `
          + 'is withdrawn, and volunteers\' browsers refuse them from then on.')) return false;
        await change('POST', `/admin/keys/${key.key_id}/revoke`, { reason });
        announce(`${account.name}'s ${name} is revoked.`);
        return true;
      },
    });
  return el('li', { 'data-key-id': key.key_id },
    el('code', { class: 'key', title: key.public_key, text: key.key_id }),
    key.label ? el('span', { class: 'key-label', text: ` ${key.label}` }) : null,
    el('div', { class: 'muted', text: `added ${formatTime(key.created_ms)}` }),
    revoke);
}

// ---------------------------------------------------------------------------------------
// Abuse reports

const ACTION_NAMES = {
  dismiss: 'dismissed',
  withdraw_job: 'job withdrawn',
  suspend_distributor: 'distributor suspended',
};

function showReports(reports, open) {
  elements.reportsCount.textContent = `(${reports.length}${open ? ' open' : ''})`;
  elements.reportsEmpty.textContent = open ? 'No open abuse report.' : 'No abuse report.';
  elements.reportsEmpty.hidden = reports.length > 0;
  syncViews(elements.reports, admin.views.reports, reports, {
    key: (report) => report.report_id,
    signature: (report) => JSON.stringify([report, admin.accounts.get(report.owner)?.name]),
    build: reportCard,
  });
}

function reportCard(report) {
  const exists = report.job_title !== null && report.job_title !== undefined;
  const title = exists ? report.job_title : `job ${report.job_id} (no longer exists)`;
  const about = exists
    ? `Job ${report.job_id} ${whose(report.distributor, report.owner)}`
    : `Job ${report.job_id}`;
  const children = [
    el('div', { class: 'job-head' },
      el('h3', { class: 'job-title' }, `Report ${report.report_id}: `, el('span', { class: 'report-job', text: title })),
      el('span', {
        class: `status ${report.resolution ? 'status-active' : 'status-cancelled'}`,
        text: report.resolution ? 'resolved' : 'open',
      })),
    el('p', { class: 'muted whose', text: about }),
    el('p', { class: 'muted' }, `Received ${formatTime(report.received_ms)} from volunteer `,
      el('code', { class: 'key', title: report.volunteer, text: `${report.volunteer.slice(0, 16)}…` })),
    el('blockquote', { class: 'report-message', text: report.message || '(no message)' }),
  ];
  if (report.resolution) {
    const { action, note, resolved_ms: resolvedMs } = report.resolution;
    children.push(el('p', {
      class: 'resolution',
      text: `Resolved ${formatTime(resolvedMs)}: ${ACTION_NAMES[action] ?? action}${note ? `. Note: ${note}` : ''}`,
    }));
  } else {
    children.push(resolveForm(report, exists, title));
  }
  return { node: el('article', { class: 'job-card report-card', 'data-report-id': String(report.report_id) }, ...children) };
}

function resolveForm(report, exists, title) {
  const noteId = `report-${report.report_id}-note`;
  const note = el('input', { id: noteId, maxlength: NOTE_MAX, autocomplete: 'off' });
  const error = el('p', { class: 'form-error', role: 'alert' });
  const confirmations = {
    withdraw_job: `Withdraw job ${report.job_id} ${quoted(title)}? It stops being served at once `
      + 'and the withdrawal is written to the public record.',
    suspend_distributor: `Suspend ${report.distributor ?? 'the distributor'} (account ${report.owner}), `
      + `who distributes ${quoted(title)}? All its published jobs are withdrawn, its queued jobs `
      + 'rejected, and it can no longer sign in or use its tokens.',
  };
  const button = (action, text, { danger = false, disabled = false } = {}) => {
    const node = el('button', {
      type: 'button', class: danger ? 'danger small' : 'secondary small', disabled,
      'data-action': action,
    }, text);
    node.addEventListener('click', () => {
      if (confirmations[action] && !window.confirm(confirmations[action])) return;
      fromButton(node, error, async () => {
        await change('POST', `/admin/reports/${report.report_id}/resolve`, { action, note: note.value.trim() });
        announce(`Report ${report.report_id} resolved: ${ACTION_NAMES[action]}.`);
      });
    });
    return node;
  };
  const hasOwner = report.owner !== null && report.owner !== undefined;
  return el('div', { class: 'resolve' },
    el('div', { class: 'field' },
      el('label', { for: noteId, text: 'Note (optional; kept with the decision, and part of the logged reason when a job is withdrawn)' }),
      note),
    el('div', { class: 'actions' },
      button('dismiss', 'Dismiss'),
      button('withdraw_job', 'Withdraw job', { danger: true, disabled: !exists }),
      button('suspend_distributor', 'Suspend distributor', { danger: true, disabled: !hasOwner })),
    error);
}

elements.signinToken.focus();
