// The distributor dashboard in real Chromium against the real server: register, create a job
// through the form, watch a volunteer page compute it live, download the results; control
// jobs, tokens and groups; and the security properties (hostile text stays text, the session
// cookie is HttpOnly and CSRF-checked, one account never sees another's jobs).
const crypto = require('node:crypto');
const fs = require('node:fs');
const path = require('node:path');
const {
  test, expect, createJobAs, randomVolunteerKey, jobsDir, trustAccount, adminApi,
} = require('./server');

const FACTOR_MODULE = path.join(jobsDir, 'factor.wasm');
const XSS_TITLE = '<img src=x onerror="window.__pwned=1">';
const XSS_DESCRIPTION = '<script>window.__pwned=2</script>';
const XSS_MESSAGE = '<img src=x onerror="window.__pwned=3">';

// Only the jobs each test creates: no demo job competing for the volunteer.
test.use({ serverArgs: ['--demo-units', '0'] });

// The dashboard must work under the portal's strict CSP and never throw: every test fails on
// a CSP violation or an uncaught error in the dashboard page. (A worker runs its tests one at
// a time, so one list per test is enough.)
let pageProblems = [];
// Fixtures are set up in the order named and torn down in reverse: naming the server before
// the page closes the page, and its progress stream, before the server is asked to stop.
test.beforeEach(({ server, page }) => {
  void server;
  pageProblems = [];
  page.on('console', (message) => {
    if (/Content Security Policy|Refused to/i.test(message.text())) pageProblems.push(message.text());
  });
  page.on('pageerror', (error) => pageProblems.push(`uncaught: ${error.message}`));
});
test.afterEach(() => {
  expect(pageProblems).toEqual([]);
});

/** Opens the dashboard, registers through its form and answers the token it showed once. */
async function registerInDashboard(page, server, name = 'Ada Lovelace') {
  await page.goto(`${server.url}/dashboard.html`);
  const form = page.locator('#register-form');
  await form.getByLabel('Name').fill(name);
  await form.getByLabel('Contact').fill('ada@example.org');
  await form.getByLabel('Organisation').fill('Analytical Engines Ltd');
  await form.getByLabel('Purpose').fill('Factoring numbers for a test of the dashboard.');
  await form.getByLabel('I accept the').check();
  await form.getByRole('button', { name: 'Register' }).click();
  const secret = page.locator('#account-secret .secret-value');
  await expect(secret).toHaveValue(/^cp_token_[0-9a-f]{64}$/);
  await expect(page.locator('#account-secret')).toContainText('shown only this once');
  // Signed in with it at once; the terms were accepted with the registration.
  await expect(page.locator('#account-name')).toHaveText(name);
  await expect(page.locator('#stream-state')).toHaveText('live');
  await expect(page.locator('#terms-needed')).toBeHidden();
  // The portal's admin trusts the account, so that its jobs are published at once (the
  // review queue has its own tests in review.spec.js).
  await trustAccount(server, Number(await page.locator('#account-id').textContent()));
  return secret.inputValue();
}

/** Signs in through the dashboard's form with an API token. */
async function signInInDashboard(page, server, token) {
  await page.goto(`${server.url}/dashboard.html`);
  await page.locator('#signin-form').getByLabel('API token').fill(token);
  await page.locator('#signin-form').getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('#signed-in')).toBeVisible();
  await expect(page.locator('#stream-state')).toHaveText('live');
}

/**
 * Fills and submits the job form: a module from jobs/dist, inputs as lines of a file or a
 * range, and optional settings. Answers the new job's id.
 */
