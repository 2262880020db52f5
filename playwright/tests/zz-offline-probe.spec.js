// Temporary probe (deleted after use): how many results wait while online with tiny units.
const { test, expect } = require('./server');
test.use({ serverArgs: ['--demo-units', '4096'] });
test('probe', async ({ page, server }) => {
  await page.goto(server.url);
  await page.fill('#workers', '2');
  await page.locator('#cpu').fill('100');
  await page.click('#start');
  for (let i = 0; i < 8; i += 1) {
    await page.waitForTimeout(1000);
    console.log(await page.locator('#units-done').textContent(), (await page.locator('#results-waiting').count()) ? await page.locator('#results-waiting').textContent() : '-', await page.locator('#rate').textContent(), await page.locator('#busy').textContent());
  }
  console.log((await page.locator('#log').textContent()).slice(0, 500));
});
