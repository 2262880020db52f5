// The portal admin's page in real Chromium against the real server: signing in with the admin
// token (kept in memory only), the review queue (approve, reject), trusting a distributor,
// withdrawing a job from an abuse report, suspending and reinstating a distributor, revoking
// its key; hostile text from distributors and volunteers stays text throughout.
const {
  test, expect, createJobAs, registerDistributor, adminApi, randomVolunteerKey,
} = require('./server');

const XSS_TITLE = '<img src=x onerror="window.__pwned=1">';
const XSS_DESCRIPTION = '<script>window.__pwned=2</script>';
const XSS_MESSAGE = '<img src=x onerror="window.__pwned=3">';
const XSS_NAME = '<b onmouseover="window.__pwned=4">Mallory</b>';
const RANGE = { range: { start: 10, end: 110, step: 10 } };

// Only the jobs each test creates.
test.use({ serverArgs: ['--demo-units', '0'] });

// The page must work under the portal's strict CSP and never throw.
let pageProblems = [];
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

async function signIn(page, server) {
  await page.goto(`${server.url}/admin.html`);
  await page.getByLabel('Admin token').fill(server.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('#signed-in')).toBeVisible();
  await expect(page.locator('#signed-out')).toBeHidden();
}

/** Answers the next confirmation dialog (accepting it unless told otherwise), and records its text. */
function answerConfirm(page, accept = true) {
  return new Promise((resolve) => {
    page.once('dialog', async (dialog) => {
      const text = dialog.message();
      if (accept) await dialog.accept(); else await dialog.dismiss();
      resolve(text);
    });
  });
}

/** Where the token could have been kept by the page. */
async function storedAnywhere(page, token) {
  const state = await page.evaluate(() => ({
    local: JSON.stringify({ ...localStorage }),
    session: JSON.stringify({ ...sessionStorage }),
    cookie: document.cookie,
    url: window.location.href,
    history: window.history.length,
  }));
  const context = await page.context().storageState();
  return [state.local, state.session, state.cookie, state.url, JSON.stringify(context)]
    .filter((text) => text.includes(token));
}

test('the admin signs in with the admin token only, which the page keeps in memory and forgets', async ({ page, server }) => {
  const lab = await registerDistributor(server, 'Token Lab');
  await page.goto(`${server.url}/admin.html`);
  const token = page.getByLabel('Admin token');
  await expect(token).toHaveAttribute('type', 'password');
  await expect(token).toHaveAttribute('autocomplete', 'off');

  // A wrong token and a distributor's token are refused, each with a clear reason.
  await token.fill(`cp_admin_${'0'.repeat(64)}`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.getByRole('alert').filter({ hasText: 'does not accept this token' })).toBeVisible();
  await expect(page.locator('#signed-in')).toBeHidden();
  await token.fill(lab.token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('#signin-error')).toContainText('belongs to a distributor');
  await expect(page.locator('#signed-in')).toBeHidden();

  await token.fill(server.adminToken);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await expect(page.locator('#signed-in')).toBeVisible();
  await expect(page.locator('#accounts tr')).toHaveCount(1);
  await expect(page.locator('#accounts tr')).toContainText('Token Lab');
  // Nothing holds the token but the script's memory: not the field, storage, cookies or URL.
  await expect(token).toHaveValue('');
  expect(await storedAnywhere(page, server.adminToken)).toEqual([]);
  expect(page.url()).toBe(`${server.url}/admin.html`);

  // Signing out forgets it and everything shown with it; reloading asks for it again.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await expect(page.locator('#signed-out')).toBeVisible();
  await expect(page.locator('#accounts tr')).toHaveCount(0);
  await page.reload();
  await expect(page.locator('#signed-out')).toBeVisible();
  await expect(page.locator('#signed-in')).toBeHidden();
  expect(await storedAnywhere(page, server.adminToken)).toEqual([]);
});