async function createJobInForm(page, {
  title, description = '', module = FACTOR_MODULE, lines, range, settings = {}, published = true,
}) {
  const form = page.locator('#job-form');
  await form.getByLabel('Title').fill(title);
  await form.getByLabel('Description').fill(description);
  await form.getByLabel('Job module').setInputFiles(module);
  await expect(page.locator('#module-sha256')).toHaveText(/^[0-9a-f]{64}$/);
  let units;
  if (lines) {
    await form.getByLabel('From a file, one unit per line').check();
    await form.getByLabel(/^Inputs file/).setInputFiles({
      name: 'inputs.txt', mimeType: 'text/plain', buffer: Buffer.from(`${lines.join('\n')}\n`),
    });
    units = lines.length;
  } else {
    await form.getByLabel('A range of numbers').check();
    await form.getByLabel('Start').fill(String(range.start));
    await form.getByLabel('End (exclusive)').fill(String(range.end));
    await form.getByLabel('Step (numbers per unit)').fill(String(range.step));
    units = Math.ceil((range.end - range.start) / range.step);
  }
  await expect(page.locator('#inputs-summary')).toHaveText(new RegExp(`^${units} units?\\b`));
  if (Object.keys(settings).length) {
    await form.getByText('Validation and scheduling').click();
    for (const [label, value] of Object.entries(settings)) {
      const field = form.getByLabel(label, { exact: true });
      if (typeof value === 'boolean') await field.setChecked(value);
      else if ((await field.evaluate((node) => node.tagName)) === 'SELECT') await field.selectOption(value);
      else await field.fill(String(value));
    }
  }
  await form.getByRole('button', { name: 'Create job' }).click();
  const created = page.locator('#job-created');
  const outcome = published ? 'it is published' : 'it waits for the portal\'s review';
  await expect(created).toHaveText(new RegExp(`^Job \\d+ created with ${units} units?; ${outcome}\\.$`));
  return Number((await created.textContent()).match(/^Job (\d+)/)[1]);
}

function jobCard(page, jobId) {
  return page.locator(`#jobs .job-card[data-job-id="${jobId}"]`);
}

/** Opens the volunteer page in a context of its own (another person's browser) and starts it. */
async function startVolunteer(browser, server, { workers = 1, slowRequestsMs = 0 } = {}) {
  const context = await browser.newContext();
  if (slowRequestsMs) {
    // Slows each lease and each batch of results on its way to the server, so that progress
    // rises over several one-second progress events instead of all at once.
    await context.route(/\/api\/v1\/(lease|results|exchange)$/, async (route) => {
      await new Promise((resolve) => setTimeout(resolve, slowRequestsMs));
      await route.continue();
    });
  }
  const page = await context.newPage();
  await page.goto(server.url);
  await page.fill('#workers', String(workers));
  await page.click('#start');
  await expect(page.locator('#state')).not.toHaveText('stopped');
  return { context, page };
}

