// The page and its workers can reach the portal's origin and nothing else: every response
// carries the Content-Security-Policy, and attempts to reach another origin from the page or
// from a worker are blocked before they leave the browser.
const { test, expect } = require('./server');
const http = require('node:http');

/** A server on another loopback address that counts every request it receives. */
async function otherOrigin() {
  const hits = [];
  const server = http.createServer((request, response) => {
    hits.push(request.url);
    // Permissive CORS, so that only the CSP can be what stops a request.
    response.writeHead(200, { 'access-control-allow-origin': '*', 'content-type': 'text/plain' });
    response.end('reached');
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.2', resolve));
  const url = `http://127.0.0.2:${server.address().port}`;
  return { url, hits, close: () => new Promise((resolve) => server.close(resolve)) };
}

test('every page, script, worker script and wasm response carries the CSP', async ({ request, server }) => {
  for (const path of ['/', '/index.html', '/app.js', '/worker.js', '/style.css',
    '/dashboard.html', '/dashboard.js', '/admin.html', '/admin.js', '/log.html', '/log.js',
    '/terms.html', '/volunteer-common.js', '/api/v1/log',
    '/pkg/cyclepool_web_client.js', '/pkg/cyclepool_web_client_bg.wasm', '/api/v1/stats', '/no-such-file']) {
    const response = await request.get(server.url + path);
    const csp = response.headers()['content-security-policy'];
    expect(csp, path).toContain("connect-src 'self'");
    expect(csp, path).toContain("default-src 'self'");
    expect(csp, path).toContain("'wasm-unsafe-eval'");
    expect(csp, path).toContain("frame-ancestors 'self'");
    expect(response.headers()['x-content-type-options'], path).toBe('nosniff');
  }
});

test('neither the page nor its worker can connect to another origin', async ({ page, server }) => {
  const other = await otherOrigin();
  try {
    // Control: the other origin is up and reachable from outside the browser.
    expect(await (await fetch(`${other.url}/control`)).text()).toBe('reached');
    expect(other.hits).toEqual(['/control']);
    other.hits.length = 0;

    const requests = [];
    page.on('request', (request) => requests.push(request.url()));
    await page.goto(server.url);
    await page.evaluate(() => {
      window.violations = [];
      document.addEventListener('securitypolicyviolation', (e) => window.violations.push(e.violatedDirective));
    });

    // From the page: fetch, XHR, image, WebSocket, beacon.
    const fromPage = await page.evaluate(async (target) => {
      const outcome = {};
      outcome.fetch = await fetch(`${target}/page-fetch`, { mode: 'no-cors' }).then(() => 'reached', () => 'blocked');
      outcome.xhr = await new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        xhr.onload = () => resolve('reached');
        xhr.onerror = () => resolve('blocked');
        try { xhr.open('GET', `${target}/page-xhr`); xhr.send(); } catch { resolve('blocked'); }
      });
      outcome.image = await new Promise((resolve) => {
        const image = new Image();
        image.onload = () => resolve('reached');
        image.onerror = () => resolve('blocked');
        image.src = `${target}/page-image`;
      });
      outcome.websocket = await new Promise((resolve) => {
        try {
          const socket = new WebSocket(`${target.replace('http', 'ws')}/page-ws`);
          socket.onopen = () => resolve('reached');
          socket.onerror = () => resolve('blocked');
        } catch { resolve('blocked'); }
      });
      // sendBeacon only queues (it answers true even when the CSP later blocks the send):
      // whether it left the browser is judged by the other origin's hit count below.
      try { navigator.sendBeacon(`${target}/page-beacon`, 'x'); } catch { /* blocked outright */ }
      return outcome;
    }, other.url);
    expect(fromPage).toEqual({ fetch: 'blocked', xhr: 'blocked', image: 'blocked', websocket: 'blocked' });

    // From a running worker (it obeys the CSP of its own script response).
    const workerStarted = page.waitForEvent('worker');
    await page.fill('#workers', '1');
    await page.click('#start');
    const worker = await workerStarted;
    await expect.poll(async () => Number(await page.locator('#units-done').textContent())).toBeGreaterThan(0);
    const fromWorker = await worker.evaluate(async (target) => ({
      fetch: await fetch(`${target}/worker-fetch`, { mode: 'no-cors' }).then(() => 'reached', () => 'blocked'),
      importScript: await import(`${target}/worker-import.js`).then(() => 'reached', () => 'blocked'),
    }), other.url);
    expect(fromWorker).toEqual({ fetch: 'blocked', importScript: 'blocked' });
    await page.click('#stop');

    expect(await page.evaluate(() => window.violations)).toEqual(
      expect.arrayContaining(['connect-src', 'img-src']),
    );
    // Nothing reached the other origin, and everything the page loaded came from the portal.
    expect(other.hits).toEqual([]);
    const foreign = requests.filter((url) => !url.startsWith(server.url) && !url.startsWith(other.url));
    expect(foreign).toEqual([]);
  } finally {
    await other.close();
  }
});
