// What every volunteer page of the portal does the same way (the volunteer page, app.js, and
// the embed widget, embed-app.js): load the web client, keep the volunteer's key seed, and pin
// the portal's keys in IndexedDB.

const KEYS_URL = '/.well-known/cyclepool-keys.json';
const CLIENT_WASM_URL = '/pkg/cyclepool_web_client_bg.wasm';

let compiledClient = null;

// The web client's module, fetched and compiled once per page; nothing of it runs until it is
// instantiated. The page's workers get it compiled rather than fetch and compile it again.
function compileClient() {
  if (!compiledClient) {
    compiledClient = typeof WebAssembly.compileStreaming === 'function'
      ? WebAssembly.compileStreaming(fetch(CLIENT_WASM_URL))
      : fetch(CLIENT_WASM_URL).then((response) => response.arrayBuffer()).then((bytes) => WebAssembly.compile(bytes));
    // A failed load is tried again next time.
    compiledClient.catch(() => { compiledClient = null; });
  }
  return compiledClient;
}

// The web client, loaded only after the person agreed to something (Start, Join, consent).
export async function loadClient() {
  const [client, module] = await Promise.all([import('/pkg/cyclepool_web_client.js'), compileClient()]);
  await client.default({ module_or_path: module });
  return client;
}

// The portal keys and the volunteer's seed live in one IndexedDB database of this origin (in
// a frame on another site, the browser keeps a separate copy per top-level site).
function openKeyStore() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open('cyclepool', 1);
    request.onupgradeneeded = () => request.result.createObjectStore('trust');
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

export async function keyStore(mode, action) {
  const db = await openKeyStore();
  try {
    return await new Promise((resolve, reject) => {
      const request = action(db.transaction('trust', mode).objectStore('trust'));
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

// The identity this browser gives itself: an ed25519 key pair whose 32-byte seed comes from
// the browser's CSPRNG once, and is kept in IndexedDB. Results are signed with it; its public
// half is the volunteer id that credit attaches to.
export async function volunteerSeed() {
  let seed = await keyStore('readonly', (store) => store.get('volunteer-seed'));
  if (!/^[0-9a-f]{64}$/.test(seed ?? '')) {
    const bytes = crypto.getRandomValues(new Uint8Array(32));
    seed = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    await keyStore('readwrite', (store) => store.put(seed, 'volunteer-seed'));
  }
  return seed;
}

// The portal keys this browser trusts: trusted on first use, and after that extended only by
// keys that a trusted key endorsed (the web client's `pin_portal_keys` throws otherwise).
// `client` is the web client, or `loadClient`'s promise of it: the keys are read while it
// loads. `onOffline`, if given, is told when the portal cannot be reached and the keys pinned
// before are used instead (work in hand can go on offline; without pinned keys this throws).
export async function trustedPortalKeys(client, onOffline) {
  const [pinned, offer] = await Promise.all([
    keyStore('readonly', (store) => store.get('portal-keys')).then((keys) => keys ?? ''),
    offeredPortalKeys().then((offered) => ({ offered }), (error) => ({ error })),
  ]);
  const { offered, error } = offer;
  if (error) {
    if (!(error instanceof TypeError)) throw error;
    if (!onOffline || !pinned) throw new Error(`cannot reach the portal to read its keys: ${error.message}`);
    // A network failure (fetch rejects with TypeError): the keys pinned before are all this
    // browser would trust anyway.
    onOffline(error);
    return pinned;
  }
  const trusted = (await client).pin_portal_keys(pinned, offered);
  await keyStore('readwrite', (store) => store.put(trusted, 'portal-keys'));
  return trusted;
}

async function offeredPortalKeys() {
  const response = await fetch(KEYS_URL);
  if (!response.ok) throw new Error(`cannot read the portal's keys (HTTP ${response.status})`);
  return response.text();
}

// Whether this document may use IndexedDB. A frame on another site often may not (browsers
// that block third-party storage, or keep it only with third-party cookies).
export async function storageAvailable() {
  try {
    await keyStore('readonly', (store) => store.count());
    return true;
  } catch {
    return false;
  }
}

// The identity and trusted keys for a visit where nothing can be stored: a key pair made for
// this visit only, and the portal's keys as offered now (the same trust as the page's own code,
// which came from the portal just now; without storage there is nothing to pin them against).
export async function visitIdentity(pinPortalKeys) {
  const bytes = crypto.getRandomValues(new Uint8Array(32));
  return {
    seed: Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join(''),
    trustedKeys: pinPortalKeys('', await offeredPortalKeys()),
  };
}

// Writes `text` into `element` only if it differs: every write is a DOM change, which costs a
// style, layout and paint pass even when the text is the same, and the pages write on every
// worker message.
export function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
}

// Creates one module worker of the volunteer client (static/worker.js): its scripts load at
// once, but it does nothing until `startWorker` gives it its start command. `onEvent` gets
// what it reports.
export function spawnWorker(index, onEvent, onLoadError) {
  const worker = new Worker('/worker.js', { type: 'module', name: `cyclepool-${index}` });
  worker.addEventListener('message', (message) => onEvent(message.data));
  worker.addEventListener('error', (error) => onLoadError(error.message ?? 'unknown error'));
  return worker;
}

// Starts a spawned worker with `start`'s fields (seed, trustedKeys, dutyCycle, paused,
// excludedJobs, site) and the client's compiled module (loaded by `loadClient` before; without
// it, the worker fetches the client itself).
export async function startWorker(worker, start) {
  const module = await compileClient().catch(() => undefined);
  worker.postMessage({ type: 'start', module, ...start });
}