/** The files of a (ustar) tar archive, checking every header's checksum. */
function untar(archive) {
  const files = new Map();
  let offset = 0;
  while (offset + 512 <= archive.length) {
    const header = archive.subarray(offset, offset + 512);
    if (header.every((byte) => byte === 0)) break;
    const field = (start, length) => header.subarray(start, start + length).toString('latin1').replace(/\0.*$/s, '');
    const stored = Number.parseInt(field(148, 8).trim(), 8);
    const sum = header.reduce((total, byte, i) => total + (i >= 148 && i < 156 ? 32 : byte), 0);
    expect(sum, `checksum of the header at ${offset}`).toBe(stored);
    const prefix = field(345, 155);
    const name = prefix ? `${prefix}/${field(0, 100)}` : field(0, 100);
    const size = Number.parseInt(field(124, 12).trim() || '0', 8);
    files.set(name, archive.subarray(offset + 512, offset + 512 + size));
    offset += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Clicks a download link and answers the downloaded bytes. */
async function download(page, link) {
  const [downloaded] = await Promise.all([page.waitForEvent('download'), link.click()]);
  expect(await downloaded.failure()).toBeNull();
  return fs.readFileSync(await downloaded.path());
}

const sha256 = (bytes) => crypto.createHash('sha256').update(bytes).digest('hex');

/** At a phone's width, nothing makes the page scroll sideways. */
async function expectFitsNarrowScreen(page) {
  const size = page.viewportSize();
  await page.setViewportSize({ width: 360, height: 740 });
  expect(await page.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(360);
  await page.setViewportSize(size);
}

test('register, create a job in the form, watch a volunteer compute it live, download the results', async ({ server, page, browser }) => {
  test.setTimeout(120_000);
  const jobsListRequests = [];
  page.on('request', (request) => {
    if (new URL(request.url()).pathname === '/api/v1/jobs' && request.method() === 'GET') jobsListRequests.push(request.url());
  });
  await registerInDashboard(page, server);
  // Twenty 8-byte lines: each is one unit's input, a little-endian u64 that factor factors.
  const lines = Array.from({ length: 20 }, (_, i) => `unit${String(i).padStart(4, '0')}`);
  const jobId = await createJobInForm(page, {
    title: 'Factor twenty numbers', description: 'Each line of the file\nis a number.', lines,
  });
  const card = jobCard(page, jobId);
  await expect(card.locator('.job-title')).toHaveText('Factor twenty numbers');
  await expect(card.locator('.job-description')).toHaveText('Each line of the file\nis a number.');
  await expect(card.locator('.job-units')).toHaveText('20');
  await expect(card.locator('.job-validated')).toHaveText('0');
  await expect(card.locator('.status')).toHaveText('active');

  const volunteer = await startVolunteer(browser, server, { slowRequestsMs: 300 });
  // The dashboard is not reloaded and does not poll: the counts it shows come from the stream.
  const seen = [];
  let sawThroughput = false;
  await expect.poll(async () => {
    const validated = Number(await card.locator('.job-validated').textContent());
    if (seen.at(-1) !== validated) seen.push(validated);
    if (Number((await card.locator('.job-rate').textContent()).replace(/,/g, '')) > 0) sawThroughput = true;
    return validated;
  }, { timeout: 60_000, intervals: [100] }).toBe(20);
  await volunteer.context.close();
  expect(seen.some((count) => count > 0 && count < 20), `validated counts seen: ${seen}`).toBe(true);
  expect(seen).toEqual([...seen].sort((a, b) => a - b));
  expect(sawThroughput).toBe(true);
  expect(jobsListRequests).toEqual([]);
  await expect(card.locator('.job-progress-text')).toHaveText('20 of 20 units validated (100 %)');
  await expect(card.locator('progress')).toHaveJSProperty('value', 20);
  await expect(card.locator('.status')).toHaveText('finished');
  // The chart has been drawn (some pixels are no longer transparent).
  const inked = await card.locator('canvas.throughput').evaluate((canvas) => {
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    return data.filter((value, i) => i % 4 === 3 && value > 0).length;
  });
  expect(inked).toBeGreaterThan(100);
  await expectFitsNarrowScreen(page);

  // JSON lines: every unit once, its input the line's bytes, its output the factorisation.
  const jsonLines = (await download(page, card.getByRole('link', { name: 'Results (JSON lines)' }))).toString('utf8');
  const results = jsonLines.trim().split('\n').map((line) => JSON.parse(line));
  expect(results.map((result) => result.unit).sort((a, b) => a - b)).toEqual(lines.map((_, i) => i));
  for (const result of results) {
    const input = Buffer.from(result.input, 'base64');
    expect(input.toString('latin1')).toBe(lines[result.unit]);
    const output = Buffer.from(result.output, 'base64');
    expect(sha256(output)).toBe(result.output_sha256);
    let product = 1n;
    for (let i = 0; i < output.length; i += 8) product *= output.readBigUInt64LE(i);
    expect(product).toBe(input.readBigUInt64LE(0));
  }

  // The tar: every unit's raw output, and SHA256SUMS that lists each with its digest.
  const files = untar(await download(page, card.getByRole('link', { name: 'Outputs (tar)' })));
  const byUnit = new Map(results.map((result) => [result.unit, result]));
  for (const [unit, result] of byUnit) {
    const name = `units/${String(unit).padStart(12, '0')}.out`;
    expect(files.has(name), name).toBe(true);
    expect(files.get(name).toString('base64')).toBe(result.output);
  }
  const sums = files.get('SHA256SUMS').toString('utf8').trim().split('\n');
  expect(sums).toHaveLength(20);
  for (const line of sums) {
    const [digest, name] = line.split(/\s+\*?/);
    expect(sha256(files.get(name))).toBe(digest);
  }
  expect([...files.keys()].filter((name) => name.startsWith('units/'))).toHaveLength(20);
});

test('hostile titles, descriptions, names and report messages are shown as text, never run', async ({ server, page, browser }) => {
  test.setTimeout(90_000);
  const name = '<b onmouseover="window.__pwned=4">Mallory</b>';
  await registerInDashboard(page, server, name);
  await expect(page.locator('#account-name')).toHaveText(name);
  const jobId = await createJobInForm(page, {
    title: XSS_TITLE, description: XSS_DESCRIPTION, lines: ['12345678', '87654321'],
  });
  const card = jobCard(page, jobId);
  await expect(card.locator('.job-title')).toHaveText(XSS_TITLE);
  await expect(card.locator('.job-description')).toHaveText(XSS_DESCRIPTION);
  await expect(page.locator('#job-created')).toBeVisible();

  // The volunteer page names the job (and, once it runs it, its distributor) as text too.
  const volunteer = await startVolunteer(browser, server);
  await expect(volunteer.page.locator('#running-title')).toHaveText(XSS_TITLE);
  await expect(volunteer.page.locator('#running-distributor')).toHaveText(name);
  await expect(card.locator('.job-validated')).toHaveText('2', { timeout: 30_000 });
  await volunteer.page.click('#stop');
  await volunteer.page.reload();
  await expect(volunteer.page.locator('#job-title')).toHaveText(XSS_TITLE);

  // A volunteer's report message, in the failures table.
  const reported = await fetch(`${server.url}/api/v1/reports`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      protocol: 1, volunteer: randomVolunteerKey(), job_id: jobId, kind: 'unit_job_error', message: XSS_MESSAGE,
    }),
  });
  expect(reported.status).toBe(200);
  await card.getByRole('button', { name: 'Failures' }).click();
  await expect(card.locator('.failures-table td.message')).toHaveText([XSS_MESSAGE]);
  await expect(card.locator('.failures-table tbody tr td').nth(1)).toHaveText('unit_job_error');

  for (const shown of [page, volunteer.page]) {
    expect(await shown.evaluate(() => window.__pwned)).toBeUndefined();
    // No element was made from the strings: no images at all, and only the page's own scripts.
    expect(await shown.locator('img').count()).toBe(0);
    expect(await shown.evaluate(() => [...document.scripts].every((script) => script.src && !script.text))).toBe(true);
    expect(await shown.locator('b').count()).toBe(0);
  }
  await volunteer.context.close();
});

