// The public record (log.html): fetches the transparency log page by page, checks its chain
// and signatures in the browser with the web client's verifier and the pinned portal keys,
// and remembers the head it checked so that a later visit notices a rewritten history.

import { loadClient, trustedPortalKeys } from '/volunteer-common.js';

const PAGE = 1000;
// localStorage: the last head this browser verified ({seq, sha256}).
const HEAD_KEY = 'cyclepool-log-head';

const verdict = document.getElementById('verdict');
const body = document.querySelector('#entries tbody');

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function describe(event) {
  switch (event.kind) {
    case 'published':
      return ['published', `job ${event.job}: “${event.title}” by ${event.distributor}` +
        `${event.owner == null ? ' (the portal)' : ` (account ${event.owner})`}; module ${event.module_sha256}` +
        `${event.declared_by ? `; declared by key ${event.declared_by}` : ''}`];
    case 'revoked':
      return ['withdrawn', `job ${event.job}: ${event.reason}`];
    case 'key_revoked':
      return ['key revoked', `key ${event.key} of account ${event.account}: ${event.reason}`];
    default:
      return [String(event.kind), JSON.stringify(event)];
  }
}

function show(entry) {
  const row = body.insertRow();
  row.id = `entry-${entry.seq}`;
  cell(row, String(entry.seq));
  cell(row, new Date(entry.at_ms).toLocaleString());
  const [what, details] = describe(entry.event);
  cell(row, what, `kind-${entry.event.kind}`);
  cell(row, details, 'details');
}

async function fetchPage(from) {
  const response = await fetch(`/api/v1/log?from=${from}&limit=${PAGE}`);
  if (!response.ok) throw new Error(`the portal answered HTTP ${response.status}`);
  return response.json();
}

async function main() {
  const client = await loadClient();
  const keys = await trustedPortalKeys(client);
  const entries = [];
  let head = '';
  let size = 0;
  for (;;) {
    const page = await fetchPage(entries.length);
    size = page.size;
    if (page.entries.length === 0) break;
    // Each page is checked as the continuation of everything before it.
    head = client.verify_log(JSON.stringify(page.entries), keys, head);
    entries.push(...page.entries);
    if (entries.length >= size) break;
  }
  for (const entry of entries) show(entry);
  const remembered = JSON.parse(localStorage.getItem(HEAD_KEY) ?? 'null');
  if (remembered && remembered.seq < entries.length) {
    const then = JSON.parse(client.verify_log(JSON.stringify(entries.slice(0, remembered.seq + 1)), keys, ''));
    if (then.sha256 !== remembered.sha256) {
      throw new Error(`entry ${remembered.seq} differs from the one this browser checked before: the record was rewritten`);
    }
  } else if (remembered && remembered.seq >= entries.length) {
    throw new Error(`the record is shorter (${entries.length} entries) than when this browser last checked it (${remembered.seq + 1})`);
  }
  if (head && head !== 'null') localStorage.setItem(HEAD_KEY, head);
  const last = head && head !== 'null' ? JSON.parse(head) : null;
  verdict.textContent = last
    ? `Verified: ${entries.length} entries, every link and signature checked; the latest is #${last.seq} (SHA-256 ${last.sha256}).`
    : 'The record is empty.';
  verdict.dataset.state = 'verified';
  // The fragment names an entry (#entry-N): bring it into view now that it exists.
  const target = location.hash && document.getElementById(location.hash.slice(1));
  if (target) {
    target.classList.add('target');
    target.scrollIntoView({ block: 'center' });
  }
}

main().catch((error) => {
  verdict.textContent = `The record did not verify: ${error?.message ?? error}`;
  verdict.dataset.state = 'failed';
});
