// Restricted jobs in a real browser: a distributor's private group is joined through the
// `/#join=<invite>` link (only after the person agrees), the member's browser then computes the
// group's job, and a browser that did not join never receives a unit of it.
const fs = require('node:fs');
const path = require('node:path');
const { test, expect, le, registerDistributor, leaseAnswerOf } = require('./server');

const jobsDir = path.resolve(__dirname, '..', '..', 'jobs', 'dist');

async function api(server, auth, method, route, body) {
  const response = await fetch(`${server.url}${route}`, {
    method,
    headers: { ...auth, ...(body instanceof Buffer ? {} : { 'content-type': 'application/json' }) },
    body: body instanceof Buffer ? body : body && JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${route}: ${response.status} ${text}`);
  return JSON.parse(text);
}

test.use({ serverArgs: ['--demo-units', '0'] });

test('a group job runs only in browsers that joined through the invitation', async ({ browser, server }) => {
  const { authorization: auth } = await registerDistributor(server, 'Private Lab');
  const { module_sha256: moduleSha256 } = await api(server, auth, 'PUT', '/api/v1/modules',
    fs.readFileSync(path.join(jobsDir, 'factor.wasm')));
  const { group, invite } = await api(server, auth, 'POST', '/api/v1/groups', { name: 'Our laptops' });
  const numbers = Array.from({ length: 12 }, (_, i) => 1_000_003n + BigInt(i));
  const job = await api(server, auth, 'POST', '/api/v1/jobs', {
    title: 'Private factoring', description: 'Only for our group', module_sha256: moduleSha256,
    inputs: { list: numbers.map((n) => le.u64(n).toString('base64')) }, group: group.group_id,
  });

  // An outsider's browser computes nothing: the only job is restricted.
  const outsider = await (await browser.newContext()).newPage();
  const outsiderLeases = [];
  outsider.on('response', async (response) => {
    const answer = leaseAnswerOf(new URL(response.url()).pathname, await response.json().catch(() => null));
    if (answer) outsiderLeases.push(...answer.leases);
  });
  await outsider.goto(server.url);
  await outsider.click('#start');
  await expect(outsider.locator('#state')).toHaveText(/computing|waiting for work/);

  // The member opens the invitation link: the invitation leaves the address bar at once, and
  // nothing is joined before the person agrees.
  const member = await (await browser.newContext()).newPage();
  await member.goto(`${server.url}/#join=${invite}`);
  await expect(member.locator('#invitation')).toBeVisible();
  expect(new URL(member.url()).hash).toBe('');
  let members = (await api(server, auth, 'GET', `/api/v1/groups/${group.group_id}`)).members;
  expect(members).toEqual([]);
  await member.click('#join-group');
  await expect(member.locator('#log')).toContainText('joined the group "Our laptops" of Private Lab');
  members = (await api(server, auth, 'GET', `/api/v1/groups/${group.group_id}`)).members;
  expect(members).toHaveLength(1);

  await member.click('#start');
  await expect.poll(async () => (await api(server, auth, 'GET', `/api/v1/jobs/${job.job_id}`)).progress.validated,
    { timeout: 45_000 }).toBe(numbers.length);
  await expect(member.locator('#running-distributor')).toHaveText('Private Lab');
  await expect(member.locator('#volunteer-id')).toHaveText(members[0]);
  // Every unit went to the member, none to the outsider who kept asking all along.
  expect(outsiderLeases).toEqual([]);
  const results = await fetch(`${server.url}/api/v1/jobs/${job.job_id}/results`, { headers: auth });
  const text = await results.text();
  const lines = text.trim().split('\n').map((line) => JSON.parse(line));
  expect(lines).toHaveLength(numbers.length);
  expect(new Set(lines.map((line) => line.volunteer))).toEqual(new Set(members));
});