test('the session is an HttpOnly cookie, state changes need the CSRF token, sign-out ends it', async ({ server, page }) => {
  const token = await registerInDashboard(page, server);
  const { job_id: jobId } = await createJobAs(server, token, 'factor', {
    title: 'Control me', inputs: { list: [Buffer.from('12345678').toString('base64')] },
  });
  const card = jobCard(page, jobId);
  await expect(card.locator('.job-title')).toHaveText('Control me');

  // The cookie exists, but scripts cannot read it; nothing else is kept in the browser.
  const cookies = await page.context().cookies();
  const sessionCookie = cookies.find((cookie) => cookie.name === 'cyclepool_session');
  expect(sessionCookie).toMatchObject({ httpOnly: true, sameSite: 'Strict', path: '/' });
  expect(await page.evaluate(() => document.cookie)).not.toContain('cyclepool_session');
  expect(await page.evaluate(() => [localStorage.length, sessionStorage.length])).toEqual([0, 0]);
  expect(JSON.stringify(await page.context().storageState())).not.toContain(token);

  // With the cookie but without (or with a wrong) CSRF token, nothing changes.
  for (const headers of [{}, { 'x-cyclepool-csrf': 'not-the-token' }]) {
    const answer = await page.evaluate(async ({ id, sent }) => {
      const response = await fetch(`/api/v1/jobs/${id}/pause`, { method: 'POST', headers: sent });
      return { status: response.status, body: await response.json() };
    }, { id: jobId, sent: headers });
    expect(answer.status).toBe(403);
    expect(answer.body.error.code).toBe('csrf_rejected');
  }
  await expect(card.locator('.status')).toHaveText('active');

  // The page's own buttons send it: pause, resume, and cancel only once confirmed.
  await card.getByRole('button', { name: 'Pause' }).click();
  await expect(card.locator('.status')).toHaveText('paused');
  await expect(card.getByRole('button', { name: 'Pause' })).toBeDisabled();
  await card.getByRole('button', { name: 'Resume' }).click();
  await expect(card.locator('.status')).toHaveText('active');
  page.once('dialog', (dialog) => dialog.dismiss());
  await card.getByRole('button', { name: 'Cancel' }).click();
  await expect(card.locator('.status')).toHaveText('active');
  let confirmation = '';
  page.once('dialog', (dialog) => { confirmation = dialog.message(); dialog.accept(); });
  await card.getByRole('button', { name: 'Cancel' }).click();
  await expect(card.locator('.status')).toHaveText('cancelled');
  expect(confirmation).toContain('Control me');
  await expect(card.getByRole('button', { name: 'Resume' })).toBeDisabled();
  const viaApi = await fetch(`${server.url}/api/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${token}` } });
  expect((await viaApi.json()).status).toBe('cancelled');

  // A reload keeps the session (the cookie), and asks the server for the CSRF token again.
  await page.reload();
  await expect(page.locator('#account-name')).toHaveText('Ada Lovelace');
  await expect(jobCard(page, jobId).locator('.status')).toHaveText('cancelled');

  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.locator('#signed-out')).toBeVisible();
  await expect(page.locator('#jobs .job-card')).toHaveCount(0);
  expect(await page.evaluate(async () => (await fetch('/api/v1/jobs')).status)).toBe(401);
  await page.reload();
  await expect(page.locator('#signed-out')).toBeVisible();
  await expect(page.locator('#signed-in')).toBeHidden();
});

