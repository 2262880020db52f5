// The embed script tag end to end: a page on another origin (127.0.0.2) loads the portal's
// embed.js; its widget (an iframe onto the portal) computes nothing until the visitor clicks
// the consent button inside the frame; every request for the widget goes to the portal; the
// registered site is credited; the page's JS API can stop work but never start it without
// consent; loading the script twice gives one widget; and an unregistered origin cannot frame
// the widget at all (frame-ancestors).
const http = require('node:http');
const { test, expect, createJob, le, leaseRequestOf } = require('./server');

test.use({ serverArgs: ['--demo-units', '64'] });

/** A static web server on another loopback address: the embedding site. */
async function embedder(host, pages) {
  const hits = [];
  const server = http.createServer((request, response) => {
    hits.push(request.url);
    const page = pages[new URL(request.url, 'http://x').pathname];
    if (!page) {
      response.writeHead(404, { 'content-type': 'text/plain' });
      response.end('not here');
      return;
    }
    response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    response.end(page());
  });
  await new Promise((resolve) => server.listen(0, host, resolve));
  const origin = `http://${host}:${server.address().port}`;
  return { origin, hits, close: () => new Promise((resolve) => server.close(resolve)) };
}

/** An embedder's page with `tags` script tags of the widget. */
function embedderPage(portal, site, tags = 1) {
  const tag = `<script src="${portal}/embed.js" data-site="${site}" data-throttle="1" data-workers="1"></script>`;
  // The empty icon keeps the browser from asking this origin for /favicon.ico.
  return `<!doctype html><html><head><meta charset="utf-8"><title>A blog</title>
    <link rel="icon" href="data:,"></head>
    <body><h1>A blog post</h1><p>Text of the post.</p>${tag.repeat(tags)}<p>After the widget.</p></body></html>`;
}

/** Registers a distributor account through the API; returns its bearer headers. */
async function registerDistributor(server, name) {
  const response = await fetch(`${server.url}/api/v1/accounts`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      name, contact: `${name}@example.org`, organisation: 'A blog', purpose: 'Lets its readers lend spare processor time',
    }),
  });
  expect(response.status).toBe(201);
  return { authorization: `Bearer ${(await response.json()).token.secret}` };
}

async function registerSite(server, auth, origin) {
  const response = await fetch(`${server.url}/api/v1/sites`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'A blog', origin }),
  });
  expect(response.status).toBe(201);
  return (await response.json()).site_id;
}

async function publicSite(server, site) {
  return (await fetch(`${server.url}/api/v1/sites/${site}`)).json();
}

/** The lease requests the browser makes, with their bodies. */
function watchLeases(page) {
  const leases = [];
  page.context().on('request', (request) => {
    const lease = leaseRequestOf(request);
    if (lease) leases.push(lease);
  });
  return leases;
}

/** Records every event of the embed API in `window.cyclepoolEvents`. */
async function recordEvents(page) {
  await page.waitForFunction(() => window.Cyclepool !== undefined);
  await page.evaluate(() => {
    window.cyclepoolEvents = [];
    for (const name of window.Cyclepool.events) {
      window.Cyclepool.on(name, (detail) => window.cyclepoolEvents.push({ name, ...detail }));
    }
  });
}

const eventNames = (page) => page.evaluate(() => window.cyclepoolEvents.map((event) => event.name));

