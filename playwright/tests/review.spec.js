// The portal's due diligence seen from a volunteer's browser: a job waiting for review is
// served to no one; once approved it runs, and the page links its entry in the public record,
// which the browser verifies; a job whose declaring key was revoked is refused even when its
// old manifest is replayed, because the public record says so.
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const {
  test, expect, createJob, createJobAs, reports, adminApi, registerDistributor, cliBin, jobsDir,
  leaseRequestOf, leaseAnswerOf,
} = require('./server');

test.use({ serverArgs: ['--demo-units', '0'] });

/** Records the job of every unit leased to the page's workers, and counts the answers. */
function watchLeases(page) {
  const leased = [];
  leased.answers = 0;
  page.context().on('response', async (response) => {
    if (!leaseRequestOf(response.request())) return;
    try {
      const answer = leaseAnswerOf(new URL(response.url()).pathname, await response.json());
      leased.answers += 1;
      for (const lease of answer?.leases ?? []) leased.push(lease.job_id);
    } catch {
      // A response whose body is gone (the test ended) holds no lease we need.
    }
  });
  return leased;
}

test('a job waiting for review is served to no one; approved, it runs and its public record verifies', async ({ page, server }) => {
  const lab = await registerDistributor(server, 'Unreviewed Lab', { trusted: false });
  const created = await createJobAs(server, lab.token, 'factor', {
    title: 'Unreviewed factoring', inputs: { range: { start: 10, end: 2_010, step: 1 } },
  });
  expect(created.review.state).toBe('pending');
  const jobId = created.job_id;

  const leased = watchLeases(page);
  await page.goto(server.url);
  await page.click('#start');
  // Workers ask and get nothing: the only job waits for review.
  await expect.poll(() => leased.answers, { timeout: 15_000 }).toBeGreaterThanOrEqual(2);
  expect(leased).not.toContain(jobId);
  await expect(page.locator('#job-list')).not.toContainText('Unreviewed factoring');
  const manifest = await fetch(`${server.url}/api/v1/jobs/${jobId}/manifest`);
  expect(manifest.status).toBe(404);

  // The admin approves it: published, logged, and the running workers take it up.
  const approved = await adminApi(server, 'POST', `/api/v1/admin/jobs/${jobId}/approve`);
  expect(approved.review.state).toBe('approved');
  await expect(page.locator('#running-title')).toHaveText('Unreviewed factoring', { timeout: 30_000 });
  expect(leased).toContain(jobId);
  const link = page.locator('#running-log');
  await expect(link).toHaveAttribute('href', `/log.html#entry-${approved.log_seq}`);
  await page.click('#stop');

  // The public record, verified in the browser, shows the entry the page linked.
  await link.click();
  await expect(page.locator('#verdict')).toHaveAttribute('data-state', 'verified');
  await expect(page.locator('#verdict')).toContainText('every link and signature checked');
  const row = page.locator(`#entry-${approved.log_seq}`);
  await expect(row).toContainText('Unreviewed factoring');
  await expect(row).toContainText('Unreviewed Lab');
  await expect(row).toHaveClass(/target/);
});

test('a job whose declaring key was revoked is refused, even from a replayed manifest', async ({ page, server }) => {
  // A carrier job whose leases an attacker rewrites to name the revoked job.
  await createJob(server, 'factor', { title: 'Carrier', inputs: { range: { start: 10, end: 5_010, step: 1 } } });
  const lab = await registerDistributor(server, 'Signing Lab');
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'cyclepool-cli-'));
  const env = {
    ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, 'config'),
    CYCLEPOOL_PORTAL: server.url, CYCLEPOOL_TOKEN: lab.token,
  };
  const cli = (...args) => execFileSync(cliBin, args, { env, encoding: 'utf8' });
  cli('keygen');
  cli('key', 'register', '--label', 'release');
  const submitted = JSON.parse(cli('--json', 'job', 'submit', '--module', path.join(jobsDir, 'factor.wasm'),
    '--title', 'Signed factoring', '--range', '10..2010:1', '--sign'));
  const jobId = submitted.job_id;
  const oldManifest = await (await fetch(`${server.url}/api/v1/jobs/${jobId}/manifest`)).json();
  const account = await adminApi(server, 'GET', '/api/v1/admin/accounts');
  const key = account.find((a) => a.account_id === lab.accountId).keys[0];

  // The portal's admin revokes the key: the job is withdrawn and the revocation logged.
  const revoked = await adminApi(server, 'POST', `/api/v1/admin/keys/${key.key_id}/revoke`, { reason: 'the key leaked' });
  expect(revoked.revoked).toBe(true);
  expect((await fetch(`${server.url}/api/v1/jobs/${jobId}/manifest`)).status).toBe(410);

  // An attacker on the path replays the signed job: leases rewritten to name it, and its old
  // manifest, still validly signed by the portal.
  await page.context().route(/\/api\/v1\/(lease|exchange)$/, async (route) => {
    try {
      const response = await route.fetch();
      const body = await response.json();
      const answer = leaseAnswerOf(new URL(route.request().url()).pathname, body);
      for (const lease of answer?.leases ?? []) lease.job_id = jobId;
      await route.fulfill({ response, json: body });
    } catch (error) {
      if (!/disposed|closed/i.test(String(error?.message ?? error))) throw error;
    }
  });
  await page.context().route(`**/api/v1/jobs/${jobId}/manifest`, (route) => route.fulfill({ json: oldManifest }).catch(() => {}));
  await page.goto(server.url);
  await page.fill('#workers', '1');
  await page.click('#start');
  await expect(page.locator('#log')).toContainText(`the key that declared job ${jobId} was revoked in the public log`);
  await expect(page.locator('#log')).toContainText('the key leaked');
  await expect.poll(async () => (await reports(server)).filter((r) => r.job === jobId).map((r) => r.kind)).toContain('manifest_refused');
  await expect(page.locator('#running-job')).toBeHidden();
  await page.click('#stop');
});
