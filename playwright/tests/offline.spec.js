// Offline work: workers keep computing the units in hand when the network drops, keep every
// finished result in IndexedDB (through a reload of the tab), and send them all when the
// network returns, several to a request; a result computed in reach goes from memory, its unit
// kept until the portal answers; a unit whose deadline passed while offline is
// skipped, not computed; a result that reaches the portal after its deadline is refused once
// and dropped.
const { test, expect, createJob, leaseRequestOf, leaseAnswerOf } = require('./server');

/** What the offline queue holds (IndexedDB `cyclepool-offline`). */
function storedWork(page) {
  return page.evaluate(async () => {
    // Opening a database that does not exist would create it empty, without the workers' stores.
    if (!(await indexedDB.databases()).some((db) => db.name === 'cyclepool-offline')) return { units: [], results: [] };
    const db = await new Promise((resolve, reject) => {
      const request = indexedDB.open('cyclepool-offline');
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const all = (name) => new Promise((resolve, reject) => {
      const request = db.transaction(name).objectStore(name).getAll();
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
    const units = await all('units');
    const results = await all('results');
    db.close();
    return {
      units: units.map((u) => ({ leaseId: u.lease_id, unit: u.lease.unit, owner: u.owner })),
      results: results.map((r) => ({ leaseId: r.lease_id, unit: r.unit, jobId: r.job_id })),
    };
  });
}

/** The lease ids of the results the portal holds for `job` (admin download, JSON lines). */
async function acknowledgedLeases(server, job) {
  const response = await fetch(`${server.url}/api/v1/jobs/${job}/results`, {
    headers: { authorization: `Bearer ${server.adminToken}` },
  });
  const text = (await response.text()).trim();
  return new Set(text ? text.split('\n').map((line) => JSON.parse(line).lease_id) : []);
}

const figure = async (page, id) => Number(await page.locator(`#${id}`).textContent());

test.describe('with the demo job (ten-minute leases)', () => {
  test.use({ serverArgs: ['--demo-units', '1024'] });

  test('results finished offline survive a reload and all reach the portal when it is back', async ({ page, context, server }) => {
    // Later the portal alone is cut off while the page reloads. Requests of workers started
    // before a route exists escape it, so the route is in place from the start, passing
    // everything through until `portalCut`.
    let portalCut = false;
    const portal = (url) => url.pathname.startsWith('/api/') || url.pathname.startsWith('/.well-known/');
    await context.route(portal, (route) => (portalCut ? route.abort('internetdisconnected') : route.continue()));
    const leaseRequests = [];
    page.on('request', (request) => {
      const lease = leaseRequestOf(request);
      if (lease) leaseRequests.push(lease);
    });
    await page.goto(server.url);
    // The work buffer (seconds of work in hand) is remembered in this browser.
    await expect(page.locator('#work-buffer')).toHaveValue('30');
    await page.locator('#work-buffer').fill('8');
    await page.locator('#work-buffer').blur();
    await page.reload();
    await expect(page.locator('#work-buffer')).toHaveValue('8');

    await page.fill('#workers', '2');
    await page.click('#start');
    await expect.poll(() => figure(page, 'units-done'), { timeout: 30_000 }).toBeGreaterThanOrEqual(10);
    // Workers ask for a couple of units until they have timed one; then for their buffer's
    // worth: eight seconds of the demo's tiles (a few ms each) is more than the 32 a worker
    // keeps at most, so a top-up asks for 17 or more, and never more than 32.
    expect(leaseRequests[0].max_units).toBe(2);
    const largest = Math.max(...leaseRequests.map((r) => r.max_units));
    expect(largest).toBeGreaterThanOrEqual(17);
    expect(largest).toBeLessThanOrEqual(32);

    // The network drops mid-run: the units in hand are still computed, and their results
    // wait in IndexedDB.
    await context.setOffline(true);
    await expect(page.locator('#state')).toHaveText(/^offline: \d+ results? waiting$/, { timeout: 20_000 });
    await expect(page.locator('#log')).toContainText('the result is kept and sent later');
    // Settled: no unit left in hand, and no result added for a while (a lease answered just
    // as the network dropped may still bring units that finish offline).
    let previous = -1;
    await expect.poll(async () => {
      const work = await storedWork(page);
      const count = work.units.length === 0 ? work.results.length : -2;
      const settled = count >= 0 && count === previous;
      previous = count;
      return settled;
    }, { timeout: 30_000, intervals: [1_500] }).toBe(true);
    const offline = await storedWork(page);
    expect(offline.results.length).toBeGreaterThan(0);
    const finishedOffline = offline.results.map((r) => r.leaseId);
    // (A result in flight when the network dropped may have reached the portal with its
    // answer lost: it stays queued, and sending it again is answered "duplicate".)
    await expect(page.locator('#results-waiting')).toHaveText(String(finishedOffline.length));

    // The tab is reloaded while the portal is still out of reach. Without a service worker a
    // fully offline browser cannot load the page at all, so the static files are let through
    // and only the API stays cut off.
    portalCut = true;
    await context.setOffline(false);
    await page.reload();
    await expect(page.locator('#log')).toContainText(`${finishedOffline.length} finished result`);
    expect((await storedWork(page)).results.map((r) => r.leaseId).sort()).toEqual([...finishedOffline].sort());

    // Start while the portal is unreachable: the keys pinned before are used, nothing is lost.
    await page.click('#start');
    await expect(page.locator('#log')).toContainText('using the keys this browser pinned before');
    await expect(page.locator('#state')).toHaveText(/^portal unreachable: \d+ results? waiting$/, { timeout: 20_000 });
    expect((await storedWork(page)).results.length).toBeGreaterThanOrEqual(finishedOffline.length);

    // The portal is back: every result finished offline is acknowledged, none lost.
    const batches = [];
    page.on('request', (request) => {
      if (new URL(request.url()).pathname !== '/api/v1/exchange') return;
      const leases = request.postDataJSON().results.map((r) => r.lease_id);
      batches.push(leases.filter((id) => finishedOffline.includes(id)).length);
    });
    portalCut = false;
    await expect.poll(async () => {
      const acknowledged = await acknowledgedLeases(server, 0);
      return finishedOffline.filter((id) => !acknowledged.has(id)).length;
    }, { timeout: 30_000 }).toBe(0);
    // The backlog went several results to a request (POST /api/v1/exchange), not one each.
    expect(finishedOffline.length).toBeGreaterThan(1);
    expect(Math.max(...batches)).toBeGreaterThan(1);
    expect(batches.filter((n) => n > 0).length).toBeLessThan(finishedOffline.length);
    await expect(page.locator('#state')).toHaveText('computing');
    await expect.poll(() => figure(page, 'units-done')).toBeGreaterThanOrEqual(finishedOffline.length);
    await page.click('#stop');
    // What stays in the queue after Stop is only work the portal has not answered yet.
    const left = await storedWork(page);
    expect(left.results.filter((r) => finishedOffline.includes(r.leaseId))).toEqual([]);
  });
});

test.describe('results sent from memory', () => {
  test('a result computed in reach goes from memory, its unit kept until the answer: a tab closed before it computes the unit again', async ({ context, server }) => {
    // Exchanges that carry results get no answer while `holding`: the tab closes first.
    let holding = true;
    const held = [];
    await context.route('**/api/v1/exchange', (route) => {
      if (holding && route.request().postDataJSON()?.results?.length) {
        held.push(route.request().postDataJSON().results.map((r) => r.lease_id));
        return undefined; // never answered
      }
      return route.continue();
    });
    const page = await context.newPage();
    await page.goto(server.url);
    await page.fill('#workers', '1');
    await page.click('#start');
    await expect.poll(() => held.length, { timeout: 30_000 }).toBeGreaterThan(0);
    const sent = held[0];
    // On its way, the result is in no store: its unit is, claimed by the worker, until the
    // portal answers.
    const during = await storedWork(page);
    expect(during.results.filter((r) => sent.includes(r.leaseId))).toEqual([]);
    expect(during.units.map((u) => u.leaseId)).toEqual(expect.arrayContaining(sent));
    expect(during.units.filter((u) => sent.includes(u.leaseId)).every((u) => u.owner)).toBe(true);

    // The tab closes before any answer; in a new one the units are still there, free, and
    // are computed again and acknowledged.
    await page.close();
    holding = false;
    const again = await context.newPage();
    await again.goto(server.url);
    expect((await storedWork(again)).units.map((u) => u.leaseId)).toEqual(expect.arrayContaining(sent));
    await again.click('#start');
    await expect.poll(async () => {
      const acknowledged = await acknowledgedLeases(server, 0);
      return sent.filter((id) => !acknowledged.has(id)).length;
    }, { timeout: 30_000 }).toBe(0);
    // Once answered, nothing of them is left in the queue.
    await expect.poll(async () => {
      const left = await storedWork(again);
      return [...left.units, ...left.results].filter((record) => sent.includes(record.leaseId)).length;
    }, { timeout: 10_000 }).toBe(0);
    await again.click('#stop');
  });
});

test.describe('batches of results', () => {
  test.use({ serverArgs: ['--demo-units', '1024'] });

  test('an exchange refused as a whole is offered again one result at a time, and nothing is lost', async ({ page, context, server }) => {
    // Something between the tab and the portal (a proxy with a small body limit, say) refuses
    // every request that carries several results, with a 413 that is not the portal's.
    const refused = new Set();
    const resentAlone = new Set();
    let refusing = true;
    await context.route('**/api/v1/exchange', async (route) => {
      const leases = route.request().postDataJSON().results.map((r) => r.lease_id);
      if (refusing && leases.length > 1) {
        leases.forEach((id) => refused.add(id));
        await route.fulfill({ status: 413, contentType: 'text/plain', body: 'Request Entity Too Large' });
      } else {
        if (leases.length === 1 && refused.has(leases[0])) resentAlone.add(leases[0]);
        await route.continue();
      }
    });
    await page.goto(server.url);
    await page.fill('#workers', '1');
    await page.locator('#cpu').fill('100');
    await page.click('#start');
    // The demo's tiles take a few ms: results pile up while requests are in flight.
    await expect.poll(() => refused.size, { timeout: 20_000 }).toBeGreaterThan(1);
    refusing = false;
    // Each result of a refused batch reached the portal on its own.
    await expect.poll(async () => {
      const acknowledged = await acknowledgedLeases(server, 0);
      return [...refused].filter((id) => !acknowledged.has(id)).length;
    }, { timeout: 30_000 }).toBe(0);
    // Each on its own, not in another batch after a backoff.
    expect([...refused].filter((id) => !resentAlone.has(id))).toEqual([]);
    await expect(page.locator('#log')).not.toContainText('the portal refused the result');
    await page.click('#stop');
  });
});

test.describe('with short leases', () => {
  test.use({ serverArgs: ['--demo-units', '0'] });

  // The hostile job: input byte 0 loops until the watchdog stops it, 9 is echoed.
  const [ENDLESS_LOOP, ECHO] = [0, 9];
  const input = (byte) => Buffer.from([byte]).toString('base64');

  /**
   * Cuts the worker off from the portal as soon as it has loaded its job (manifest and module
   * fetched), so that it computes offline. Returns what the first lease request gave.
   */
  async function cutOffAfterJobLoads(context) {
    const state = { offline: false, leases: null };
    await context.route('**/api/**', async (route) => {
      if (state.offline) return route.abort('internetdisconnected');
      const path = new URL(route.request().url()).pathname;
      try {
        const response = await route.fetch();
        const answer = leaseAnswerOf(path, await response.json().catch(() => null));
        if (answer && !state.leases) state.leases = answer.leases;
        if (path.startsWith('/api/v1/modules/')) state.offline = true;
        return await route.fulfill({ response });
      } catch {
        // The test ended (server stopped, page closed) while this request was in flight.
        return undefined;
      }
    });
    return state;
  }

  test('a unit whose deadline passed while offline is skipped, not computed', async ({ page, context, server }) => {
    // The first unit runs until the watchdog stops it at the job's budget, which equals the
    // lease time: by then every other unit in hand has run out of time.
    await createJob(server, 'hostile', {
      title: 'Short leases',
      policy: { lease_ttl_ms: 1_500, unit_budget_ms: 1_500 },
      inputs: { list: [ENDLESS_LOOP, ...Array(7).fill(ECHO)].map(input) },
    });
    const cut = await cutOffAfterJobLoads(context);
    await page.goto(server.url);
    await page.fill('#workers', '1');
    await page.click('#start');
    // A worker that has timed no unit yet asks for two: the endless one and one behind it.
    await expect.poll(() => cut.leases?.length ?? 0).toBe(2);
    await expect.poll(() => cut.offline).toBe(true);

    // Units leased before the endless one are computed (offline: their results wait in the
    // queue); those after it expire while it runs and are dropped without computing.
    const endless = cut.leases.findIndex((lease) => lease.unit === 0);
    const skipped = cut.leases.slice(endless + 1);
    expect(skipped.length).toBeGreaterThan(0);
    await expect(page.locator('#log')).toContainText('stopped by the watchdog after its budget of 1500 ms', { timeout: 20_000 });
    await expect.poll(() => figure(page, 'units-expired')).toBe(skipped.length);
    await expect(page.locator('#log')).toContainText('skipped: its deadline passed before it could be computed');
    const stored = await storedWork(page);
    expect(stored.units).toEqual([]);
    expect(stored.results.map((r) => r.unit).sort()).toEqual(cut.leases.slice(0, endless).map((l) => l.unit).sort());

    // Back online: the units are leased again (their leases expired) and computed in time;
    // the skipped leases never produced a result.
    await context.unroute('**/api/**');
    await expect.poll(async () => (await server.stats()).jobs[0].done, { timeout: 30_000 }).toBeGreaterThanOrEqual(7);
    const acknowledged = await acknowledgedLeases(server, 0);
    expect(skipped.filter((lease) => acknowledged.has(lease.lease_id))).toEqual([]);
    await page.click('#stop');
  });

  test('a result that reaches the portal after its deadline is refused once and dropped', async ({ page, context, server }) => {
    await createJob(server, 'hostile', {
      title: 'Short leases',
      policy: { lease_ttl_ms: 1_000, unit_budget_ms: 1_000 },
      inputs: { list: Array(3).fill(ECHO).map(input) },
    });
    const cut = await cutOffAfterJobLoads(context);
    await page.goto(server.url);
    await page.fill('#workers', '1');
    await page.click('#start');
    // The units of the first lease (two: none was timed yet) are computed offline, in time;
    // the results wait.
    await expect.poll(() => cut.leases?.length ?? 0).toBe(2);
    await expect.poll(async () => (await storedWork(page)).results.length, { timeout: 20_000 }).toBe(2);
    // The network comes back only after the deadlines have passed.
    await page.waitForTimeout(1_500);
    // Submissions the portal answered (those cut off while offline never reach it).
    const submissions = [];
    page.on('response', (response) => {
      const request = response.request();
      const path = new URL(request.url()).pathname;
      if (path === '/api/v1/results') submissions.push(request.postDataJSON().lease_id);
      if (path === '/api/v1/exchange') submissions.push(...request.postDataJSON().results.map((r) => r.lease_id));
    });
    await context.unroute('**/api/**');
    await expect.poll(async () => (await storedWork(page)).results.length, { timeout: 30_000 }).toBe(0);
    await expect(page.locator('#log')).toContainText('the portal refused the result');
    await expect(page.locator('#log')).toContainText('expired');
    // Each late result was offered once: a definitive refusal is not retried.
    const late = cut.leases.map((lease) => lease.lease_id);
    await page.waitForTimeout(1_000);
    for (const id of late) expect(submissions.filter((s) => s === id)).toHaveLength(1);
    expect([...(await acknowledgedLeases(server, 0))].filter((id) => late.includes(id))).toEqual([]);
    await page.click('#stop');
  });
});
