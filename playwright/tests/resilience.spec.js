// The volunteer page rides out a portal that restarts or sheds load: workers back off with
// jitter, say so on the page (errors are shown, not swallowed), and resume by themselves.
const { test, expect, leaseRequestOf } = require('./server');

async function unitsDone(page) {
  return Number(await page.locator('#units-done').textContent());
}

test('workers resume by themselves after the portal is killed and restarted', async ({ page, server }) => {
  await page.goto(server.url);
  await page.fill('#workers', '1');
  await page.click('#start');
  await expect.poll(() => unitsDone(page), { timeout: 30_000 }).toBeGreaterThanOrEqual(3);

  // The portal dies without warning, as in a crash.
  server.process.kill('SIGKILL');
  await server.exited;
  await expect(page.locator('#log li.error').first()).toContainText(/asking for work|sending|loading job/, { timeout: 20_000 });
  await expect(page.locator('#state')).not.toHaveText('stopped');
  const doneWhileDown = await unitsDone(page);

  // It comes back on the same address; nobody touches the page.
  await server.start();
  await expect.poll(() => unitsDone(page), { timeout: 45_000 }).toBeGreaterThanOrEqual(doneWhileDown + 3);
  const stats = await server.stats();
  expect(stats.jobs[0].done).toBeGreaterThan(0);
});

test('workers back off while the portal answers 503, then resume', async ({ page, server }) => {
  const refused = [];
  // The portal sheds load: every request for work is refused for a while.
  const forWork = /\/api\/v1\/(lease|exchange)$/;
  await page.context().route(forWork, async (route) => {
    if (!leaseRequestOf(route.request())) return route.continue();
    refused.push(Date.now());
    await route.fulfill({
      status: 503,
      headers: { 'retry-after': '1' },
      json: { error: { code: 'unavailable', message: 'the portal is shedding load' } },
    });
  });
  await page.goto(server.url);
  await page.fill('#workers', '2');
  await page.click('#start');
  await expect(page.locator('#log')).toContainText('shedding load', { timeout: 20_000 });
  // Backing off: two workers ask far less often than they could.
  await page.waitForTimeout(4_000);
  const asked = refused.length;
  expect(asked).toBeGreaterThanOrEqual(2);
  expect(asked).toBeLessThan(30);
  expect(await unitsDone(page)).toBe(0);

  await page.context().unroute(forWork);
  await expect.poll(() => unitsDone(page), { timeout: 45_000 }).toBeGreaterThanOrEqual(3);
});
