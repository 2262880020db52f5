// The volunteer page's progress and job choice: a job unchecked before Start is never leased
// (the choice is remembered in the browser), unchecking a job while running stops new leases
// of it from the next request on, and the page shows validated credit, time donated and a
// throughput chart drawn from its own completions.
const { test, expect, createJob, le, leaseRequestOf, leaseAnswerOf } = require('./server');

// A large demo job (job 0, Mandelbrot tiles), so that it has work for the whole test.
test.use({ serverArgs: ['--demo-units', '1024'] });

const DEMO_JOB = 0;
const FACTOR_JOB = 1;
const FACTOR_TITLE = 'Factor many numbers';

/** Job 1: numbers to factor, enough that it never runs out during a test. */
async function factorJob(server) {
  const inputs = Array.from({ length: 2_000 }, (_, i) => le.u64(1_000_000_000_039n + 2n * BigInt(i)).toString('base64'));
  const job = await createJob(server, 'factor', { title: FACTOR_TITLE, inputs: { list: inputs } });
  expect(job.job_id).toBe(FACTOR_JOB);
  return job;
}

/**
 * Records every lease request the page (its workers) makes, with the jobs it asked to exclude
 * and the jobs of the leases it received, in the order the requests were made.
 */
function recordLeases(page) {
  const exchanges = [];
  page.on('request', (request) => {
    const lease = leaseRequestOf(request);
    if (!lease) return;
    exchanges.push({ request, lease, excluded: lease.exclude_jobs ?? [], leased: null });
  });
  page.on('response', async (response) => {
    const exchange = exchanges.find((e) => e.request === response.request());
    if (!exchange) return;
    const body = await response.json().catch(() => ({}));
    const answer = leaseAnswerOf(new URL(response.url()).pathname, body);
    exchange.leased = (answer?.leases ?? []).map((lease) => lease.job_id);
  });
  return exchanges;
}

const answered = (exchanges) => exchanges.filter((e) => e.leased !== null);
const leasedJobs = (exchanges) => answered(exchanges).flatMap((e) => e.leased);
const choice = (page, title) => page.getByRole('checkbox', { name: `Compute ${title}` });

test('a job unchecked before Start is never leased; credit, time donated and the chart rise', async ({ page, server }) => {
  await factorJob(server);
  await page.goto(server.url);
  // Every public job is listed, checked by default, with its progress.
  const demoTitle = (await server.stats()).jobs[DEMO_JOB].title;
  await expect(choice(page, demoTitle)).toBeChecked();
  await expect(choice(page, FACTOR_TITLE)).toBeChecked();
  await expect(page.locator('#job-list li').nth(1)).toContainText('0 of 2000 units done');

  await choice(page, FACTOR_TITLE).uncheck();
  // Remembered in this browser: still unchecked after a reload.
  expect(await page.evaluate(() => localStorage.getItem('cyclepool-excluded-jobs'))).toBe(`[${FACTOR_JOB}]`);
  await page.reload();
  await expect(choice(page, demoTitle)).toBeChecked();
  await expect(choice(page, FACTOR_TITLE)).not.toBeChecked();

  const exchanges = recordLeases(page);
  await page.fill('#workers', '2');
  await page.click('#start');
  await expect(page.locator('#state')).toHaveText('computing');
  await expect.poll(async () => Number(await page.locator('#units-done').textContent()), { timeout: 30_000 })
    .toBeGreaterThanOrEqual(20);

  // Every lease the page received is of the job it kept; every request excluded the other.
  await expect.poll(() => leasedJobs(exchanges).length).toBeGreaterThanOrEqual(20);
  expect(new Set(leasedJobs(exchanges))).toEqual(new Set([DEMO_JOB]));
  expect(exchanges.every((e) => e.excluded.length === 1 && e.excluded[0] === FACTOR_JOB)).toBe(true);

  // Credit and time donated come from the portal (polled every 10 s while computing).
  const credit = async () => Number((await page.locator('#credit').textContent()).match(/^(\d+) results?$/)?.[1] ?? 0);
  await expect.poll(credit, { timeout: 30_000 }).toBeGreaterThan(0);
  await expect(page.locator('#time-donated')).not.toHaveText(/^(–|0 ms)$/);
  await expect(page.locator('#time-donated')).toHaveText(/^\d+(\.\d)? (ms|s)$|min|h/);
  await expect(page.locator('#session-time')).not.toHaveText('this page: 0 ms computing');
  const volunteer = await page.locator('#volunteer-id').textContent();
  const portal = await (await fetch(`${server.url}/api/v1/volunteers/${volunteer}`)).json();
  expect(portal.credit).toBeGreaterThanOrEqual(await credit());
  expect(portal.compute_ms).toBeGreaterThan(0);
  expect(portal.blacklisted).toBe(false);

  // The chart has bars: some pixel of the canvas is not transparent.
  const drawnPixels = () => page.evaluate(() => {
    const canvas = document.getElementById('throughput');
    const { data } = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
    let drawn = 0;
    for (let i = 3; i < data.length; i += 4) if (data[i] > 0) drawn += 1;
    return drawn;
  });
  await expect.poll(drawnPixels).toBeGreaterThan(0);
  await expect(page.locator('#throughput-summary')).toHaveText(/^\d+ units, at most \d+ units\/min$/);

  await page.click('#stop');
  await expect(page.locator('#state')).toHaveText('stopped');
  // The portal never handed the excluded job to this browser.
  const factor = (await server.stats()).jobs[FACTOR_JOB];
  expect([factor.done, factor.leased]).toEqual([0, 0]);
});

