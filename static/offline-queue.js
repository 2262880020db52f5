// The offline queue of the volunteer workers: units leased and results finished, kept in
// IndexedDB so that work goes on while the network is down and nothing finished is lost to a
// reload or a crash. Imported by the web client (wasm) in each worker, and by the page, which
// only counts what waits.
//
// Every worker of this origin shares the queue. A record is claimed by writing its `owner` (a
// random id per worker) in a readwrite transaction; each worker holds a Web Lock named after its
// owner id for as long as it lives, so a claim whose owner no longer holds its lock (the tab
// was reloaded, the worker stopped or crashed) may be taken over. Records are plain objects;
// the wasm side sends and receives them as JSON text.

const DB_NAME = 'cyclepool-offline';
const DB_VERSION = 1;
const UNITS = 'units';
const RESULTS = 'results';
// Both stores have an index by age, so that the oldest work goes first.
const OLDEST = 'oldest';
const OWNER_LOCK = 'cyclepool-offline-owner:';

function openDatabase() {
  return new Promise((resolve, reject) => {
    const request = indexedDB.open(DB_NAME, DB_VERSION);
    request.onupgradeneeded = () => {
      const db = request.result;
      db.createObjectStore(UNITS, { keyPath: 'lease_id' }).createIndex(OLDEST, 'received_ms');
      db.createObjectStore(RESULTS, { keyPath: 'lease_id' }).createIndex(OLDEST, 'finished_ms');
    };
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
    request.onblocked = () => reject(new Error('the offline queue is held open by an older version of this page'));
  });
}

// Runs `body(transaction, out)` in one transaction and resolves with `out.value` once the
// transaction has committed (so a write is in the store when the promise resolves).
// Relaxed durability: a committed write survives a crash of the tab or the browser, not a
// power cut. That costs no acknowledged work (a result lost that way was never sent; its lease
// expires and the unit is computed again) and spares a disk flush per unit, which small units
// could not afford.
function run(db, stores, mode, body) {
  return new Promise((resolve, reject) => {
    const transaction = db.transaction(stores, mode, { durability: 'relaxed' });
    const out = { value: undefined };
    transaction.oncomplete = () => resolve(out.value);
    transaction.onerror = () => reject(transaction.error);
    transaction.onabort = () => reject(transaction.error ?? new Error('offline queue transaction aborted'));
    try {
      body(transaction, out);
    } catch (error) {
      transaction.abort();
      reject(error);
    }
  });
}

function randomId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// Takes the lock that says "this owner is alive" and keeps it until the worker ends.
function holdOwnerLock(owner) {
  return new Promise((acquired, failed) => {
    navigator.locks.request(OWNER_LOCK + owner, () => {
      acquired();
      return new Promise(() => {});
    }).catch(failed);
  });
}

class IndexedDbQueue {
  constructor(db, owner) {
    this.db = db;
    this.owner = owner;
    this.persistent = true;
    this.reason = null;
  }

  // The owners alive now: those holding their lock, in any tab or worker of this origin.
  async liveOwners() {
    const { held = [] } = await navigator.locks.query();
    return new Set(held.map((lock) => lock.name)
      .filter((name) => name?.startsWith(OWNER_LOCK))
      .map((name) => name.slice(OWNER_LOCK.length)));
  }

  // A record is free if nobody claimed it, or its owner has died. `since` is when the live
  // owners were listed: an owner missing from that list whose claim is older than the list
  // took its lock before claiming and has let go of it since, so it is gone. A claim made
  // after the list was taken may be a worker that started meanwhile, and is left alone.
  isFree(record, live, since) {
    if (!record.owner) return true;
    if (record.owner === this.owner || live.has(record.owner)) return false;
    return record.claimed_ms < since;
  }

