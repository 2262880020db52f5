// The portal sends its scripts minified (server/src/page_cache.rs): every script it serves must
// be its source's tokens in the source's order, on the source's lines, as a real JS tokenizer
// (acorn) reads both. The rest of the suite runs the pages on these same minified scripts.
const { test, expect } = require('./server');
const acorn = require('acorn');
const fs = require('node:fs');
const path = require('node:path');

const staticDir = process.env.CYCLEPOOL_STATIC_DIR || path.resolve(__dirname, '..', '..', 'static');

/** Every token of `source` as a module reads it: its type and its value. */
function tokens(source) {
  const read = [];
  for (const token of acorn.tokenizer(source, { ecmaVersion: 'latest', sourceType: 'module' })) {
    read.push(`${token.type.label} ${token.value === undefined ? '' : String(token.value)}`);
  }
  return read;
}

test('every script the portal serves is its source, minified, token for token and line for line', async ({ request, server }) => {
  const scripts = [
    ...fs.readdirSync(staticDir).filter((name) => name.endsWith('.js')).map((name) => `/${name}`),
    ...fs.readdirSync(path.join(staticDir, 'pkg')).filter((name) => name.endsWith('.js')).map((name) => `/pkg/${name}`),
  ];
  expect(scripts).toContain('/app.js');
  expect(scripts).toContain('/pkg/cyclepool_web_client.js');
  let sourceBytes = 0;
  let servedBytes = 0;
  for (const script of scripts) {
    const source = fs.readFileSync(path.join(staticDir, script), 'utf8');
    const response = await request.get(server.url + script, { headers: { 'accept-encoding': 'br' } });
    expect(response.status(), script).toBe(200);
    expect(response.headers()['content-encoding'], script).toBe('br');
    const served = await response.text();
    expect(tokens(served), script).toEqual(tokens(source));
    expect(served.split('\n').length, script).toBe(source.split('\n').length);
    sourceBytes += source.length;
    servedBytes += served.length;
  }
  // Comments and indentation are a third of the sources and more.
  expect(servedBytes).toBeLessThan(sourceBytes * 0.75);
});
