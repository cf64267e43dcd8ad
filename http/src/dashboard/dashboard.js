// hookd dashboard: live figures from /v1/stats/stream, plus the few actions an operator needs
// (redrive dead letters, disable or enable endpoints). Plain DOM, no build step.
//
// Every value from the API reaches the page through textContent or attributes, never markup,
// and only fields named in this file are rendered: whatever else a response carries (an
// endpoint's `secret`, a key) never reaches the page.
'use strict';

(() => {
  const TOKEN_KEY = 'hookd.token';
  const DASH = '–';
  const RECONNECT_FIRST_MS = 1000;
  const RECONNECT_MAX_MS = 10000;
  // The server sends an event every second; this much silence means a connection that died
  // without closing (a sleeping laptop, a proxy), which would otherwise read "live" forever.
  const STREAM_STALL_MS = 10000;
  const DEAD_LETTERS_EVERY_MS = 3000;
  const ENDPOINTS_EVERY_MS = 5000;
  const APPS_EVERY_MS = 30000;
  const DEMO_EVERY_MS = 2000;
  const SPARK_POINTS = 60;

  const DEMO_MESSAGES = {
    up: 'Receiver is up: it accepts every webhook.',
    down: 'Receiver is down: it refuses every webhook with 503.',
    slow: 'Receiver is slow: it answers after 3 s.',
    flaky: 'Receiver is flaky: it fails half of the webhooks.',
  };

  // The signed-in session: its scope and an AbortController that stops its stream and polls.
  let session = null;
  // Server clock minus ours, so "3 s ago" is measured against the server's timestamps.
  let skewMs = 0;
  // Names shown instead of ids; bumping the version makes rows that show them rebuild.
  const appNames = new Map();
  const endpointUrls = new Map();
  let labelsVersion = 0;
  // What each row was built from: kept out of the DOM, so no field lands in an attribute.
  const rowState = new WeakMap();
  const delivered = [];
  let historyDelivery = null;
  let historyRequest = 0;
  let messageTimer = 0;

  const $ = (id) => document.getElementById(id);

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  // ---- API ---------------------------------------------------------------------------------

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || '';
  }

  async function api(method, path, body, signal = session && session.signal) {
    const headers = { Authorization: `Bearer ${token()}`, Accept: 'application/json' };
    const init = { method, headers, signal, cache: 'no-store' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      if (err.name === 'AbortError') throw err;
      throw new ApiError(0, `Could not reach hookd (${err.message})`);
    }
    if (!response.ok) throw await problem(response);
    return response.status === 204 ? null : response.json();
  }

  // Errors are RFC 9457 problem+json; `detail` says what went wrong with this request.
  async function problem(response) {
    const body = await response.json().catch(() => null);
    const text = (body && (body.detail || body.title)) || `${response.status} ${response.statusText}`.trim();
    return new ApiError(response.status, text);
  }

  function report(err) {
    if (!err || err.name === 'AbortError' || !session) return;
    if (err.status === 401) {
      signOut(err.message);
      return;
    }
    showMessage(err.message, 'error');
  }

  function showMessage(text, kind = 'info') {
    const box = $('message');
    box.textContent = text;
    box.className = `message message-${kind}`;
    clearTimeout(messageTimer);
    // Confirmations fade; errors stay until something replaces them.
    if (kind === 'info') messageTimer = setTimeout(() => { box.textContent = ''; }, 8000);
  }

  // Resolves after `ms`, or at once when the session ends, so loops exit promptly.
  function sleep(ms, signal) {
    return new Promise((resolve) => {
      const onAbort = () => { clearTimeout(timer); resolve(); };
      const timer = setTimeout(() => { signal.removeEventListener('abort', onAbort); resolve(); }, ms);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  // Waits for each run to finish before the next, so a slow server never piles up requests.
  async function poll(mine, everyMs, task) {
    while (!mine.signal.aborted) {
      if (!document.hidden) await task().catch(report);
      await sleep(everyMs, mine.signal);
    }
  }

  // ---- Sign-in -----------------------------------------------------------------------------

  async function signIn(candidate) {
    sessionStorage.setItem(TOKEN_KEY, candidate);
    $('signin-submit').disabled = true;
    let snapshot;
    try {
      snapshot = await api('GET', '/v1/stats');
    } catch (err) {
      sessionStorage.removeItem(TOKEN_KEY);
      showSignin();
      showMessage(err.message, 'error');
      return;
    } finally {
      $('signin-submit').disabled = false;
    }
    startSession(snapshot);
  }

  function showSignin() {
    $('app').hidden = true;
    $('signout').hidden = true;
    $('live').hidden = true;
    $('scope').hidden = true;
    $('signin').hidden = false;
    $('signin-token').focus();
  }

  function startSession(snapshot) {
    const controller = new AbortController();
    const mine = { signal: controller.signal, controller, scope: snapshot.scope === 'app' ? 'app' : 'all' };
    session = mine;
    const appScope = mine.scope === 'app';

    $('signin').hidden = true;
    $('signin-token').value = '';
    $('message').textContent = '';
    $('app').hidden = false;
    $('signout').hidden = false;
    $('scope').hidden = false;
    $('scope').textContent = appScope ? `app ${snapshot.app_id || ''}`.trim() : 'admin: all apps';
    $('live').hidden = false;
    setLive('connecting');
    // The admin token cannot act for an app, so app-only sections stay hidden for it.
    $('dead-letters').hidden = !appScope;
    $('endpoints').hidden = !appScope;
    $('apps').hidden = appScope;
    $('admin-note').hidden = appScope;
    $('recent-app-col').hidden = appScope;

    renderSnapshot(snapshot);
    streamStats(mine);
    if (appScope) {
      poll(mine, DEAD_LETTERS_EVERY_MS, loadDeadLetters);
      poll(mine, ENDPOINTS_EVERY_MS, loadEndpoints);
    } else {
      poll(mine, APPS_EVERY_MS, loadApps);
    }
    loadDemo(mine);
  }

  // Ends the session without a reload, so the reason stays on screen.
  function signOut(reason) {
    if (session) session.controller.abort();
    session = null;
    sessionStorage.removeItem(TOKEN_KEY);
    closeHistory();
    showSignin();
    if (reason) showMessage(reason, 'error');
  }

  // ---- Live stream -------------------------------------------------------------------------

  function setLive(state) {
    const badge = $('live');
    badge.textContent = state;
    badge.className = `live live-${state}`;
  }

  // EventSource cannot send an Authorization header, hence fetch and a hand-rolled parser.
  async function streamStats(mine) {
    let delay = RECONNECT_FIRST_MS;
    while (!mine.signal.aborted) {
      try {
        await readStream(mine, () => { delay = RECONNECT_FIRST_MS; });
      } catch (err) {
        if (err.status === 401 || err.status === 403) {
          if (session === mine) signOut(err.message);
          return;
        }
      }
      if (mine.signal.aborted) return;
      setLive('reconnecting');
      await sleep(delay, mine.signal);
      delay = Math.min(delay * 2, RECONNECT_MAX_MS);
    }
  }

  async function readStream(mine, onEvent) {
    const connection = new AbortController();
    const abort = () => connection.abort();
    mine.signal.addEventListener('abort', abort, { once: true });
    let stall = 0;
    const watch = () => {
      clearTimeout(stall);
      stall = setTimeout(abort, STREAM_STALL_MS);
    };
    try {
      watch();
      const response = await fetch('/v1/stats/stream', {
        headers: { Authorization: `Bearer ${token()}`, Accept: 'text/event-stream' },
        signal: connection.signal,
        cache: 'no-store',
      });
      if (!response.ok) throw await problem(response);
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      const feed = sseParser((event, data) => {
        let body;
        try {
          body = JSON.parse(data);
        } catch {
          return;
        }
        if (event === 'stats') {
          setLive('live');
          onEvent();
          renderSnapshot(body);
        } else if (event === 'problem') {
          // hookd reports a failed reading in the stream and carries on; a revoked key ends it.
          const text = (body && (body.detail || body.title)) || 'hookd could not take a reading';
          if (body && (body.status === 401 || body.status === 403)) throw new ApiError(body.status, text);
          showMessage(text, 'error');
        }
      });
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        watch();
        feed(decoder.decode(value, { stream: true }));
      }
    } finally {
      clearTimeout(stall);
      mine.signal.removeEventListener('abort', abort);
      connection.abort();
    }
  }

  // The text/event-stream rules for what hookd sends: `event:` and `data:` lines accumulate,
  // a blank line dispatches, lines starting with `:` are comments (keep-alives).
  function sseParser(onEvent) {
    let buffer = '';
    let name = '';
    let data = [];
    return (text) => {
      buffer += text;
      const lines = buffer.split('\n');
      buffer = lines.pop();
      for (const raw of lines) {
        const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
        if (line === '') {
          if (data.length) onEvent(name || 'message', data.join('\n'));
          name = '';
          data = [];
        } else if (!line.startsWith(':')) {
          const colon = line.indexOf(':');
          const field = colon < 0 ? line : line.slice(0, colon);
          const value = colon < 0 ? '' : line.slice(colon + 1).replace(/^ /, '');
          if (field === 'event') name = value;
          else if (field === 'data') data.push(value);
        }
      }
    };
  }

  // ---- Formatting --------------------------------------------------------------------------

  const isNum = (v) => typeof v === 'number' && Number.isFinite(v);
  const fmtRate = (v) => (isNum(v) ? `${v.toFixed(1)}/s` : DASH);
  const fmtPercent = (v) => (isNum(v) ? `${(v * 100).toFixed(1)}%` : DASH);
  // The log keeps whole milliseconds, so a loopback receiver reads 0: show that as under 1 ms.
  const fmtMs = (v) => (isNum(v) ? (v < 1 ? '< 1 ms' : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`) : DASH);
  const fmtInt = (v) => (isNum(v) ? String(Math.round(v)) : DASH);

  function fmtRelative(iso, pastOnly) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return DASH;
    let s = Math.round((Date.now() + skewMs - at) / 1000);
    if (pastOnly) s = Math.max(0, s);
    const a = Math.abs(s);
    const span = a < 60 ? `${a} s`
      : a < 3600 ? `${Math.floor(a / 60)} min`
        : a < 86400 ? `${Math.floor(a / 3600)} h`
          : `${Math.floor(a / 86400)} d`;
    return s < 0 ? `in ${span}` : `${span} ago`;
  }

  function fmtDateTime(iso) {
    const at = Date.parse(iso);
    return Number.isNaN(at) ? DASH : `${new Date(at).toLocaleString()} (${fmtRelative(iso)})`;
  }

  function fmtClock(iso) {
    const at = Date.parse(iso);
    if (Number.isNaN(at)) return DASH;
    return new Date(at).toLocaleTimeString([], {
      hour: '2-digit', minute: '2-digit', second: '2-digit', fractionalSecondDigits: 3,
    });
  }

  // Ids are time-ordered UUIDs, so recent ones share their leading digits: the tail tells
  // them apart.
  function shortId(id) {
    const text = String(id || '');
    const cut = text.indexOf('_') + 1;
    return text.length > cut + 10 ? `${text.slice(0, cut)}…${text.slice(-6)}` : text;
  }

  function endpointLabel(id) {
    const url = endpointUrls.get(id);
    return url ? url.replace(/^https?:\/\//, '') : shortId(id);
  }

  function lastResult(statusCode, error) {
    if (error) return isNum(statusCode) && !error.includes(String(statusCode)) ? `HTTP ${statusCode}: ${error}` : error;
    return isNum(statusCode) ? `HTTP ${statusCode}` : DASH;
  }

  // ---- DOM helpers -------------------------------------------------------------------------

  // Builds an element; strings become text nodes, so API data is never parsed as markup.
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name === 'class') node.className = value;
      else node.setAttribute(name, value === true ? '' : String(value));
    }
    for (const child of children) {
      if (child !== null && child !== undefined) node.append(child);
    }
    return node;
  }

  const setText = (id, text) => { $(id).textContent = text; };
  const slug = (value) => String(value).toLowerCase().replace(/[^a-z0-9_-]/g, '');

  function badge(kind, value) {
    if (!value) return DASH;
    return el('span', { class: `badge ${kind}-${slug(value)}` }, String(value).replace(/_/g, ' '));
  }

  const idCell = (id) => el('td', { class: 'mono', title: id }, shortId(id));
  // Table cells ignore max-width, so long text is clipped by a block inside the cell.
  const clipCell = (text, title, extraClass = '') => el('td', { title: title || null },
    el('div', { class: `clip ${extraClass}`.trim() }, text));
  const endpointCell = (id) => clipCell(endpointLabel(id), id);
  const agoCell = (iso) => el('td', { title: iso, 'data-ago': iso }, fmtRelative(iso, true));
  const numCell = (v, suffix = '') => el('td', { class: 'num' }, isNum(v) ? `${v}${suffix}` : DASH);

  function resultCell(statusCode, error) {
    const text = lastResult(statusCode, error);
    return clipCell(text, text);
  }

  // Rows are kept by id and rebuilt only when their data changed: the tables refresh every
  // 1–5 s, and a row replaced between mousedown and mouseup would swallow the click.
  function syncRows(tbody, items, build) {
    const existing = new Map();
    for (const row of tbody.rows) {
      const state = rowState.get(row);
      if (state) existing.set(state.key, row);
    }
    const rows = items.map((item) => {
      const signature = `${labelsVersion}:${JSON.stringify(item)}`;
      let row = existing.get(item.id);
      if (!row || rowState.get(row).signature !== signature) {
        row = build(item);
        rowState.set(row, { key: item.id, signature, item });
      }
      return row;
    });
    rows.forEach((row, i) => {
      if (tbody.rows[i] !== row) tbody.insertBefore(row, tbody.rows[i] || null);
    });
    while (tbody.rows.length > rows.length) tbody.lastElementChild.remove();
    for (const cell of tbody.querySelectorAll('[data-ago]')) {
      cell.textContent = fmtRelative(cell.getAttribute('data-ago'), true);
    }
    return rows.length;
  }

  // ---- Snapshot ----------------------------------------------------------------------------

  function renderSnapshot(snap) {
    if (!snap || typeof snap !== 'object') return;
    const at = Date.parse(snap.at);
    if (!Number.isNaN(at)) {
      skewMs = at - Date.now();
      setText('as-of', `as of ${new Date(at).toLocaleTimeString()}`);
    }
    setText('window', isNum(snap.window_s) ? String(snap.window_s) : DASH);

    const rates = snap.rates || {};
    setText('stat-published', fmtRate(rates.published));
    setText('stat-delivered', fmtRate(rates.delivered));
    setText('stat-failed', fmtRate(rates.failed_attempts));
    setText('stat-retries', fmtRate(rates.retries));
    setText('stat-dead-lettered', fmtRate(rates.dead_lettered));
    setText('stat-success', fmtPercent(snap.success_ratio));
    const latency = snap.latency_ms || {};
    setText('stat-p50', fmtMs(latency.p50));
    setText('stat-p95', fmtMs(latency.p95));
    setText('stat-p99', fmtMs(latency.p99));
    const queue = snap.queue || {};
    setText('queue-pending', fmtInt(queue.pending));
    setText('queue-parked', fmtInt(queue.parked));
    setText('queue-in-flight', fmtInt(queue.in_flight));
    setText('queue-dead', fmtInt(queue.dead));

    drawSparkline(rates.delivered);
    const recent = Array.isArray(snap.recent) ? snap.recent : [];
    const count = syncRows($('recent').tBodies[0], recent, recentRow);
    $('recent-empty').hidden = count > 0;
  }

  function drawSparkline(value) {
    delivered.push(isNum(value) ? value : 0);
    if (delivered.length > SPARK_POINTS) delivered.shift();
    const max = Math.max(...delivered, 0.1);
    const offset = SPARK_POINTS - delivered.length;
    const points = delivered.map((v, i) => `${offset + i},${(19 - (v / max) * 18).toFixed(2)}`);
    $('spark-delivered').setAttribute('points', points.join(' '));
  }

  // A pending delivery with no next attempt is parked: it waits for its endpoint's circuit to
  // close or for its place in the endpoint's lane, and no attempt is charged meanwhile.
  function stateBadge(d) {
    if (d.state === 'pending' && !d.next_attempt_at) {
      const parked = badge('state', 'parked');
      parked.title = "waiting for the endpoint's circuit to close or for its turn in the endpoint's lane";
      return parked;
    }
    return badge('state', d.state);
  }

  function recentRow(d) {
    const adminScope = session && session.scope === 'all';
    return el('tr', { class: 'clickable', tabindex: 0, 'data-delivery-id': d.id },
      idCell(d.id),
      adminScope ? el('td', { title: d.app_id }, appNames.get(d.app_id) || shortId(d.app_id)) : null,
      endpointCell(d.endpoint_id),
      el('td', null, stateBadge(d)),
      numCell(d.attempts),
      resultCell(d.last_http_status, d.last_error),
      agoCell(d.updated_at));
  }

  // ---- Delivery history --------------------------------------------------------------------

  const SUMMARY_FIELDS = [
    ['id', 'ID'], ['app_id', 'App'], ['event_id', 'Event'], ['endpoint_id', 'Endpoint'],
    ['state', 'State'], ['attempts', 'Attempts'], ['next_attempt_at', 'Next attempt'],
    ['last_http_status', 'Last HTTP status'], ['last_error', 'Last error'],
    ['created_at', 'Created'], ['updated_at', 'Updated'],
  ];

  function openHistory(delivery) {
    historyDelivery = delivery;
    $('history').hidden = false;
    const appScope = session && session.scope === 'app';
    $('history-note').hidden = appScope;
    $('history-table-wrap').hidden = !appScope;
    $('history-entries').tBodies[0].replaceChildren();
    renderSummary(delivery);
    $('history').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    if (appScope) loadHistory();
    else $('history-status').hidden = true;
  }

  function closeHistory() {
    historyDelivery = null;
    historyRequest += 1;
    $('history').hidden = true;
  }

  async function loadHistory() {
    if (!historyDelivery || !session || session.scope !== 'app') return;
    const request = ++historyRequest;
    const id = encodeURIComponent(historyDelivery.id);
    const status = $('history-status');
    if (!$('history-entries').tBodies[0].rows.length) {
      status.textContent = 'Loading…';
      status.hidden = false;
    }
    try {
      const [current, history] = await Promise.all([
        api('GET', `/v1/deliveries/${id}`),
        api('GET', `/v1/deliveries/${id}/history`),
      ]);
      if (request !== historyRequest) return; // another row was opened meanwhile
      renderSummary(current);
      const entries = (history && Array.isArray(history.data) ? history.data : [])
        .slice()
        .sort((a, b) => (a.seq ?? 0) - (b.seq ?? 0));
      $('history-entries').tBodies[0].replaceChildren(...entries.map(historyRow));
      status.textContent = 'No history yet';
      status.hidden = entries.length > 0;
    } catch (err) {
      if (request !== historyRequest) return;
      status.hidden = true;
      report(err);
    }
  }

  function renderSummary(d) {
    $('history-title').textContent = `Delivery ${shortId(d.id)}`;
    $('history-title').title = d.id || '';
    const items = [];
    for (const [field, label] of SUMMARY_FIELDS) {
      const value = d[field];
      if (value === undefined || value === null || value === '') continue;
      let shown;
      if (field === 'state') shown = stateBadge(d);
      else if (field === 'app_id') shown = appNames.has(value) ? `${appNames.get(value)} (${value})` : String(value);
      else if (field === 'endpoint_id') shown = endpointUrls.has(value) ? `${endpointUrls.get(value)} (${value})` : String(value);
      else if (field.endsWith('_at')) shown = fmtDateTime(value);
      else shown = String(value);
      items.push(el('dt', null, label), el('dd', { class: field.endsWith('id') ? 'mono' : null }, shown));
    }
    $('history-summary').replaceChildren(...items);
  }

  function historyRow(entry) {
    const error = [entry.error_class, entry.error].filter(Boolean).join(': ');
    const excerpt = entry.response_excerpt || '';
    const next = entry.next_attempt_at;
    return el('tr', null,
      el('td', { title: entry.at }, fmtClock(entry.at)),
      el('td', null, badge('kind', entry.kind)),
      numCell(entry.attempt),
      numCell(entry.http_status),
      numCell(entry.latency_ms, ' ms'),
      clipCell(error || DASH, error),
      clipCell(excerpt || DASH, excerpt, 'mono'),
      el('td', { title: next || null }, next ? `${fmtClock(next)} (${fmtRelative(next)})` : DASH));
  }

  function deliveryRowClicked(event, tableId) {
    if (event.target.closest('button')) return;
    const row = event.target.closest('tr[data-delivery-id]');
    const state = row && rowState.get(row);
    if (state && $(tableId).contains(row)) openHistory(state.item);
  }

  // ---- Dead letters ------------------------------------------------------------------------

  async function loadDeadLetters() {
    const list = await api('GET', '/v1/deliveries?state=dead&limit=50');
    const deliveries = (list && list.data) || [];
    const count = syncRows($('dead-table').tBodies[0], deliveries, (d) => el('tr',
      { class: 'clickable', tabindex: 0, 'data-delivery-id': d.id },
      idCell(d.id),
      endpointCell(d.endpoint_id),
      numCell(d.attempts),
      resultCell(d.last_http_status, d.last_error),
      agoCell(d.updated_at),
      el('td', null, el('button', { type: 'button', class: 'small', 'data-redrive': d.id }, 'Redrive'))));
    $('dead-empty').hidden = count > 0;
    $('dead-table-wrap').hidden = count === 0;
    // A full page means there may be more than this list shows.
    setText('dead-count', count === 0 ? '' : list.next_cursor ? `(${count}+)` : `(${count})`);
  }

  async function redrive(button) {
    const id = button.getAttribute('data-redrive');
    button.disabled = true;
    try {
      await api('POST', `/v1/deliveries/${encodeURIComponent(id)}/redrive`);
      showMessage(`${shortId(id)} redriven`);
    } catch (err) {
      report(err);
    } finally {
      button.disabled = false;
      refreshAfterAction();
    }
  }

  async function redriveAll(button) {
    button.disabled = true;
    try {
      // Every filter of the bulk redrive is optional: an empty object selects every dead letter.
      const result = await api('POST', '/v1/deliveries/redrive', {});
      showMessage(`${(result && result.redriven) || 0} redriven`);
    } catch (err) {
      report(err);
    } finally {
      button.disabled = false;
      refreshAfterAction();
    }
  }

  function refreshAfterAction() {
    if (!session || session.scope !== 'app') return;
    loadDeadLetters().catch(report);
    loadEndpoints().catch(report);
    loadHistory();
  }

  // ---- Endpoints ---------------------------------------------------------------------------

  async function loadEndpoints() {
    const list = await api('GET', '/v1/endpoints?limit=200');
    const endpoints = (list && list.data) || [];
    for (const ep of endpoints) {
      if (endpointUrls.get(ep.id) !== ep.url) {
        endpointUrls.set(ep.id, ep.url);
        labelsVersion += 1;
      }
    }
    const count = syncRows($('endpoints-table').tBodies[0], endpoints, endpointRow);
    $('endpoints-empty').hidden = count > 0;
    $('endpoints-table-wrap').hidden = count === 0;
  }

  function endpointRow(ep) {
    const circuit = ep.circuit || {};
    const failures = isNum(circuit.consecutive_failures) ? circuit.consecutive_failures : 0;
    const circuitTitle = [
      failures ? `${failures} failed attempts in a row` : null,
      circuit.open_until ? `next probe ${fmtDateTime(circuit.open_until)}` : null,
    ].filter(Boolean).join('; ');
    return el('tr', { 'data-endpoint-id': ep.id },
      el('td', { class: 'url' },
        el('div', { class: 'clip', title: ep.url }, ep.url || DASH),
        ep.description ? el('div', { class: 'muted small clip' }, ep.description) : null),
      el('td', null,
        badge('endpoint', ep.enabled ? 'enabled' : 'disabled'),
        !ep.enabled && ep.disabled_reason ? el('div', { class: 'muted small' }, ep.disabled_reason) : null),
      el('td', { title: circuitTitle || null },
        badge('circuit', circuit.state),
        failures ? el('div', { class: 'muted small' }, `${failures} failed in a row`) : null),
      el('td', null, el('button', {
        type: 'button',
        class: 'small secondary',
        'data-toggle-endpoint': ep.id,
        'data-action': ep.enabled ? 'disable' : 'enable',
      }, ep.enabled ? 'Disable' : 'Enable')));
  }

  async function toggleEndpoint(button) {
    const id = button.getAttribute('data-toggle-endpoint');
    const action = button.getAttribute('data-action') === 'enable' ? 'enable' : 'disable';
    button.disabled = true;
    try {
      const ep = await api('POST', `/v1/endpoints/${encodeURIComponent(id)}/${action}`);
      showMessage(`${(ep && ep.url) || shortId(id)} ${action}d`);
    } catch (err) {
      report(err);
    } finally {
      button.disabled = false;
      refreshAfterAction();
    }
  }

  // ---- Apps (admin) ------------------------------------------------------------------------

  async function loadApps() {
    const list = await api('GET', '/v1/apps?limit=200');
    const apps = (list && list.data) || [];
    for (const app of apps) {
      if (appNames.get(app.id) !== app.name) {
        appNames.set(app.id, app.name);
        labelsVersion += 1;
      }
    }
    const count = syncRows($('apps-table').tBodies[0], apps, (app) => el('tr', { 'data-app-id': app.id },
      el('td', null, app.name || DASH),
      el('td', { class: 'mono' }, app.id),
      agoCell(app.created_at)));
    $('apps-empty').hidden = count > 0;
    $('apps-table-wrap').hidden = count === 0;
  }

  // ---- Demo receiver -----------------------------------------------------------------------

  async function loadDemo(mine) {
    let state;
    try {
      state = await api('GET', '/dashboard/demo');
    } catch (err) {
      // The panel is optional: whatever went wrong, keep it away.
      if (err.name !== 'AbortError') $('demo').hidden = true;
      return;
    }
    renderDemo(state);
    // Only a demo changes by itself (its counts); a server without one is asked once.
    if (state && state.enabled) {
      poll(mine, DEMO_EVERY_MS, async () => renderDemo(await api('GET', '/dashboard/demo')));
    }
  }

  function renderDemo(state) {
    const receiver = state && state.enabled ? state.receiver : null;
    $('demo').hidden = !receiver;
    if (!receiver) return;
    const mode = receiver.mode;
    for (const button of $('demo').querySelectorAll('button[data-mode]')) {
      button.setAttribute('aria-pressed', String(button.getAttribute('data-mode') === mode));
    }
    setText('demo-mode', mode ? `receiver is ${mode}` : '');
    const producer = state.producer || {};
    setText('demo-counts',
      `Receiver: ${fmtInt(receiver.accepted)} accepted, ${fmtInt(receiver.refused)} refused, ` +
      `${fmtInt(receiver.bad_signatures)} with a bad signature. ` +
      `Producer: ${fmtInt(producer.published)} events published` +
      (isNum(producer.rate_per_s) ? ` at ${producer.rate_per_s}/s.` : '.'));
  }

  async function setDemoMode(mode) {
    const buttons = $('demo').querySelectorAll('button[data-mode]');
    for (const button of buttons) button.disabled = true;
    try {
      renderDemo(await api('POST', '/dashboard/demo/receiver', { mode }));
      showMessage(DEMO_MESSAGES[mode] || `Receiver is ${mode}`);
    } catch (err) {
      report(err);
    } finally {
      for (const button of buttons) button.disabled = false;
    }
  }

  // ---- Wiring ------------------------------------------------------------------------------

  function onRowKey(event, tableId) {
    if ((event.key === 'Enter' || event.key === ' ') && event.target.matches('tr[data-delivery-id]')) {
      event.preventDefault();
      deliveryRowClicked(event, tableId);
    }
  }

  function init() {
    $('signin').addEventListener('submit', (event) => {
      event.preventDefault();
      const candidate = $('signin-token').value.trim();
      if (!candidate) {
        showMessage('Enter the admin token or an API key', 'error');
        return;
      }
      signIn(candidate);
    });
    $('signout').addEventListener('click', () => {
      sessionStorage.clear();
      window.location.reload();
    });
    $('history-close').addEventListener('click', closeHistory);

    $('recent').addEventListener('click', (event) => deliveryRowClicked(event, 'recent'));
    $('recent').addEventListener('keydown', (event) => onRowKey(event, 'recent'));
    $('dead-table').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-redrive]');
      if (button) redrive(button);
      else deliveryRowClicked(event, 'dead-table');
    });
    $('dead-table').addEventListener('keydown', (event) => onRowKey(event, 'dead-table'));
    $('redrive-all').addEventListener('click', (event) => redriveAll(event.currentTarget));
    $('endpoints-table').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-toggle-endpoint]');
      if (button) toggleEndpoint(button);
    });
    $('demo').addEventListener('click', (event) => {
      const button = event.target.closest('button[data-mode]');
      if (button) setDemoMode(button.getAttribute('data-mode'));
    });

    const saved = token();
    if (saved) signIn(saved);
    else showSignin();
  }

  init();
})();