test('the review queue: a hostile job stays text, approving publishes it, rejecting tells the distributor why', async ({ page, server }) => {
  const lab = await registerDistributor(server, XSS_NAME, { trusted: false });
  const hostile = await createJobAs(server, lab.token, 'factor', {
    title: XSS_TITLE, description: XSS_DESCRIPTION, inputs: RANGE, category: 'mathematics',
  });
  const dubious = await createJobAs(server, lab.token, 'factor', { title: 'Dubious job', inputs: RANGE });
  expect(hostile.review.state).toBe('pending');
  expect(dubious.review.state).toBe('pending');

  await signIn(page, server);
  const queue = page.locator('#queue');
  const card = queue.locator(`[data-job-id="${hostile.job_id}"]`);
  await expect(queue.locator('article')).toHaveCount(2);
  await expect(card.locator('h3')).toHaveText(XSS_TITLE);
  await expect(card.locator('.job-description')).toHaveText(XSS_DESCRIPTION);
  await expect(card.locator('.whose')).toHaveText(`Job ${hostile.job_id} from ${XSS_NAME} · account ${lab.accountId}`);
  await expect(card).toContainText('Mathematics');
  const { module_sha256: digest } = await adminApi(server, 'GET', `/api/v1/jobs/${hostile.job_id}`);
  await expect(card).toContainText(digest);
  await expect(card.locator('.facts')).toContainText('Units10');
  await expect(page.locator(`#accounts tr[data-account-id="${lab.accountId}"] .account-name`)).toHaveText(XSS_NAME);
  // Published jobs: none yet.
  await expect(page.locator('#published-empty')).toBeVisible();

  // Approve: it leaves the queue, is published with its public-record entry, and is served.
  await card.getByRole('button', { name: 'Approve' }).click();
  await expect(card).toHaveCount(0);
  const published = page.locator(`#published [data-job-id="${hostile.job_id}"]`);
  await expect(published.locator('h3')).toHaveText(XSS_TITLE);
  const approved = await adminApi(server, 'GET', `/api/v1/jobs/${hostile.job_id}`);
  expect(approved.review.state).toBe('approved');
  await expect(published.getByRole('link', { name: `Public record #${approved.log_seq}` }))
    .toHaveAttribute('href', `/log.html#entry-${approved.log_seq}`);
  await expect(page.locator('#admin-status')).toContainText('is published');
  expect((await server.stats()).jobs.map((job) => job.job_id)).toContain(hostile.job_id);

  // Reject the other, with a reason its distributor reads from its own API.
  const other = queue.locator(`[data-job-id="${dubious.job_id}"]`);
  await other.getByText('Reject…').click();
  const reason = 'The module does more than its description says.';
  await other.getByLabel('Why it is rejected').fill(reason);
  await other.getByRole('button', { name: 'Reject job' }).click();
  await expect(other).toHaveCount(0);
  await expect(page.locator('#queue-empty')).toBeVisible();
  const seen = await fetch(`${server.url}/api/v1/jobs/${dubious.job_id}`, { headers: lab.authorization });
  expect(seen.status).toBe(200);
  expect((await seen.json()).review).toEqual({ state: 'rejected', reason });
  expect((await server.stats()).jobs.map((job) => job.job_id)).not.toContain(dubious.job_id);
  await expect(page.locator('#published article')).toHaveCount(1);

  expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
});

test('trusting a distributor with the checkbox publishes its next job without review', async ({ page, server }) => {
  const lab = await registerDistributor(server, 'Careful Lab', { trusted: false });
  const before = await createJobAs(server, lab.token, 'factor', { title: 'Before trust', inputs: RANGE });
  expect(before.review.state).toBe('pending');

  await signIn(page, server);
  const row = page.locator(`#accounts tr[data-account-id="${lab.accountId}"]`);
  await expect(row).toContainText('accepted (version');
  const trusted = row.getByLabel('Publish without review');
  await expect(trusted).not.toBeChecked();
  await trusted.check();
  await expect(page.locator('#admin-status')).toContainText('published without review');
  await expect(row.getByLabel('Publish without review')).toBeChecked();
  const accounts = await adminApi(server, 'GET', '/api/v1/admin/accounts');
  expect(accounts.find((account) => account.account_id === lab.accountId).trusted).toBe(true);

  const after = await createJobAs(server, lab.token, 'factor', { title: 'After trust', inputs: RANGE });
  expect(after.review.state).toBe('approved');
  await page.getByRole('button', { name: 'Refresh now' }).click();
  await expect(page.locator(`#published [data-job-id="${after.job_id}"]`)).toContainText('After trust');
  // Trust does not publish what was already waiting: the admin still decides that one.
  await expect(page.locator(`#queue [data-job-id="${before.job_id}"]`)).toBeVisible();

  // Unchecking it again sends the next job back to the queue.
  await row.getByLabel('Publish without review').uncheck();
  await expect(page.locator('#admin-status')).toContainText('now wait for review');
  const later = await createJobAs(server, lab.token, 'factor', { title: 'After distrust', inputs: RANGE });
  expect(later.review.state).toBe('pending');
});

