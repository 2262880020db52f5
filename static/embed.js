// embed.js: one <script> tag puts a small Cyclepool widget on any registered site. The widget
// is an iframe onto the portal's origin; the consent button, the volunteer's key and all the
// computing live in there, so this page never handles work or keys, and every request the
// widget makes goes to the portal. This script only places the frame and relays a small API:
//
//   <script src="https://PORTAL/embed.js" data-site="7" data-throttle="0.25"
//           data-jobs="3,5" data-workers="1" data-theme="light"></script>
//   Cyclepool.on('unit', ({ units }) => …); Cyclepool.start(); Cyclepool.stop();
//
// Cyclepool.start() never starts work by itself: until the visitor has pressed the consent
// button inside the frame, it only draws their attention to that button.
(function cyclepoolEmbed() {
  'use strict';

  // One default object; data- attributes override it one field at a time.
  const DEFAULTS = Object.freeze({
    site: null, // required: the site's number, from the portal's registration
    throttle: 0.25, // share of each worker's time spent computing, 0.1 to 1
    jobs: [], // job ids to compute; empty: every public job
    workers: 1, // background workers (processor cores), at most the browser's count
    theme: 'light', // 'light', 'dark' or 'auto'
    width: 320,
    height: 180,
  });
  // How long the frame may take to say it is ready before the visitor is told why not.
  const READY_TIMEOUT_MS = 15_000;
  const EVENTS = ['ready', 'consent', 'consent-needed', 'started', 'stopped', 'unit', 'error'];
  const GUARD = Symbol.for('cyclepool.embed');

  const script = document.currentScript;
  if (!script || !script.src) {
    console.error('Cyclepool: embed.js must be loaded with a classic <script src="…/embed.js" data-site="…"> tag.');
    return;
  }

  // Loaded twice (two tags, or a tag and a tag manager): the first copy's widget and API stay;
  // the second adds nothing.
  if (window[GUARD]) {
    console.info('Cyclepool: embed.js is already loaded on this page; using the first widget.');
    return;
  }
  window[GUARD] = true;

  // Everything is resolved from the origin this script came from: the portal's.
  const portal = new URL(script.src).origin;

  const listeners = new Map(EVENTS.map((name) => [name, new Set()]));
  const state = { ready: false, consented: false, running: false, units: 0 };
  const pending = []; // commands sent before the frame was ready
  let frame = null;
  let notice = null;
  const config = readConfig();

  function emit(name, detail) {
    for (const callback of listeners.get(name) ?? []) {
      // One failing listener must not keep the others (or the widget) from working.
      try { callback(detail); } catch (error) { console.error('Cyclepool: an event listener threw', error); }
    }
  }

  function readConfig() {
    const data = script.dataset;
    const config = { ...DEFAULTS };
    const warn = (message) => console.warn(`Cyclepool: ${message}`);
    if (/^[0-9]{1,15}$/.test(data.site ?? '')) {
      config.site = Number(data.site);
    }
    if (data.throttle !== undefined) {
      const throttle = Number(data.throttle);
      if (Number.isFinite(throttle)) config.throttle = Math.min(1, Math.max(0.1, throttle));
      else warn(`data-throttle must be a number from 0.1 to 1; using ${DEFAULTS.throttle}`);
    }
    if (data.jobs !== undefined && data.jobs.trim() !== '') {
      const jobs = data.jobs.split(',').map((item) => item.trim());
      config.jobs = jobs.filter((item) => /^[0-9]{1,15}$/.test(item)).map(Number).slice(0, 256);
      if (config.jobs.length !== jobs.length) warn('data-jobs must list job numbers separated by commas; ignoring the rest');
    }
    if (data.workers !== undefined) {
      const workers = Number.parseInt(data.workers, 10);
      const cores = navigator.hardwareConcurrency || 1;
      if (workers >= 1) config.workers = Math.min(workers, cores);
      else warn(`data-workers must be a whole number of at least 1; using ${DEFAULTS.workers}`);
    }
    if (['light', 'dark', 'auto'].includes(data.theme)) config.theme = data.theme;
    for (const side of ['width', 'height']) {
      const value = Number.parseInt(data[side], 10);
      if (value >= 160 && value <= 1000) config[side] = value;
    }
    return config;
  }

  // What the widget needs from this browser; the first thing missing, in words, or null.
  function missingFeature() {
    if (typeof WebAssembly !== 'object') return 'WebAssembly';
    if (typeof Worker !== 'function') return 'Web Workers';
    if (typeof window.postMessage !== 'function') return 'window messaging (postMessage)';
    if (typeof HTMLIFrameElement !== 'function') return 'frames (iframe)';
    return null;
  }

  function showNotice(text) {
    if (!notice) {
      notice = document.createElement('p');
      notice.setAttribute('role', 'status');
      notice.className = 'cyclepool-notice';
      // Styled through the CSSOM, which an embedding page's style-src does not block.
      Object.assign(notice.style, {
        maxWidth: `${config.width}px`, margin: '0.5em 0', padding: '0.5em 0.75em',
        border: '1px solid #c9a227', borderRadius: '6px', background: '#fff8dc', color: '#3b3b3b',
        font: '13px/1.4 system-ui, sans-serif',
      });
      (frame ?? script).after(notice);
    }
    notice.textContent = `Cyclepool: ${text}`;
  }

  function hideNotice() {
    notice?.remove();
    notice = null;
  }

  function post(command) {
    if (!frame) return;
    if (!state.ready) {
      pending.push(command);
      return;
    }
    frame.contentWindow?.postMessage({ cyclepool: 1, ...command }, portal);
  }

  function onMessage(event) {
    // Only the widget's own frame, on the portal's origin, speaks to this script.
    if (!frame || event.source !== frame.contentWindow || event.origin !== portal) return;
    const message = event.data;
    if (!message || message.cyclepool !== 1 || !EVENTS.includes(message.type)) return;
    switch (message.type) {
      case 'ready':
        state.ready = true;
        state.consented = Boolean(message.consented);
        frame.hidden = false;
        hideNotice();
        for (const command of pending.splice(0)) post(command);
        break;
      case 'consent':
        state.consented = Boolean(message.consented);
        break;
      case 'started':
        state.running = true;
        break;
      case 'stopped':
        state.running = false;
        break;
      case 'unit':
        state.units = Number(message.units) || 0;
        break;
      default:
        break;
    }
    const { cyclepool, type, ...detail } = message;
    emit(type, detail);
  }

  function insertWidget() {
    const missing = missingFeature();
    if (missing) {
      showNotice(`this browser lacks ${missing}, which lending processor time needs, so the widget is not shown.`);
      emit('error', { message: `missing ${missing}` });
      return;
    }
    if (config.site === null) {
      showNotice('the widget needs the site number the portal gave this site, in the data-site attribute.');
      console.error('Cyclepool: data-site is missing or not a number');
      return;
    }
    const query = new URLSearchParams({
      site: String(config.site),
      throttle: String(config.throttle),
      workers: String(config.workers),
      theme: config.theme,
    });
    if (config.jobs.length) query.set('jobs', config.jobs.join(','));
    frame = document.createElement('iframe');
    frame.src = `${portal}/embed.html?${query}`;
    frame.title = `Cyclepool: lend spare processor time (${new URL(portal).host})`;
    frame.width = String(config.width);
    frame.height = String(config.height);
    // The portal needs no address of the page it is on: the site number says who to credit.
    frame.referrerPolicy = 'no-referrer';
    frame.className = 'cyclepool-widget';
    Object.assign(frame.style, { border: '1px solid #b8c4bd', borderRadius: '6px', display: 'block', maxWidth: '100%' });
    window.addEventListener('message', onMessage);
    // A page whose CSP has no room for frames from the portal blocks the widget outright.
    document.addEventListener('securitypolicyviolation', (violation) => {
      if (!state.ready && violation.blockedURI.startsWith(portal)
        && /^(frame|child|default)-src/.test(violation.effectiveDirective)) {
        showNotice(`this page's Content-Security-Policy does not allow frames from ${portal} (frame-src), so the widget cannot be shown.`);
        emit('error', { message: 'blocked by the page\'s frame-src' });
      }
    });
    setTimeout(() => {
      if (state.ready) return;
      // Unregistered or revoked sites are refused by the portal (frame-ancestors), which the
      // browser shows as an error page inside the frame; say it in words instead.
      if (frame) frame.hidden = true;
      showNotice('the widget did not load. This site may not be registered with the portal (or its registration was revoked), or the portal is unreachable.');
      emit('error', { message: 'the widget did not load' });
    }, READY_TIMEOUT_MS);
    script.after(frame);
  }

  const api = Object.freeze({
    /** Asks the widget to start. Work starts only if the visitor consented in the widget; otherwise the consent prompt is shown. */
    start() { post({ type: 'start' }); },
    /** Stops every worker of the widget at once. */
    stop() { post({ type: 'stop' }); },
    /** Calls `callback(detail)` on `event` (one of EVENTS); returns a function that removes it. */
    on(event, callback) {
      if (!listeners.has(event)) throw new Error(`Cyclepool: unknown event "${event}"; one of ${EVENTS.join(', ')}`);
      if (typeof callback !== 'function') throw new TypeError('Cyclepool: the callback must be a function');
      listeners.get(event).add(callback);
      return () => listeners.get(event).delete(callback);
    },
    off(event, callback) { listeners.get(event)?.delete(callback); },
    /** What the widget last reported: ready, consented, running, units (done by this visitor here). */
    get state() { return { ...state }; },
    events: EVENTS,
    portal,
  });
  window.Cyclepool = api;

  insertWidget();
}());