  // Claims up to `max` free records of `store`, oldest first, that `accept` admits; deletes
  // the free records that `stale` condemns on the way. Resolves with both lists.
  async claim(store, max, accept, stale = () => false) {
    const since = Date.now();
    const live = await this.liveOwners();
    return run(this.db, [store], 'readwrite', (transaction, out) => {
      const claimed = [];
      const dropped = [];
      const now = Date.now();
      const request = transaction.objectStore(store).index(OLDEST).openCursor();
      request.onsuccess = () => {
        const cursor = request.result;
        if (!cursor || claimed.length >= max) {
          out.value = { claimed, dropped };
          return;
        }
        const record = cursor.value;
        if (stale(record) && this.isFree(record, live, since)) {
          cursor.delete();
          dropped.push(record);
        } else if (accept(record) && this.isFree(record, live, since)) {
          record.owner = this.owner;
          record.claimed_ms = now;
          cursor.update(record);
          claimed.push(record);
        }
        cursor.continue();
      };
    });
  }

  // Units just leased by this worker: stored as already claimed by it.
  addUnits(json) {
    const units = JSON.parse(json);
    const now = Date.now();
    return run(this.db, [UNITS], 'readwrite', (transaction) => {
      const store = transaction.objectStore(UNITS);
      for (const unit of units) store.put({ ...unit, owner: this.owner, claimed_ms: now });
    });
  }

  // Free units leased to `volunteer` (only its key can sign their results), oldest first.
  // Free units of any volunteer whose deadline (portal's clock) is before `staleBefore` are
  // deleted: whatever the clocks, they can no longer be returned in time, and units of a key
  // this browser no longer uses would otherwise stay forever. Resolves with JSON
  // `{claimed, dropped}`.
  async claimUnits(volunteer, max, staleBefore) {
    const found = await this.claim(UNITS, max, (unit) => unit.volunteer === volunteer,
      (unit) => unit.lease?.deadline_ms < staleBefore);
    return JSON.stringify(found);
  }

  // Lets go of units this worker holds but will not compute (it was stopped).
  releaseUnits(json) {
    const ids = JSON.parse(json);
    return run(this.db, [UNITS], 'readwrite', (transaction) => {
      const store = transaction.objectStore(UNITS);
      for (const id of ids) {
        const request = store.get(id);
        request.onsuccess = () => {
          const unit = request.result;
          if (unit && unit.owner === this.owner) store.put({ ...unit, owner: null });
        };
      }
    });
  }

  // A unit that will not be computed: its deadline passed, its job was refused, it failed.
  dropUnit(leaseId) {
    return run(this.db, [UNITS], 'readwrite', (transaction) => transaction.objectStore(UNITS).delete(leaseId));
  }

  // A unit computed: its result replaces it in one transaction, so that a crash leaves either
  // the unit (computed again) or the result (sent), never neither. The result is left free,
  // for whichever worker sends next. (A result sent at once is not stored at all: its unit
  // stays until the portal answers, see removeAnswered.)
  finishUnit(json) {
    const result = JSON.parse(json);
    return run(this.db, [UNITS, RESULTS], 'readwrite', (transaction) => {
      transaction.objectStore(UNITS).delete(result.lease_id);
      transaction.objectStore(RESULTS).put({ ...result, owner: null, claimed_ms: Date.now() });
    });
  }

  // Up to `max` of the oldest free results (of any volunteer: they are signed already),
  // claimed in one transaction: a JSON array, oldest first.
  async claimResults(max) {
    return JSON.stringify((await this.claim(RESULTS, max, () => true)).claimed);
  }

  // The portal gave no definitive answer: the result stays, free for the next try.
  releaseResult(leaseId) {
    return run(this.db, [RESULTS], 'readwrite', (transaction) => {
      const store = transaction.objectStore(RESULTS);
      const request = store.get(leaseId);
      request.onsuccess = () => {
        if (request.result) store.put({ ...request.result, owner: null });
      };
    });
  }

  // The portal acknowledged these leases' results (a JSON array of lease ids), or refused them
  // for good: what the queue holds of them goes, in one transaction. That is the result if it
  // was stored, or the unit if its result was sent from memory as soon as it was computed.
  removeAnswered(json) {
    const ids = JSON.parse(json);
    return run(this.db, [UNITS, RESULTS], 'readwrite', (transaction) => {
      const units = transaction.objectStore(UNITS);
      const results = transaction.objectStore(RESULTS);
      for (const id of ids) {
        results.delete(id);
        units.delete(id);
      }
    });
  }

  counts() {
    return countIn(this.db);
  }
}