test('an abuse report shows the volunteer\'s message as text, and "Withdraw job" withdraws the job', async ({ page, server }) => {
  const lab = await registerDistributor(server, 'Reported Lab');
  const job = await createJobAs(server, lab.token, 'factor', { title: 'Suspicious job', inputs: RANGE });
  expect(job.review.state).toBe('approved');
  expect((await fetch(`${server.url}/api/v1/jobs/${job.job_id}/manifest`)).status).toBe(200);
  const reported = await fetch(`${server.url}/api/v1/reports`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      protocol: 1, volunteer: randomVolunteerKey(), job_id: job.job_id, kind: 'abuse', message: XSS_MESSAGE,
    }),
  });
  expect(reported.ok).toBe(true);

  await signIn(page, server);
  const card = page.locator('#reports article');
  await expect(card).toHaveCount(1);
  await expect(card.locator('.report-job')).toHaveText('Suspicious job');
  await expect(card.locator('.report-message')).toHaveText(XSS_MESSAGE);
  await expect(card).toContainText('from Reported Lab');

  // Cancelling the confirmation changes nothing.
  const cancelled = answerConfirm(page, false);
  await card.getByRole('button', { name: 'Withdraw job' }).click();
  expect(await cancelled).toContain('Suspicious job');
  expect((await fetch(`${server.url}/api/v1/jobs/${job.job_id}/manifest`)).status).toBe(200);

  await card.getByLabel('Note').fill('Mines coins, not numbers');
  const confirmed = answerConfirm(page);
  await card.getByRole('button', { name: 'Withdraw job' }).click();
  expect(await confirmed).toContain('Withdraw job');
  await expect(page.locator('#reports article')).toHaveCount(0);
  await expect(page.locator('#reports-empty')).toHaveText('No open abuse report.');
  await expect(page.locator(`#published [data-job-id="${job.job_id}"]`)).toHaveCount(0);
  expect((await fetch(`${server.url}/api/v1/jobs/${job.job_id}/manifest`)).status).toBe(410);
  const withdrawn = await adminApi(server, 'GET', `/api/v1/jobs/${job.job_id}`);
  expect(withdrawn.review.state).toBe('withdrawn');
  expect(withdrawn.review.reason).toContain('Mines coins, not numbers');

  // The resolved report is still there for the record.
  await page.getByLabel('Show resolved reports').check();
  await expect(page.locator('#reports article')).toHaveCount(1);
  await expect(page.locator('#reports .resolution')).toContainText('job withdrawn. Note: Mines coins, not numbers');
  expect(await page.evaluate(() => window.__pwned)).toBeUndefined();
});

