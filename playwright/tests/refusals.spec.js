// The client refuses to run what it cannot trust: a tampered module, a manifest with a bad
// signature, an expired manifest, a manifest signed by a revoked key. Each time the page says
// why, nothing of the job is computed, and the portal receives a report. Tampering is done as
// an attacker on the path would: by rewriting responses on their way to the browser.
const { execFileSync } = require('node:child_process');
const path = require('node:path');
const { test, expect, createJob, reports } = require('./server');

const serverBin = process.env.CYCLEPOOL_SERVER_BIN || path.resolve(__dirname, '..', '..', 'target', 'debug', 'cyclepool-server');

/**
 * Intercepts requests matching `pattern` in the page's context (workers included) with
 * `handler`. A request still in flight when the test ends (a worker asking again just before
 * Stop) finds its response disposed: that is the end of the test, not a failure.
 */
async function intercept(page, pattern, handler) {
  await page.context().route(pattern, async (route) => {
    try {
      await handler(route);
    } catch (error) {
      if (!/disposed|closed/i.test(String(error?.message ?? error))) throw error;
    }
  });
}

/** Rewrites every manifest on its way to the browser. */
async function rewriteManifests(page, rewrite) {
  await intercept(page, '**/api/v1/jobs/*/manifest', async (route) => {
    const response = await route.fetch();
    const signed = await response.json();
    await route.fulfill({ response, json: rewrite(signed) });
  });
}

async function startAndExpectRefusal(page, server, reason, kind) {
  await page.goto(server.url);
  await page.fill('#workers', '1');
  await page.click('#start');
  await expect(page.locator('#log')).toContainText(reason);
  await expect.poll(async () => (await reports(server)).map((r) => r.kind)).toContain(kind);
  // Nothing was computed, and the page never announced the job as running.
  expect((await server.stats()).jobs.every((job) => job.done === 0)).toBe(true);
  await expect(page.locator('#running-job')).toBeHidden();
  await page.click('#stop');
}

test.describe('refusals', () => {
  test.use({ serverArgs: ['--demo-units', '0'] });

  test('a tampered module is refused', async ({ page, server }) => {
    await createJob(server, 'factor', { title: 'Factor', inputs: { range: { start: 10, end: 20, step: 1 } } });
    await intercept(page, '**/api/v1/modules/*', async (route) => {
      const response = await route.fetch();
      const body = Buffer.from(await response.body());
      body[body.length - 1] ^= 0xff; // one bit of the module's last byte
      await route.fulfill({ response, body });
    });
    await startAndExpectRefusal(page, server, /module's sha-256 is [0-9a-f]{64}, not [0-9a-f]{64} as signed/, 'module_refused');
  });

  test('a manifest with a bad signature is refused', async ({ page, server }) => {
    await createJob(server, 'factor', { title: 'Factor', inputs: { range: { start: 10, end: 20, step: 1 } } });
    // The attacker raises the time budget; the signature no longer matches.
    await rewriteManifests(page, (signed) => ({
      ...signed,
      manifest: signed.manifest.replace('"unit_budget_ms":60000', '"unit_budget_ms":3600000'),
    }));
    await startAndExpectRefusal(page, server, "the manifest's signature is invalid", 'manifest_refused');
  });

  test('an expired manifest is refused', async ({ page, server }) => {
    // The portal stops leasing a job once its manifest expires, so the browser must meet the
    // expiry between its lease and the manifest: the manifest is held back on the way until
    // the job has expired, as a slow or malicious network could.
    await createJob(server, 'factor', {
      title: 'Short-lived', expires_in_ms: 8_000, inputs: { range: { start: 10, end: 20, step: 1 } },
    });
    await intercept(page, '**/api/v1/jobs/*/manifest', async (route) => {
      const response = await route.fetch();
      const signed = await response.json();
      const { expires_ms: expiresMs } = JSON.parse(signed.manifest);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, expiresMs + 300 - Date.now())));
      await route.fulfill({ response, json: signed });
    });
    await startAndExpectRefusal(page, server, /the manifest expired at \d+/, 'manifest_refused');
  });

  test('a manifest signed by a revoked key is refused', async ({ page, server }) => {
    // Enough units that work remains after the first session, so the browser asks again.
    await createJob(server, 'factor', { title: 'Factor', inputs: { range: { start: 10, end: 5_010, step: 1 } } });
    // The browser first trusts key A and sees a manifest signed by it.
    const signedByA = await (await fetch(`${server.url}/api/v1/jobs/0/manifest`)).json();
    await page.goto(server.url);
    await page.click('#start');
    await expect(page.locator('#running-title')).toHaveText('Factor');
    await page.click('#stop');

    // The operator rotates to key B and revokes A, then restarts the portal.
    await server.stop();
    execFileSync(serverBin, ['keys', 'rotate', '--data-dir', server.dataDir], { stdio: 'ignore' });
    const keyA = signedByA.key_id;
    execFileSync(serverBin, ['keys', 'revoke', keyA, '--reason', 'leaked', '--data-dir', server.dataDir], { stdio: 'ignore' });
    await server.start();
    const published = await (await fetch(`${server.url}/.well-known/cyclepool-keys.json`)).json();
    expect(published.revoked.map((r) => r.key_id)).toEqual([keyA]);

    // An attacker replays the old manifest signed by A. The browser, which pinned A and now
    // follows the endorsed rotation to B with A's revocation, refuses it.
    await rewriteManifests(page, () => signedByA);
    await startAndExpectRefusal(page, server, `manifest signed by revoked key ${keyA}: leaked`, 'manifest_refused');
  });
});
