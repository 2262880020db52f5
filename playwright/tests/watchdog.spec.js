// Hostile job modules in the browser: an endless loop is stopped by the watchdog at the job's
// time budget, a trap, a memory bomb and an oversized output are reported as failures, never
// as a hang; each is reported to the portal with its lease released; the page stays responsive.
const { test, expect, createJob, reports } = require('./server');

test.use({ serverArgs: ['--demo-units', '0'] });

test('the watchdog stops runaway units and failures are reported, not hung on', async ({ page, server }) => {
  const [ENDLESS_LOOP, TRAP, MEMORY_BOMB, HUGE_OUTPUT, JOB_ERROR] = [0, 1, 2, 3, 4];
  await createJob(server, 'hostile', {
    title: 'Hostile',
    policy: { unit_budget_ms: 500, lease_ttl_ms: 60_000 },
    inputs: { list: [ENDLESS_LOOP, TRAP, MEMORY_BOMB, HUGE_OUTPUT, JOB_ERROR].map((b) => Buffer.from([b]).toString('base64')) },
  });
  await page.goto(server.url);
  await page.fill('#workers', '1');
  const started = Date.now();
  await page.click('#start');

  const log = page.locator('#log');
  await expect(log).toContainText('stopped by the watchdog after its budget of 500 ms', { timeout: 20_000 });
  await expect(log).toContainText('the module trapped');
  await expect(log).toContainText(/output of 2097152 bytes exceeds the limit/);
  await expect(log).toContainText('the module rejected the input (error 7)');
  await expect.poll(async () => new Set((await reports(server)).map((r) => r.kind)).size, { timeout: 20_000 })
    .toBeGreaterThanOrEqual(3);
  const kinds = new Set((await reports(server)).map((r) => r.kind));
  expect([...kinds].sort()).toEqual(['unit_job_error', 'unit_timeout', 'unit_trap']);
  // All five units were tried well before a hang could be mistaken for progress.
  expect(Date.now() - started).toBeLessThan(20_000);

  // The page stays responsive: it answers at once and Stop works.
  expect(await page.evaluate(() => 6 * 7)).toBe(42);
  await page.click('#stop');
  await expect(page.locator('#state')).toHaveText('stopped');
  // Nothing was accepted as a result.
  expect((await server.stats()).jobs[0].done).toBe(0);
});