test('another account neither sees nor reaches the first account\'s job', async ({ server, page }) => {
  const ownerToken = await registerInDashboard(page, server, 'First Distributor');
  const jobId = await createJobInForm(page, { title: 'Private numbers', lines: ['12345678'] });
  await expect(jobCard(page, jobId)).toBeVisible();
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.locator('#signed-out')).toBeVisible();

  // The second account registers through the API (as its CLI would) and signs in here.
  const second = await page.evaluate(async () => {
    const response = await fetch('/api/v1/accounts', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        name: 'Second Distributor', contact: 'second@example.org', organisation: 'Elsewhere',
        purpose: 'Trying to read what is not mine.',
      }),
    });
    return { status: response.status, body: await response.json() };
  });
  expect(second.status).toBe(201);
  const otherToken = second.body.token.secret;
  await signInInDashboard(page, server, otherToken);
  await expect(page.locator('#account-name')).toHaveText('Second Distributor');
  // Give the stream a few ticks: the job never shows up.
  await page.waitForTimeout(2_500);
  await expect(page.locator('#jobs .job-card')).toHaveCount(0);
  await expect(page.locator('#jobs-empty')).toBeVisible();

  const probes = await page.evaluate(async (id) => {
    const status = async (url) => (await fetch(url)).status;
    const list = await (await fetch('/api/v1/jobs')).json();
    const direct = await fetch(`/api/v1/jobs/${id}`);
    return {
      listed: list.map((job) => job.job_id),
      job: { status: direct.status, code: (await direct.json()).error?.code },
      results: await status(`/api/v1/jobs/${id}/results`),
      tar: await status(`/api/v1/jobs/${id}/results.tar`),
      failures: await status(`/api/v1/jobs/${id}/failures`),
    };
  }, jobId);
  expect(probes).toEqual({
    listed: [], job: { status: 403, code: 'forbidden' }, results: 403, tar: 403, failures: 403,
  });
  // Nor may it change the job, even with its own valid session and CSRF token (the Pause
  // button's path): asked with its API token here, as the page cannot be made to show it.
  const pause = await fetch(`${server.url}/api/v1/jobs/${jobId}/pause`, {
    method: 'POST', headers: { authorization: `Bearer ${otherToken}` },
  });
  expect(pause.status).toBe(403);
  const owner = await fetch(`${server.url}/api/v1/jobs/${jobId}`, { headers: { authorization: `Bearer ${ownerToken}` } });
  expect((await owner.json()).status).toBe('active');
});