test('unchecking a job while running stops new leases of it from the next request', async ({ page, server }) => {
  await factorJob(server);
  const exchanges = recordLeases(page);
  await page.goto(server.url);
  await expect(choice(page, FACTOR_TITLE)).toBeChecked();
  // One worker: its lease requests go one after another, so "from the next request" is exact.
  await page.fill('#workers', '1');
  await page.click('#start');
  // Both jobs are served while both are chosen.
  await expect.poll(() => new Set(leasedJobs(exchanges)).size, { timeout: 30_000 }).toBe(2);

  await choice(page, FACTOR_TITLE).uncheck();
  const atUncheck = exchanges.length;
  // The running worker sends the exclusion from its next request on, and keeps sending it.
  await expect.poll(() => answered(exchanges.slice(atUncheck)).filter((e) => e.excluded.includes(FACTOR_JOB)).length)
    .toBeGreaterThanOrEqual(5);
  // At most two requests without it are seen after the click: one the worker made before the
  // click whose event arrived late, and one made before the worker got the message.
  const first = exchanges.findIndex((e, i) => i >= atUncheck && e.excluded.includes(FACTOR_JOB));
  expect(first).toBeLessThanOrEqual(atUncheck + 2);
  const after = exchanges.slice(first);
  expect(after.every((e) => e.excluded.length === 1 && e.excluded[0] === FACTOR_JOB)).toBe(true);
  // No lease of the unchecked job answers such a request, while the other job goes on.
  expect(leasedJobs(after)).not.toContain(FACTOR_JOB);
  expect(leasedJobs(after)).toContain(DEMO_JOB);

  // Units of it already in hand finish; after that the portal has none of it out.
  await expect.poll(async () => (await server.stats()).jobs[FACTOR_JOB].leased).toBe(0);
  const factorDone = (await server.stats()).jobs[FACTOR_JOB].done;
  const demoDone = (await server.stats()).jobs[DEMO_JOB].done;
  await page.waitForTimeout(1_500);
  const later = await server.stats();
  expect(later.jobs[FACTOR_JOB].done).toBe(factorDone);
  expect(later.jobs[FACTOR_JOB].leased).toBe(0);
  expect(later.jobs[DEMO_JOB].done).toBeGreaterThan(demoDone);

  // Checked again: its leases come back.
  await choice(page, FACTOR_TITLE).check();
  const atCheck = exchanges.length;
  await expect.poll(() => leasedJobs(exchanges.slice(atCheck)).includes(FACTOR_JOB), { timeout: 15_000 }).toBe(true);
  expect(await page.evaluate(() => localStorage.getItem('cyclepool-excluded-jobs'))).toBe('[]');
  await page.click('#stop');
});

test('a category left to others covers its jobs, those published later included', async ({ page, server }) => {
  const category = (name) => page.locator('#category-list').getByRole('checkbox', { name });
  await createJob(server, 'factor', {
    title: FACTOR_TITLE, category: 'cryptography',
    inputs: { list: Array.from({ length: 500 }, (_, i) => le.u64(1_000_000_007n + BigInt(i)).toString('base64')) },
  });
  const exchanges = recordLeases(page);
  await page.goto(server.url);
  await category('Cryptography').uncheck();
  await expect(page.locator('#job-list')).toContainText('Cryptography (category left to others)');
  await expect(page.locator('#job-list')).toContainText('by portal-demo · Mathematics');
  await page.fill('#workers', '1');
  await page.click('#start');
  await expect.poll(() => leasedJobs(exchanges).length, { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
  // A job of that category published while the page runs is left out too, by the portal.
  const later = await createJob(server, 'factor', {
    title: 'More cryptography', category: 'cryptography',
    inputs: { list: [le.u64(1_000_003n).toString('base64')] },
  });
  const atPublish = exchanges.length;
  await expect.poll(() => answered(exchanges.slice(atPublish)).length, { timeout: 30_000 }).toBeGreaterThanOrEqual(3);
  expect(exchanges.every((e) => JSON.stringify(e.lease.exclude_categories) === '["cryptography"]')).toBe(true);
  expect(leasedJobs(exchanges)).not.toContain(FACTOR_JOB);
  expect(leasedJobs(exchanges)).not.toContain(later.job_id);
  expect(leasedJobs(exchanges)).toContain(DEMO_JOB);
  expect(await page.evaluate(() => localStorage.getItem('cyclepool-excluded-categories'))).toBe('["cryptography"]');

  // Checked again: the category's jobs come back.
  await category('Cryptography').check();
  const atCheck = exchanges.length;
  await expect.poll(() => leasedJobs(exchanges.slice(atCheck)).some((job) => job === FACTOR_JOB || job === later.job_id), { timeout: 20_000 }).toBe(true);
  await page.click('#stop');
});
