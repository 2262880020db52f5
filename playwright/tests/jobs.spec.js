// Distributors' job modules in a real browser: each example job computes in Chromium, and
// every stored output equals a native run of the same module (the audit re-runs it in wasmi).
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { test, expect, createJob, le } = require('./server');

const assembleBin = process.env.CYCLEPOOL_ASSEMBLE_BIN
  || path.resolve(__dirname, '..', '..', 'target', 'debug', 'examples', 'assemble');

/** Starts one worker, waits until the server has every unit of every job, and stops. */
async function computeEverything(page, server) {
  await page.goto(server.url);
  await page.fill('#workers', '2');
  await page.click('#start');
  await expect.poll(async () => {
    const stats = await server.stats();
    return stats.jobs.every((job) => job.done === job.units);
  }, { timeout: 45_000 }).toBe(true);
  await page.click('#stop');
}

/** Audits the stopped server's store and checks every result against the native run. */
function expectVerifiedAudit(server, units) {
  const report = server.audit();
  expect(report.problems).toEqual([]);
  const [job] = report.jobs;
  expect(job.mismatches).toEqual([]);
  expect(job.done).toBe(units);
  expect(job.verified).toBe(units);
  expect(report.ok).toBe(true);
}

test.describe('with only the job under test', () => {
  test.use({ serverArgs: ['--demo-units', '0'] });

  test('factor: every number is factored in the browser as natively', async ({ page, server }) => {
    const numbers = [
      600851475143n, 18446744073709551557n, 2n ** 61n - 1n, 4294967291n * 4294967279n,
      1234567891011n, 999999000001n, 2n ** 40n, 1n, 97n * 89n * 83n * 79n,
    ];
    const job = await createJob(server, 'factor', {
      title: 'Factor some numbers',
      inputs: { list: numbers.map((n) => le.u64(n).toString('base64')) },
    });
    expect(job.units).toBe(numbers.length);
    await computeEverything(page, server);
    await expect(page.locator('#running-title')).toHaveText('Factor some numbers');
    await server.stop();
    expectVerifiedAudit(server, numbers.length);
  });

  test('keysearch: every key range is searched in the browser as natively', async ({ page, server }) => {
    // 12-bit prefix 0xabc: about one key in 4096 matches, so some ranges find one and some not.
    const target = Buffer.from([0xab, 0xc0]);
    const inputs = Array.from({ length: 8 }, (_, i) => Buffer.concat([
      le.u64(i * 3000), le.u64(3000), le.u16(12), target,
    ]).toString('base64'));
    await createJob(server, 'keysearch', { title: 'Find a key', inputs: { list: inputs } });
    await computeEverything(page, server);
    await server.stop();
    expectVerifiedAudit(server, inputs.length);
  });
});

test.describe('with the demo job', () => {
  test.use({ serverArgs: ['--demo-units', '4'] });

  test('mandelbrot: every tile is computed in the browser as natively, and the distributor downloads the picture', async ({ page, server }) => {
    await computeEverything(page, server);
    // The distributor downloads the results and assembles the tiles into a picture.
    const download = await fetch(`${server.url}/api/v1/jobs/0/results`, {
      headers: { authorization: `Bearer ${server.adminToken}` },
    });
    expect(download.headers.get('content-type')).toBe('application/x-ndjson');
    const lines = await download.text();
    expect(lines.trim().split('\n')).toHaveLength(4);
    const picture = execFileSync(assembleBin, { input: lines });
    const header = 'P5\n128 128\n255\n';
    expect(picture.subarray(0, header.length).toString('latin1')).toBe(header);
    const pixels = picture.subarray(header.length);
    expect(pixels).toHaveLength(128 * 128);
    // Both the set (black) and fast escapes (white) are in the picture.
    expect(pixels.includes(0)).toBe(true);
    expect(pixels.includes(255)).toBe(true);
    await server.stop();
    expectVerifiedAudit(server, 4);
  });
});