test('a range job with policy, priority, weight and group, plus tokens and groups', async ({ server, page, browser }) => {
  const token = await registerInDashboard(page, server);

  // A group: its invitation link is shown once; a volunteer key is added to it.
  await page.locator('#group-form').getByLabel('Name').fill('Lab machines');
  await page.getByRole('button', { name: 'Create group' }).click();
  const invite = page.locator('#group-secret .secret-value');
  await expect(invite).toHaveValue(new RegExp(`^${server.url.replace(/[.]/g, '\\.')}/#join=cp_invite_[0-9a-f]+$`));
  const inviteLink = await invite.inputValue();
  const group = page.locator('#groups .group-card');
  await expect(group.locator('h3')).toHaveText('Lab machines');
  const groupId = Number(await group.getAttribute('data-group-id'));
  const member = randomVolunteerKey();
  await group.getByLabel('Add a volunteer key').fill(member);
  await group.getByRole('button', { name: 'Add' }).click();
  await expect(group.locator('.members code')).toHaveText([member]);
  await page.getByRole('button', { name: 'I have saved it' }).last().click();
  await expect(page.locator('#group-secret')).toBeEmpty();
  // The link works: a volunteer's browser that opens it and agrees becomes a member.
  const volunteer = await browser.newContext();
  const volunteerPage = await volunteer.newPage();
  await volunteerPage.goto(inviteLink);
  await volunteerPage.click('#join-group');
  await expect(volunteerPage.locator('#log')).toContainText('joined the group "Lab machines" of Ada Lovelace');
  await volunteer.close();
  await page.locator('#groups-refresh').click();
  await expect(group.locator('.members code')).toHaveCount(2);

  const jobId = await createJobInForm(page, {
    title: 'A range of numbers',
    range: { start: 1000, end: 1200, step: 10 },
    settings: {
      'Replicas issued at first': 2,
      'Agreeing results needed': 2,
      'Lease time (ms)': 120000,
      'Time budget per unit (ms)': 5000,
      'Spot-check rate (0–1)': 0.1,
      'Server re-execution rate (0–1)': 0.05,
      'Priority (0–9, higher first)': 3,
      'Weight (1–1000)': 7,
      Volunteers: String(groupId),
      'Check results with the module\'s verify where it has one': false,
    },
  });
  const summary = await page.evaluate(async (id) => (await fetch(`/api/v1/jobs/${id}`)).json(), jobId);
  expect(summary).toMatchObject({
    title: 'A range of numbers',
    priority: 3,
    weight: 7,
    group: groupId,
    policy: {
      initial_replicas: 2, min_quorum: 2, lease_ttl_ms: 120000, unit_budget_ms: 5000,
      spot_check_rate: 0.1, reexecution_rate: 0.05, use_verify: false,
    },
    progress: { units: 20 },
  });
  await expect(jobCard(page, jobId).locator('.job-meta')).toContainText(`group ${groupId}`);

  // Tokens: a new one is shown once and works; revoked, it stops working.
  await page.locator('#token-form').getByLabel('Label').fill('CI');
  await page.getByRole('button', { name: 'Create token' }).click();
  const secret = await page.locator('#token-secret .secret-value').inputValue();
  expect(secret).toMatch(/^cp_token_[0-9a-f]{64}$/);
  expect(secret).not.toBe(token);
  const asToken = (bearer) => fetch(`${server.url}/api/v1/account`, { headers: { authorization: `Bearer ${bearer}` } });
  expect((await asToken(secret)).status).toBe(200);
  const row = page.locator('#tokens tr', { hasText: 'CI' });
  await expect(row.locator('.token-state')).toHaveText('active');
  page.once('dialog', (dialog) => dialog.accept());
  await row.getByRole('button', { name: 'Revoke token CI' }).click();
  await expect(row.locator('.token-state')).toHaveText('revoked');
  expect((await asToken(secret)).status).toBe(401);
  // The first token is listed too, and still works.
  await expect(page.locator('#tokens tr')).toHaveCount(2);
  expect((await asToken(token)).status).toBe(200);
  await expectFitsNarrowScreen(page);
});

