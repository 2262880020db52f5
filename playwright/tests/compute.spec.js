// The volunteer page end to end: nothing computes before Start; after Start, module workers
// running the wasm client verify the signed manifest and module, then compute real units in a
// sandbox worker, handing in results and asking for units in the same requests; the server
// stores results equal to a native run of the same module; Stop stops all work.
const { test, expect } = require('./server');

const isWorkRequest = (url) => /\/api\/v1\/(lease|results|exchange)$/.test(new URL(url).pathname);

test('Start computes correct results that the server stores; Stop stops', async ({ page, server }) => {
  const workRequests = [];
  page.on('request', (request) => { if (isWorkRequest(request.url())) workRequests.push(request); });

  await page.goto(server.url);
  // The page has loaded and talked to the server (job title from /api/v1/stats)...
  await expect(page.locator('#job-title')).toHaveText(/Mandelbrot/);
  await expect(page.locator('#job-progress')).toHaveText('0 of 256 units done');
  // ...yet nothing has asked for work: no consent, no computing.
  expect(workRequests).toHaveLength(0);
  expect((await server.stats()).jobs[0].leased).toBe(0);
  // The default is half the cores, at least one.
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  await expect(page.locator('#workers')).toHaveValue(String(Math.max(1, Math.floor(cores / 2))));

  await page.fill('#workers', '2');
  await page.click('#start');
  await expect(page.locator('#state')).toHaveText('computing');
  await expect(page.locator('#active-workers')).toHaveText('2');
  await expect.poll(async () => Number(await page.locator('#units-done').textContent()), { timeout: 30_000 })
    .toBeGreaterThanOrEqual(20);
  await expect(page.locator('#rate')).not.toHaveText('0.0 units/s');
  // The page says what runs, who distributes it, and the module's hash from the signed manifest.
  await expect(page.locator('#running-title')).toHaveText(/Mandelbrot/);
  await expect(page.locator('#running-distributor')).toHaveText('portal-demo');
  const stats = await server.stats();
  await expect(page.locator('#running-module')).toHaveText(stats.jobs[0].module_sha256);
  // Results and requests for more units travel together (POST /api/v1/exchange): the
  // workers never ask for units on their own.
  const paths = workRequests.map((request) => new URL(request.url()).pathname);
  expect(paths.filter((p) => p !== '/api/v1/exchange')).toEqual([]);
  const bodies = workRequests.map((request) => request.postDataJSON());
  expect(bodies.some((body) => body.lease && body.results.length > 0)).toBe(true);
  // Two volunteer workers, each running units in a sandbox worker of its own.
  const scripts = page.workers().map((worker) => new URL(worker.url()).pathname).sort();
  expect(scripts).toEqual(['/sandbox.js', '/sandbox.js', '/worker.js', '/worker.js']);

  await page.click('#stop');
  await expect(page.locator('#state')).toHaveText('stopped');
  await expect(page.locator('#active-workers')).toHaveText('0');
  await expect.poll(() => page.workers().length).toBe(0);
  const shownDone = Number(await page.locator('#units-done').textContent());
  const requestsAtStop = workRequests.length;
  // A result sent just before Stop may still be on its way to the disk: wait until the count
  // settles (the same twice, 300 ms apart).
  let doneAtStop = -1;
  await expect.poll(async () => {
    const done = (await server.stats()).jobs[0].done;
    const settled = done === doneAtStop;
    doneAtStop = done;
    return settled;
  }, { intervals: [300], timeout: 10_000 }).toBe(true);
  // Give any straggler a chance to show itself: after Stop there must be none.
  await page.waitForTimeout(1_500);
  expect(workRequests.length).toBe(requestsAtStop);
  expect((await server.stats()).jobs[0].done).toBe(doneAtStop);

  // Every stored result is signed by (and attributed to) this browser's key, which the
  // browser keeps: after a reload, Start shows the same volunteer id.
  const volunteerId = await page.locator('#volunteer-id').textContent();
  expect(volunteerId).toMatch(/^[0-9a-f]{64}$/);
  const download = await fetch(`${server.url}/api/v1/jobs/0/results`, {
    headers: { authorization: `Bearer ${server.adminToken}` },
  });
  const volunteers = new Set((await download.text()).trim().split('\n').map((line) => JSON.parse(line).volunteer));
  expect([...volunteers]).toEqual([volunteerId]);
  await page.reload();
  await page.click('#start');
  await expect(page.locator('#volunteer-id')).toHaveText(volunteerId);
  await page.click('#stop');

  await server.stop();
  const report = server.audit();
  expect(report.problems).toEqual([]);
  const [job] = report.jobs;
  expect(job.mismatches).toEqual([]);
  expect(report.ok).toBe(true);
  // Every unit the page counted was acknowledged as durable, so the store has at least as many.
  expect(job.done).toBeGreaterThanOrEqual(shownDone);
  expect(job.done).toBeGreaterThanOrEqual(doneAtStop);
  // Every stored output equals the native computation (the audit re-runs the module natively).
  expect(job.mismatches).toEqual([]);
  expect(job.verified).toBe(job.done);
  expect(report.results).toHaveLength(job.done);
});