test('consent inside the frame starts work for the site; only the portal is contacted; stop() stops',
  async ({ page, server }) => {
    const auth = await registerDistributor(server, 'A Blog');
    const pages = {};
    const blog = await embedder('127.0.0.2', pages);
    try {
      const site = await registerSite(server, auth, blog.origin);
      pages['/'] = () => embedderPage(server.url, site);
      const requests = [];
      page.context().on('request', (request) => requests.push(request.url()));
      const leases = watchLeases(page);

      await page.goto(`${blog.origin}/`);
      await recordEvents(page);
      const widget = page.frameLocator('iframe.cyclepool-widget');
      // The frame comes right after the script tag, with a title for assistive technology.
      await expect(page.locator('script[src$="/embed.js"] + iframe')).toHaveAttribute('title', /Cyclepool/);
      // A plain disclaimer: what runs, that it costs processor time and battery, that it can
      // be stopped, who is credited, and a link to the portal's own page.
      await expect(widget.locator('#consent')).toBeEnabled();
      await expect(widget.locator('#disclaimer')).toContainText('processor time and battery');
      await expect(widget.locator('#disclaimer')).toContainText('stop at any time');
      await expect(widget.locator('#jobs')).toContainText('Mandelbrot');
      await expect(widget.locator('#jobs')).toContainText('portal-demo');
      await expect(widget.locator('#site-name')).toHaveText('A blog');
      await expect(widget.locator('#disclaimer a')).toHaveAttribute('href', '/');
      await expect.poll(() => page.evaluate(() => window.Cyclepool.state.ready)).toBe(true);

      // The page asks to start before the visitor agreed: only the prompt is shown.
      await page.evaluate(() => window.Cyclepool.start());
      await expect.poll(() => eventNames(page)).toContain('consent-needed');
      await expect(widget.locator('#consent-box')).toHaveClass(/attention/);
      await page.waitForTimeout(1_500);
      expect(leases).toEqual([]);
      expect((await server.stats()).jobs[0].leased).toBe(0);
      expect(await page.evaluate(() => window.Cyclepool.state.running)).toBe(false);

      // The visitor clicks consent inside the portal's frame: work starts there.
      await widget.locator('#consent').click();
      await expect.poll(async () => Number(await widget.locator('#units').textContent()), { timeout: 30_000 })
        .toBeGreaterThanOrEqual(3);
      await expect.poll(() => eventNames(page)).toEqual(expect.arrayContaining(['consent', 'started', 'unit']));
      expect(leases.length).toBeGreaterThan(0);
      expect(leases.every((lease) => lease.site === site)).toBe(true);
      // The page learns only what happened, never a key.
      const events = await page.evaluate(() => window.cyclepoolEvents);
      expect(JSON.stringify(events)).not.toMatch(/[0-9a-f]{64}/);

      // The site's credit is recorded once its visitor's results are validated.
      await expect.poll(async () => (await publicSite(server, site)).credit.results, { timeout: 30_000 })
        .toBeGreaterThan(0);

      // stop() from the page stops every worker.
      await page.evaluate(() => window.Cyclepool.stop());
      await expect.poll(() => eventNames(page)).toContain('stopped');
      await expect(widget.locator('#state')).toHaveText('stopped');
      const unitsAtStop = await widget.locator('#units').textContent();
      const leasesAtStop = leases.length;
      await page.waitForTimeout(2_000);
      expect(await widget.locator('#units').textContent()).toBe(unitsAtStop);
      expect(leases.length).toBe(leasesAtStop);

      // Every request the browser made, other than for the blog's own page, went to the portal.
      const elsewhere = requests.filter((url) => !url.startsWith(`${server.url}/`));
      expect(elsewhere).toEqual([`${blog.origin}/`]);
      expect(blog.hits).toEqual(['/']);
    } finally {
      await blog.close();
    }
  });

// Playwright's Chromium keeps no storage for a frame on another site (it runs without storage
// partitioning), so there the widget asks on every visit, as the test above shows. Where the
// browser keeps the frame's storage, consent lasts; that path is checked on the widget opened on
// the portal's own origin, where storage is always available.
test('consent is remembered where the browser keeps storage, and can be withdrawn', async ({ page, server }) => {
  const auth = await registerDistributor(server, 'A Blog');
  const site = await registerSite(server, auth, 'https://blog.example');
  const leases = watchLeases(page);
  const units = async () => Number(await page.locator('#units').textContent());
  await page.goto(`${server.url}/embed.html?site=${site}&throttle=1`);
  await page.locator('#consent').click();
  await expect.poll(units, { timeout: 30_000 }).toBeGreaterThan(0);

  // On the next visit the widget carries on by itself, since the visitor agreed.
  await page.reload();
  await expect(page.locator('#running')).toBeVisible();
  await expect.poll(units, { timeout: 30_000 }).toBeGreaterThan(0);
  // The visitor's own Stop lasts too: the next visit waits for Start.
  await page.locator('#stop').click();
  await page.reload();
  await expect(page.locator('#start')).toBeVisible();
  await expect(page.locator('#state')).toHaveText('stopped');
  const leasesWhileStopped = leases.length;
  await page.waitForTimeout(1_500);
  expect(leases.length).toBe(leasesWhileStopped);
  await page.locator('#start').click();
  await expect.poll(units, { timeout: 30_000 }).toBeGreaterThan(0);

  // Withdrawn: everything stops, and the next visit asks again and runs nothing.
  await page.locator('#withdraw').click();
  await expect(page.locator('#consent')).toBeVisible();
  await page.reload();
  await expect(page.locator('#consent')).toBeEnabled();
  const leasesAtWithdrawal = leases.length;
  await page.waitForTimeout(1_500);
  expect(leases.length).toBe(leasesAtWithdrawal);
  expect(leases.every((lease) => lease.site === site)).toBe(true);
});