test('server errors show next to the form, and failures list what volunteers reported', async ({ server, page, browser }) => {
  test.setTimeout(90_000);
  await registerInDashboard(page, server);
  const form = page.locator('#job-form');

  // Not a module: the portal's reason is shown.
  await form.getByLabel('Job module').setInputFiles({ name: 'bad.wasm', mimeType: 'application/wasm', buffer: Buffer.from('not wasm') });
  await expect(page.locator('#module-state')).toHaveText(/^The portal refused the module: .+/);
  await form.getByLabel('Title').fill('Never created');
  await form.getByLabel('A range of numbers').check();
  await form.getByRole('button', { name: 'Create job' }).click();
  await expect(page.locator('#job-error')).not.toBeEmpty();

  // A job the server refuses: its error message appears by the form.
  await form.getByLabel('Job module').setInputFiles(FACTOR_MODULE);
  await expect(page.locator('#module-sha256')).toHaveText(/^[0-9a-f]{64}$/);
  await form.getByLabel('Step (numbers per unit)').fill('0');
  await form.getByRole('button', { name: 'Create job' }).click();
  await expect(page.locator('#job-error')).toHaveText(/\S/);
  const refusal = await page.locator('#job-error').textContent();
  await expect(page.locator('#jobs .job-card')).toHaveCount(0);

  // factor takes 8-byte inputs, so every 16-byte range unit fails in the volunteer's browser.
  const jobId = await createJobInForm(page, { title: 'Wrong inputs for factor', range: { start: 0, end: 50, step: 10 } });
  // Three volunteers (three browsers, three keys): a volunteer whose lease on a unit failed is
  // not given that unit again, so it takes max_error_results (3) different volunteers'
  // failures to give a unit up.
  const volunteers = [];
  for (let i = 0; i < 3; i += 1) volunteers.push(await startVolunteer(browser, server));
  const card = jobCard(page, jobId);
  await card.getByRole('button', { name: 'Failures' }).click();
  await expect(card.locator('.job-failed')).toHaveText('5', { timeout: 45_000 });
  for (const volunteer of volunteers) await volunteer.context.close();
  await card.getByRole('button', { name: 'Refresh' }).click();
  await expect(card.locator('.failed-units')).toHaveText('Units given up on: 0, 1, 2, 3, 4');
  const kinds = await card.locator('.failures-table tbody tr td:nth-child(2)').allTextContents();
  expect(kinds.length).toBe(15);
  expect(new Set(kinds)).toEqual(new Set(['unit_job_error']));
  const units = await card.locator('.failures-table tbody tr td:nth-child(1)').allTextContents();
  expect(new Set(units.map(Number))).toEqual(new Set([0, 1, 2, 3, 4]));
  await expect(card.locator('.failures-table td.message').first()).toContainText('rejected the input');
  await expect(card.locator('.status')).toHaveText('finished');
  expect(refusal).toMatch(/step/i);
});