// The same interface in memory, for a browser without IndexedDB or Web Locks (or with storage
// turned off): work goes on, but nothing outlives the worker and workers share nothing.
class MemoryQueue {
  constructor(reason) {
    this.persistent = false;
    this.reason = reason;
    this.units = new Map();
    this.results = new Map();
  }

  claimFrom(map, max, accept, order) {
    const claimed = [...map.values()].filter((record) => !record.owner && accept(record))
      .sort((a, b) => a[order] - b[order]).slice(0, max);
    for (const record of claimed) record.owner = 'memory';
    return claimed;
  }

  async addUnits(json) {
    for (const unit of JSON.parse(json)) this.units.set(unit.lease_id, { ...unit, owner: 'memory' });
  }

  async claimUnits(volunteer, max, staleBefore) {
    const dropped = [...this.units.values()].filter((unit) => !unit.owner && unit.lease?.deadline_ms < staleBefore);
    for (const unit of dropped) this.units.delete(unit.lease_id);
    const claimed = this.claimFrom(this.units, max, (unit) => unit.volunteer === volunteer, 'received_ms');
    return JSON.stringify({ claimed, dropped });
  }

  async releaseUnits(json) {
    for (const id of JSON.parse(json)) {
      const unit = this.units.get(id);
      if (unit) unit.owner = null;
    }
  }

  async dropUnit(leaseId) {
    this.units.delete(leaseId);
  }

  async finishUnit(json) {
    const result = JSON.parse(json);
    this.units.delete(result.lease_id);
    this.results.set(result.lease_id, { ...result, owner: null });
  }

  async claimResults(max) {
    return JSON.stringify(this.claimFrom(this.results, max, () => true, 'finished_ms'));
  }

  async releaseResult(leaseId) {
    const result = this.results.get(leaseId);
    if (result) result.owner = null;
  }

  async removeAnswered(json) {
    for (const id of JSON.parse(json)) {
      this.results.delete(id);
      this.units.delete(id);
    }
  }

  async counts() {
    return { units: this.units.size, results: this.results.size };
  }
}

function countIn(db) {
  return run(db, [UNITS, RESULTS], 'readonly', (transaction, out) => {
    const counts = { units: 0, results: 0 };
    const units = transaction.objectStore(UNITS).count();
    units.onsuccess = () => { counts.units = units.result; };
    const results = transaction.objectStore(RESULTS).count();
    results.onsuccess = () => { counts.results = results.result; };
    out.value = counts;
  });
}

let opened = null;

// Opens this worker's view of the queue, once per worker: a worker may open it early (while
// its start command is on the way) and the client gets the same queue. Never throws: without
// IndexedDB or Web Locks the queue lives in memory, and `reason` says why.
export function openQueue() {
  opened ??= open();
  return opened;
}

async function open() {
  if (typeof indexedDB === 'undefined') return new MemoryQueue('this browser offers no IndexedDB here');
  if (!globalThis.navigator?.locks) return new MemoryQueue('this browser lacks Web Locks');
  const owner = randomId();
  // The database and the lock are independent: both are asked for at once. A lock taken for a
  // queue that then falls back to memory only marks an owner that claims nothing.
  const [db, locked] = await Promise.all([
    openDatabase().then((value) => ({ value }), (error) => ({ error })),
    holdOwnerLock(owner).then(() => ({}), (error) => ({ error })),
  ]);
  const error = db.error ?? locked.error;
  if (error) {
    db.value?.close();
    return new MemoryQueue(`IndexedDB refused: ${error?.message ?? error}`);
  }
  return new IndexedDbQueue(db.value, owner);
}

// For the page: how many units and results wait in the queue, or null when there is no queue
// (never created, or unreadable). Does not create the database if it does not exist.
export async function waitingWork() {
  try {
    if (typeof indexedDB === 'undefined') return null;
    if (typeof indexedDB.databases === 'function') {
      const names = (await indexedDB.databases()).map((db) => db.name);
      if (!names.includes(DB_NAME)) return null;
    }
    const db = await openDatabase();
    try {
      return await countIn(db);
    } finally {
      db.close();
    }
  } catch {
    return null;
  }
}