test('data-jobs limits the widget to the jobs it names', async ({ page, server }) => {
  const auth = await registerDistributor(server, 'A Blog');
  const pages = {};
  const blog = await embedder('127.0.0.2', pages);
  try {
    const numbers = Array.from({ length: 40 }, (_, i) => 1_000_003n + BigInt(i));
    const factor = await createJob(server, 'factor', {
      title: 'Factor some numbers', inputs: { list: numbers.map((n) => le.u64(n).toString('base64')) },
    });
    const site = await registerSite(server, auth, blog.origin);
    pages['/'] = () => embedderPage(server.url, site).replace('data-site=', `data-jobs="${factor.job_id}" data-site=`);
    const leases = watchLeases(page);
    await page.goto(`${blog.origin}/`);
    const widget = page.frameLocator('iframe.cyclepool-widget');
    // The widget names only the chosen job.
    await expect(widget.locator('#jobs')).toContainText('Factor some numbers');
    await expect(widget.locator('#jobs')).not.toContainText('Mandelbrot');
    await widget.locator('#consent').click();
    await expect.poll(async () => Number(await widget.locator('#units').textContent()), { timeout: 30_000 })
      .toBeGreaterThanOrEqual(3);
    const stats = await server.stats();
    const demo = stats.jobs.find((job) => job.job_id !== factor.job_id);
    expect(demo.done + demo.leased).toBe(0);
    expect(leases.every((lease) => lease.exclude_jobs.includes(demo.job_id))).toBe(true);
  } finally {
    await blog.close();
  }
});

test('loading the script twice gives one widget and one API', async ({ page, server }) => {
  const auth = await registerDistributor(server, 'A Blog');
  const pages = {};
  const blog = await embedder('127.0.0.2', pages);
  try {
    const site = await registerSite(server, auth, blog.origin);
    pages['/'] = () => embedderPage(server.url, site, 2);
    await page.goto(`${blog.origin}/`);
    await expect(page.frameLocator('iframe').locator('#consent')).toBeEnabled();
    await expect(page.locator('script[src$="/embed.js"]')).toHaveCount(2);
    await expect(page.locator('iframe')).toHaveCount(1);
    expect(await page.evaluate(() => typeof window.Cyclepool.start)).toBe('function');
  } finally {
    await blog.close();
  }
});

test('a click on a widget the page has faded does not count as consent', async ({ page, server }) => {
  const auth = await registerDistributor(server, 'A Blog');
  const pages = {};
  const blog = await embedder('127.0.0.2', pages);
  try {
    const site = await registerSite(server, auth, blog.origin);
    // A page that fades the widget to trick a click meant for something else (clickjacking).
    pages['/'] = () => embedderPage(server.url, site)
      .replace('</head>', '<style>iframe.cyclepool-widget { opacity: 0.3 }</style></head>');
    const leases = watchLeases(page);
    await page.goto(`${blog.origin}/`);
    const widget = page.frameLocator('iframe.cyclepool-widget');
    await expect(widget.locator('#consent')).toBeEnabled();
    await page.waitForTimeout(500);
    await widget.locator('#consent').click();
    await expect(widget.locator('#message')).toContainText('cannot count as your consent');
    await expect(widget.locator('#consent')).toBeVisible();
    await page.waitForTimeout(1_500);
    expect(leases).toEqual([]);
    expect(await page.evaluate(() => window.Cyclepool.state.consented)).toBe(false);
  } finally {
    await blog.close();
  }
});

test('an origin that is not the registered one cannot frame the widget', async ({ page, server }) => {
  const auth = await registerDistributor(server, 'A Blog');
  const pages = {};
  const blog = await embedder('127.0.0.2', pages);
  const copycat = await embedder('127.0.0.3', pages);
  try {
    // The site is registered for the blog; the copycat puts the same tag on its own page.
    const site = await registerSite(server, auth, blog.origin);
    pages['/'] = () => embedderPage(server.url, site);
    const refusals = [];
    page.on('console', (message) => { if (/frame-ancestors/.test(message.text())) refusals.push(message.text()); });
    const leases = watchLeases(page);
    const framed = page.waitForResponse((response) => new URL(response.url()).pathname === '/embed.html');

    await page.goto(`${copycat.origin}/`);
    // The portal serves the page, with frame-ancestors naming only the blog; the browser refuses it.
    const response = await framed;
    expect(response.headers()['content-security-policy']).toContain(`frame-ancestors ${blog.origin}`);
    await expect.poll(() => refusals.length).toBeGreaterThan(0);
    const frame = page.frames().find((candidate) => candidate !== page.mainFrame());
    expect(frame).toBeDefined();
    expect(frame.url()).not.toContain('/embed.html');
    await expect(page.frameLocator('iframe.cyclepool-widget').locator('#consent')).toHaveCount(0);
    // The page is told in words; nothing ever asked for work.
    await expect(page.locator('.cyclepool-notice')).toContainText('did not load', { timeout: 20_000 });
    expect(await page.evaluate(() => window.Cyclepool.state.ready)).toBe(false);
    expect(leases).toEqual([]);

    // A site number that was never registered: the portal answers a page nobody may frame.
    pages['/unknown'] = () => embedderPage(server.url, 999_999);
    const unknown = page.waitForResponse((candidate) => new URL(candidate.url()).pathname === '/embed.html');
    await page.goto(`${blog.origin}/unknown`);
    const refused = await unknown;
    expect(refused.status()).toBe(404);
    expect(refused.headers()['content-security-policy']).toContain("frame-ancestors 'none'");
    await expect(page.frameLocator('iframe.cyclepool-widget').locator('#consent')).toHaveCount(0);
  } finally {
    await blog.close();
    await copycat.close();
  }
});