test('suspending a distributor locks it out and withdraws its jobs; revoking a key; reinstating', async ({ page, server }) => {
  const lab = await registerDistributor(server, 'Rogue Lab');
  const job = await createJobAs(server, lab.token, 'factor', { title: 'Rogue job', inputs: RANGE });
  const key = await fetch(`${server.url}/api/v1/account/keys`, {
    method: 'POST',
    headers: { ...lab.authorization, 'content-type': 'application/json' },
    body: JSON.stringify({ public_key: randomVolunteerKey(), label: 'release key' }),
  });
  expect(key.status).toBe(201);
  const { key_id: keyId } = await key.json();
  expect((await fetch(`${server.url}/api/v1/jobs`, { headers: lab.authorization })).status).toBe(200);

  await signIn(page, server);
  const row = page.locator(`#accounts tr[data-account-id="${lab.accountId}"]`);
  await expect(row.locator('.standing-cell > .standing')).toHaveText('Active');
  await expect(page.locator(`#published [data-job-id="${job.job_id}"]`)).toBeVisible();

  // Revoke the key, with a reason, after confirming.
  const keyItem = row.locator(`[data-key-id="${keyId}"]`);
  await expect(keyItem).toContainText('release key');
  await keyItem.getByText('Revoke…').click();
  await keyItem.getByLabel('Why key').fill('The key leaked in a public repository.');
  const revokeConfirm = answerConfirm(page);
  await keyItem.getByRole('button', { name: 'Revoke key' }).click();
  expect(await revokeConfirm).toContain(keyId);
  await expect(keyItem.locator('.standing')).toHaveText('revoked');
  await expect(keyItem.getByText('Revoke…')).toHaveCount(0);
  let accounts = await adminApi(server, 'GET', '/api/v1/admin/accounts');
  expect(accounts.find((account) => account.account_id === lab.accountId).keys[0].revoked).toBe(true);

  // Suspend: a reason is required; cancelling the confirmation changes nothing.
  await row.getByText('Suspend…').click();
  const reasonField = row.getByLabel('Why it is suspended');
  await reasonField.fill('Terms broken');
  const cancelled = answerConfirm(page, false);
  await row.getByRole('button', { name: 'Suspend distributor' }).click();
  expect(await cancelled).toContain('Rogue Lab');
  expect((await fetch(`${server.url}/api/v1/jobs`, { headers: lab.authorization })).status).toBe(200);
  await expect(reasonField).toHaveValue('Terms broken');

  const confirmed = answerConfirm(page);
  await row.getByRole('button', { name: 'Suspend distributor' }).click();
  await confirmed;
  await expect(row.locator('.standing-cell > .standing')).toHaveText('Suspended');
  expect((await fetch(`${server.url}/api/v1/jobs`, { headers: lab.authorization })).status).toBe(403);
  await expect(page.locator(`#published [data-job-id="${job.job_id}"]`)).toHaveCount(0);
  expect((await fetch(`${server.url}/api/v1/jobs/${job.job_id}/manifest`)).status).toBe(410);

  // Reinstating lets it back in; its withdrawn job stays withdrawn.
  await row.getByRole('button', { name: 'Reinstate' }).click();
  await expect(row.locator('.standing-cell > .standing')).toHaveText('Active');
  expect((await fetch(`${server.url}/api/v1/jobs`, { headers: lab.authorization })).status).toBe(200);
  accounts = await adminApi(server, 'GET', '/api/v1/admin/accounts');
  expect(accounts.find((account) => account.account_id === lab.accountId).suspended).toBe(false);
  expect((await adminApi(server, 'GET', `/api/v1/jobs/${job.job_id}`)).review.state).toBe('withdrawn');
});

test('the page refreshes by itself; a refused action says why, even when its card goes', async ({ page, server }) => {
  const lab = await registerDistributor(server, 'Racing Lab', { trusted: false });
  const job = await createJobAs(server, lab.token, 'factor', { title: 'Raced job', inputs: RANGE });
  // The page's timers run only when the test moves its clock.
  await page.clock.install();
  await signIn(page, server);
  const card = page.locator(`#queue [data-job-id="${job.job_id}"]`);
  await expect(card).toBeVisible();

  // A reason too short is refused before anything is sent (counted in characters, as the
  // server counts: two emoji are two characters, not four).
  await card.getByText('Reject…').click();
  await card.getByLabel('Why it is rejected').fill('🙅🙅');
  await card.getByRole('button', { name: 'Reject job' }).click();
  await expect(card.getByRole('alert')).toHaveText('Give a reason of at least 3 characters.');
  expect((await adminApi(server, 'GET', `/api/v1/jobs/${job.job_id}`)).review.state).toBe('pending');

  // Elsewhere the distributor is suspended, which rejects its queued job; this page has not
  // refreshed yet, so its Approve is refused, and as the refresh then takes the card away,
  // the server's reason shows at the top of the page.
  await adminApi(server, 'PATCH', `/api/v1/admin/accounts/${lab.accountId}`, { suspended: true, reason: 'Elsewhere' });
  await card.getByRole('button', { name: 'Approve' }).click();
  await expect(card).toHaveCount(0);
  await expect(page.locator('#admin-error')).toContainText('suspended distributor');
  expect((await adminApi(server, 'GET', `/api/v1/jobs/${job.job_id}`)).review.state).toBe('rejected');

  // Reinstated elsewhere, with a new job queued: the page shows both after its next refresh.
  await adminApi(server, 'PATCH', `/api/v1/admin/accounts/${lab.accountId}`, { suspended: false });
  const next = await createJobAs(server, lab.token, 'factor', { title: 'Next job', inputs: RANGE });
  const row = page.locator(`#accounts tr[data-account-id="${lab.accountId}"] .standing-cell > .standing`);
  await page.clock.runFor(3_000);
  await expect(row).toHaveText('Suspended');
  await expect(page.locator(`#queue [data-job-id="${next.job_id}"]`)).toHaveCount(0);
  await page.clock.runFor(10_000);
  await expect(page.locator(`#queue [data-job-id="${next.job_id}"]`)).toContainText('Next job');
  await expect(row).toHaveText('Active');
});