test('when the progress stream drops, the page says so and picks up again', async ({ server, page }) => {
  test.setTimeout(90_000);
  const token = await registerInDashboard(page, server);
  const { job_id: jobId } = await createJobAs(server, token, 'factor', {
    title: 'Survives a restart', inputs: { list: [Buffer.from('12345678').toString('base64')] },
  });
  await expect(jobCard(page, jobId)).toBeVisible();
  // The server dies at once (no graceful shutdown), and comes back on the same port.
  server.process.kill('SIGKILL');
  await server.exited;
  await expect(page.locator('#stream-state')).toHaveText('reconnecting…');
  await expect(jobCard(page, jobId)).toBeVisible();
  await server.start();
  // The session was stored durably, so the same cookie still signs this page in.
  await expect(page.locator('#stream-state')).toHaveText('live', { timeout: 30_000 });
  await expect(page.locator('#account-name')).toHaveText('Ada Lovelace');
  await jobCard(page, jobId).getByRole('button', { name: 'Pause' }).click();
  await expect(jobCard(page, jobId).locator('.status')).toHaveText('paused');
});

test('the server stops promptly while a dashboard is streaming progress', async ({ server, page }) => {
  await registerInDashboard(page, server);
  // SIGTERM with the dashboard's progress stream open: the server must still exit (a stream
  // that never ends must not hold up a restart).
  const stopped = server.stop().then(() => true);
  const exited = await Promise.race([stopped, new Promise((resolve) => setTimeout(() => resolve(false), 10_000))]);
  expect(exited, 'the server was still running 10 s after SIGTERM').toBe(true);
});

test('terms are accepted before publishing; a job waits for review and shows the admin\'s decision', async ({ server, page }) => {
  // Registered through the API without accepting the terms (as an older CLI would).
  const response = await fetch(`${server.url}/api/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      name: 'Careful Lab', contact: 'careful@example.org', organisation: 'Careful',
      purpose: 'Reading the terms before publishing anything.',
    }),
  });
  expect(response.status).toBe(201);
  const { token } = await response.json();
  await signInInDashboard(page, server, token.secret);
  await expect(page.locator('#review-policy')).toContainText('wait for the portal');
  const terms = page.locator('#terms-needed');
  await expect(terms).toBeVisible();
  await expect(terms.getByRole('link', { name: 'distributor terms' })).toHaveAttribute('href', '/terms.html');
  await terms.getByRole('button', { name: 'I accept the terms' }).click();
  await expect(terms).toBeHidden();

  const first = await createJobInForm(page, { title: 'Needs a look', lines: ['12345'], published: false });
  const second = await createJobInForm(page, { title: 'Looks fine', lines: ['67890'], published: false });
  await expect(jobCard(page, first).locator('.job-review')).toHaveText(/Waiting for the portal's review/);
  // The admin rejects one with a reason and approves the other; the live stream shows both.
  await adminApi(server, 'POST', `/api/v1/admin/jobs/${first}/reject`, { reason: 'Say what the <b>results</b> are for.' });
  const approved = await adminApi(server, 'POST', `/api/v1/admin/jobs/${second}/approve`);
  await expect(jobCard(page, first).locator('.job-review')).toHaveText('Rejected by the portal: Say what the <b>results</b> are for.');
  await expect(jobCard(page, second).locator('.job-review')).toContainText(`Published · public record #${approved.log_seq}`);
  await expect(jobCard(page, second).locator('.job-review a')).toHaveAttribute('href', `/log.html#entry-${approved.log_seq}`);
});
