// The saga dashboard: one page, no framework, no build step, nothing loaded from anywhere but
// this origin (the Content-Security-Policy says so too). It reads the saga-coordinator's HTTP API
// every few seconds and updates the page in place: each region keeps its size, and the filters,
// the page of the list, the selection, the open panel and the scroll positions survive every
// refresh. Admin calls ask for the token once and keep it in a variable of this script only.
'use strict';

(() => {
  const REFRESH_MS = 2500;
  const REQUEST_TIMEOUT_MS = 10000;
  const SAGA_STATUSES = ['STARTED', 'COMPLETED', 'COMPENSATING', 'COMPENSATED', 'FAILED'];
  const REASONS = ['PAYMENT_FAILED', 'INVENTORY_UNAVAILABLE', 'TIMEOUT', 'CUSTOMER_REQUEST', 'OPERATOR'];
  const DLQ_REASONS = ['MALFORMED', 'INVALID_PAYLOAD', 'SUBJECT_MISMATCH', 'UNKNOWN_EVENT_TYPE',
    'UNKNOWN_VERSION', 'REJECTED', 'RETRIES_EXHAUSTED'];
  const RETRYABLE = new Set(['COMPENSATING', 'FAILED']);
  const ABORTABLE = new Set(['STARTED']);
  const IN_FLIGHT = new Set(['STARTED', 'COMPENSATING']);
  const CREATED_WITHIN = { '5m': 5 * 60e3, '15m': 15 * 60e3, '1h': 3600e3, '24h': 86400e3 };
  const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

  /** The admin token: in this variable only, for the life of the page (never in storage). */
  let adminToken = null;

  const state = {
    view: 'sagas',
    paused: false,
    online: true,
    problem: null,
    lastOk: 0,
    refreshes: 0,
    stats: null,
    /** What the user is acting on ('saga:<id>', 'dlq:<id>') → the action; refreshes leave it be. */
    busy: new Map(),
    sagas: {
      filters: { status: '', reason: '', stuck: '', created: '', orderId: '', createdAfter: '', createdBefore: '' },
      limit: 20,
      cursors: [null],
      page: { items: [], nextCursor: null },
      loaded: false,
      /** A refused request (bad filter): the API's error, shown above the list. */
      error: null,
      /** The service cannot be reached or failed: what is shown stays. */
      unreachable: null,
      selected: null,
      detail: null,
      detailError: null,
      seq: 0,
      dseq: 0,
    },
    dlq: {
      filters: { status: '', consumer: '', subject: '', reason: '' },
      limit: 20,
      cursors: [null],
      page: { items: [], nextCursor: null },
      loaded: false,
      /** A refused request (bad filter): the API's error, shown above the list. */
      error: null,
      /** The service cannot be reached or failed: what is shown stays. */
      unreachable: null,
      selected: null,
      detail: null,
      detailError: null,
      seq: 0,
      dseq: 0,
      dead: null,
      consumers: new Set(),
      subjects: new Set(),
    },
  };

  // ---------------------------------------------------------------- DOM helpers

  const $ = (selector, root = document) => root.querySelector(selector);
  const $$ = (selector, root = document) => Array.from(root.querySelectorAll(selector));

  function append(node, children) {
    for (const child of children.flat(Infinity)) {
      if (child == null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** An element: `el('span', {class: 'x', dataset: {...}, onclick: f}, ...children)`. */
  function el(tag, props, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(props || {})) {
      if (value == null || value === false) continue;
      if (key === 'class') node.className = value;
      else if (key === 'dataset') Object.assign(node.dataset, value);
      else if (key === 'testid') node.dataset.testid = value;
      else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? '' : String(value));
    }
    return append(node, children);
  }

  const SVG = 'http://www.w3.org/2000/svg';
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS(SVG, tag);
    for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
    return append(node, children);
  }

  const ICONS = {
    copy: 'M9 9h11v11H9zM5 15H4V4h11v1',
    close: 'M6 6l12 12M18 6 6 18',
    retry: 'M4 12a8 8 0 1 0 2.3-5.6M4 4v4h4',
    stop: 'M12 3a9 9 0 1 0 0 18 9 9 0 0 0 0-18zM9 9h6v6H9z',
    replay: 'M5 3l14 9-14 9z',
    trash: 'M4 7h16M10 11v6M14 11v6M6 7l1 13h10l1-13M9 7V4h6v3',
    lock: 'M6 11h12v10H6zM8 11V8a4 4 0 0 1 8 0v3',
    unlock: 'M6 11h12v10H6zM8 11V8a4 4 0 0 1 7.5-2',
    timeline: 'M6 4v16M10 7h9M10 12h11M10 17h7M5 7h2M5 12h2M5 17h2',
    inbox: 'M3 13l3-8h12l3 8v6H3zM3 13h5l1 3h6l1-3h5',
  };
  function icon(name) {
    return svg('svg', {
      viewBox: '0 0 24 24', fill: 'none', stroke: 'currentColor', 'stroke-width': 2,
      'stroke-linecap': 'round', 'stroke-linejoin': 'round', 'aria-hidden': 'true',
    }, svg('path', { d: ICONS[name] }));
  }

  /** Replaces a node's children; null and false ones are left out. */
  function fill(node, ...children) {
    node.replaceChildren();
    return append(node, children);
  }

  function setText(node, text) {
    if (node && node.textContent !== text) node.textContent = text;
  }

  // ---------------------------------------------------------------- formatting

  const pad = (n, width = 2) => String(n).padStart(width, '0');
  const time = (iso) => (iso ? Date.parse(iso) : NaN);
  const shortId = (id) => (id && id.length > 16 ? `${id.slice(0, 8)}…${id.slice(-4)}` : String(id ?? ''));

  function humanize(code) {
    if (!code) return '';
    const text = code.toLowerCase().replace(/_/g, ' ');
    return text[0].toUpperCase() + text.slice(1);
  }

  function clock(t, withMs) {
    const d = new Date(t);
    let text = `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
    if (withMs) text += `.${pad(d.getMilliseconds(), 3)}`;
    return text;
  }

  /** A local time; with the date when it is not today. */
  function when(iso, withMs = false) {
    const t = time(iso);
    if (!Number.isFinite(t)) return '–';
    const d = new Date(t);
    const text = clock(t, withMs);
    return d.toDateString() === new Date().toDateString() ? text : `${MONTHS[d.getMonth()]} ${d.getDate()}, ${text}`;
  }

  function duration(ms) {
    if (!Number.isFinite(ms)) return '–';
    const a = Math.abs(ms);
    const sign = ms < 0 ? '−' : '';
    if (a < 1000) return `${sign}${a < 10 ? a.toFixed(1) : Math.round(a)} ms`;
    if (a < 10e3) return `${sign}${(a / 1000).toFixed(2)} s`;
    if (a < 60e3) return `${sign}${(a / 1000).toFixed(1)} s`;
    const s = Math.round(a / 1000);
    if (s < 3600) return `${sign}${Math.floor(s / 60)}m ${pad(s % 60)}s`;
    if (s < 86400) return `${sign}${Math.floor(s / 3600)}h ${pad(Math.floor(s / 60) % 60)}m`;
    return `${sign}${Math.floor(s / 86400)}d ${Math.floor(s / 3600) % 24}h`;
  }

  /** An offset from the saga's start: `+0.012s`, `+2m 03.5s`. */
  function offset(ms) {
    if (!Number.isFinite(ms)) return '';
    const sign = ms < 0 ? '−' : '+';
    const a = Math.abs(ms);
    if (a < 60e3) return `${sign}${(a / 1000).toFixed(3)}s`;
    const m = Math.floor(a / 60e3);
    if (m < 60) return `${sign}${m}m ${((a - m * 60e3) / 1000).toFixed(1).padStart(4, '0')}s`;
    return `${sign}${Math.floor(m / 60)}h ${pad(m % 60)}m`;
  }

  /** `12s ago`, `in 3m`. */
  function relative(t, now = Date.now()) {
    if (!Number.isFinite(t)) return '';
    const d = t - now;
    const a = Math.abs(d);
    if (a < 1000) return 'now';
    let v;
    if (a < 60e3) v = `${Math.floor(a / 1000)}s`;
    else if (a < 3600e3) v = `${Math.floor(a / 60e3)}m`;
    else if (a < 86400e3) v = `${Math.floor(a / 3600e3)}h`;
    else v = `${Math.floor(a / 86400e3)}d`;
    return d < 0 ? `${v} ago` : `in ${v}`;
  }

  /** A span kept current by the one-second ticker: `ago` (12s ago), `deadline`, `since` (elapsed). */
  function live(kind, iso, extra = {}) {
    const node = el('span', { class: 'rel', dataset: { live: kind, t: String(time(iso)), ...extra } });
    updateLive(node, Date.now());
    return node;
  }

  function updateLive(node, now) {
    const t = Number(node.dataset.t);
    switch (node.dataset.live) {
      case 'ago':
        setText(node, relative(t, now));
        break;
      case 'since':
        setText(node, duration(now - t));
        break;
      case 'deadline': {
        const watching = node.dataset.watch === 'true';
        const over = t <= now;
        setText(node, over ? `passed ${relative(t, now)}` : relative(t, now));
        node.classList.toggle('over', watching && over);
        break;
      }
      default:
    }
  }

  function badge(status, extra = {}) {
    return el('span', { class: `badge s-${status} ${extra.class || ''}`, title: extra.title, dataset: { status }, testid: extra.testid }, status);
  }

  function reasonChip(reason) {
    return reason ? el('span', { class: 'reason', title: reason }, humanize(reason)) : el('span', { class: 'faint' }, '—');
  }

  function eventFamily(type) {
    const family = String(type).split('.')[0];
    return ['order', 'payment', 'inventory', 'saga', 'operator'].includes(family) ? family : 'other';
  }

  const isBadEvent = (type) => /\.(failed|rejected|unavailable)$/.test(type) || type === 'saga.aborted';

  function copyButton(text, what) {
    return el('button', {
      type: 'button', class: 'icon-btn', title: `Copy ${what}`, 'aria-label': `Copy ${what}`,
      onclick: (event) => { event.stopPropagation(); copy(text, what); },
    }, icon('copy'));
  }

  async function copy(text, what) {
    try {
      await navigator.clipboard.writeText(text);
      toast('ok', `Copied ${what}`);
    } catch {
      toast('error', 'Could not copy', 'The browser refused access to the clipboard.');
    }
  }

  // ---------------------------------------------------------------- the API

  class ApiError extends Error {
    constructor(status, code, message, details) {
      super(message);
      this.status = status;
      this.code = code;
      this.details = details || [];
    }
  }

  async function api(path, { method = 'GET', body, admin = false } = {}) {
    const headers = { Accept: 'application/json' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    if (admin && adminToken) headers.Authorization = `Bearer ${adminToken}`;
    let response;
    try {
      response = await fetch(path, {
        method, headers, cache: 'no-store', credentials: 'same-origin',
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (e) {
      const why = e.name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : e.message;
      throw new ApiError(0, 'UNREACHABLE', `saga-coordinator cannot be reached (${why})`);
    }
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch { data = null; }
    if (!response.ok) {
      const error = data && data.error;
      throw new ApiError(response.status, (error && error.code) || `HTTP_${response.status}`,
        (error && error.message) || text || response.statusText, error && error.details);
    }
    return data;
  }

  /** An admin call: asks for the token when there is none, and again when it is refused. */
  async function adminCall(method, path, body) {
    let problem = null;
    for (;;) {
      if (!adminToken) {
        const token = await askToken(problem);
        if (!token) return null;
        adminToken = token;
        renderAdminState();
      }
      try {
        return await api(path, { method, body, admin: true });
      } catch (e) {
        if (e.status !== 401) throw e;
        adminToken = null;
        renderAdminState();
        problem = e;
      }
    }
  }

  // ---------------------------------------------------------------- dialogs and toasts

  function askToken(problem) {
    const dialog = $('#token-dialog');
    const input = $('#token-input');
    const error = $('#token-error');
    input.value = '';
    error.hidden = !problem;
    if (problem) error.textContent = `The token was refused: ${problem.message} (${problem.code})`;
    return new Promise((resolve) => {
      const finish = (value) => {
        $('#token-form').removeEventListener('submit', onSubmit);
        $('#token-cancel').removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        input.value = '';
        resolve(value);
      };
      const onSubmit = (event) => {
        event.preventDefault();
        const value = input.value.trim();
        if (value) finish(value);
        else input.focus();
      };
      const onCancel = (event) => { event.preventDefault(); finish(null); };
      $('#token-form').addEventListener('submit', onSubmit);
      $('#token-cancel').addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      input.focus();
    });
  }

  /** Asks to confirm an action, with an optional note; resolves to {note} or null. */
  function confirmAction({ title, text, ok, danger = false, note = null }) {
    const dialog = $('#confirm-dialog');
    const okButton = $('#confirm-ok');
    setText($('#confirm-title'), title);
    setText($('#confirm-text'), text);
    setText(okButton, ok);
    okButton.className = danger ? 'btn danger solid' : 'btn primary';
    $('#confirm-note-field').hidden = !note;
    const textarea = $('#confirm-note');
    textarea.value = '';
    if (note) {
      setText($('#confirm-note-label'), note.label);
      textarea.placeholder = note.placeholder || '';
    }
    return new Promise((resolve) => {
      const finish = (value) => {
        $('#confirm-form').removeEventListener('submit', onSubmit);
        $('#confirm-cancel').removeEventListener('click', onCancel);
        dialog.removeEventListener('cancel', onCancel);
        if (dialog.open) dialog.close();
        resolve(value);
      };
      const onSubmit = (event) => { event.preventDefault(); finish({ note: textarea.value.trim() }); };
      const onCancel = (event) => { event.preventDefault(); finish(null); };
      $('#confirm-form').addEventListener('submit', onSubmit);
      $('#confirm-cancel').addEventListener('click', onCancel);
      dialog.addEventListener('cancel', onCancel);
      dialog.showModal();
      (note ? textarea : okButton).focus();
    });
  }

  /** A toast: `ok` ones go after 5 s, errors after 15 s; both can be closed. */
  function toast(kind, title, message, details = []) {
    const close = el('button', { type: 'button', class: 'icon-btn', 'aria-label': 'Dismiss' }, icon('close'));
    const body = el('div', null, el('b', null, title));
    if (message instanceof Node) body.append(message);
    else if (message) body.append(el('div', null, message));
    if (details.length) body.append(el('ul', null, details.map((d) => el('li', null, d.field ? `${d.field}: ${d.message}` : d.message))));
    const node = el('div', { class: `toast ${kind}`, role: kind === 'error' ? 'alert' : 'status', testid: 'toast', dataset: { kind } }, body, close);
    const remove = () => node.remove();
    close.addEventListener('click', remove);
    $('#toasts').append(node);
    while ($('#toasts').children.length > 4) $('#toasts').firstElementChild.remove();
    setTimeout(remove, kind === 'error' ? 15000 : 5000);
  }

  /** The API's error, as it said it. */
  function toastError(title, e) {
    const message = el('div', null, e.status ? el('span', { class: 'code-name' }, `${e.status} ${e.code}`) : null, e.message);
    toast('error', title, message, e.details || []);
  }

  function errorBanner(node, e) {
    if (!e) {
      node.hidden = true;
      node.replaceChildren();
      return;
    }
    fill(node, el('b', null, e.status ? `${e.status} ${e.code}` : e.code), e.message,
      e.details && e.details.length ? el('ul', null, e.details.map((d) => el('li', null, d.field ? `${d.field}: ${d.message}` : d.message))) : null);
    node.hidden = false;
  }

  // ---------------------------------------------------------------- refreshing

  let timer = 0;
  let ticking = false;

  function schedule() {
    clearTimeout(timer);
    if (!state.paused) timer = setTimeout(tick, REFRESH_MS);
  }

  /** One refresh of what the current view shows; errors of the connection show in the top bar. */
  async function tick() {
    clearTimeout(timer);
    if (ticking) return;
    if (document.hidden) { schedule(); return; }
    ticking = true;
    const jobs = [loadDeadCount()];
    if (state.view === 'sagas') jobs.push(loadStats(), loadSagas(), loadSagaDetail());
    else jobs.push(loadDlq(), loadDlqDetail());
    const results = await Promise.allSettled(jobs);
    const failed = results.find((r) => r.status === 'rejected');
    state.online = !failed;
    state.problem = failed ? failed.reason : null;
    if (!failed) state.lastOk = Date.now();
    state.refreshes += 1;
    document.body.dataset.refreshes = String(state.refreshes);
    renderLive();
    ticking = false;
    schedule();
  }

  /** Errors that mean the service (not the request) has a problem: the caller reports them. */
  const serious = (e) => !e.status || e.status >= 500;

  async function loadStats() {
    try {
      state.stats = await api('/sagas/stats?window=60m');
    } catch (e) {
      if (serious(e)) throw e;
      return;
    }
    renderStats();
  }

  function sagaQuery() {
    const s = state.sagas;
    const f = s.filters;
    const q = new URLSearchParams();
    if (f.status) q.set('status', f.status);
    if (f.reason) q.set('reason', f.reason);
    if (f.stuck) q.set('stuck', f.stuck);
    if (f.orderId) q.set('orderId', f.orderId);
    if (CREATED_WITHIN[f.created]) {
      q.set('createdAfter', new Date(Date.now() - CREATED_WITHIN[f.created]).toISOString());
    } else if (f.created === 'custom') {
      if (f.createdAfter) q.set('createdAfter', localToIso(f.createdAfter));
      if (f.createdBefore) q.set('createdBefore', localToIso(f.createdBefore));
    }
    q.set('limit', String(s.limit));
    const cursor = s.cursors[s.cursors.length - 1];
    if (cursor) q.set('cursor', cursor);
    return `/sagas?${q}`;
  }

  /** A `datetime-local` value (local time) in RFC 3339; what does not parse goes as typed. */
  function localToIso(value) {
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? value : d.toISOString();
  }

  async function loadSagas() {
    const s = state.sagas;
    const seq = ++s.seq;
    try {
      const page = await api(sagaQuery());
      if (seq !== s.seq) return;
      s.page = page;
      s.error = null;
      s.unreachable = null;
    } catch (e) {
      if (seq !== s.seq) return;
      // The service is down or failing: keep what is shown, the top bar says so.
      if (serious(e)) { s.unreachable = e; throw e; }
      s.error = e;
      s.page = { items: [], nextCursor: null };
    } finally {
      if (seq === s.seq) {
        s.loaded = true;
        renderSagaList();
      }
    }
  }

  async function loadSagaDetail() {
    const s = state.sagas;
    const id = s.selected;
    if (!id || state.busy.has(`saga:${id}`)) return;
    const seq = ++s.dseq;
    try {
      const saga = await api(`/sagas/${encodeURIComponent(id)}`);
      if (seq !== s.dseq || s.selected !== id || state.busy.has(`saga:${id}`)) return;
      s.detail = saga;
      s.detailError = null;
    } catch (e) {
      if (seq !== s.dseq || s.selected !== id) return;
      if (serious(e)) throw e;
      s.detail = null;
      s.detailError = e;
    }
    renderSagaDetail();
  }

  function dlqQuery() {
    const d = state.dlq;
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(d.filters)) if (value) q.set(key, value);
    q.set('limit', String(d.limit));
    const cursor = d.cursors[d.cursors.length - 1];
    if (cursor != null) q.set('cursor', String(cursor));
    return `/dlq?${q}`;
  }

  async function loadDlq() {
    const d = state.dlq;
    const seq = ++d.seq;
    try {
      const page = await api(dlqQuery());
      if (seq !== d.seq) return;
      d.page = page;
      d.error = null;
      d.unreachable = null;
      learnDlqNames(page.items);
    } catch (e) {
      if (seq !== d.seq) return;
      if (serious(e)) { d.unreachable = e; throw e; }
      d.error = e;
      d.page = { items: [], nextCursor: null };
    } finally {
      if (seq === d.seq) {
        d.loaded = true;
        renderDlqList();
      }
    }
  }

  async function loadDlqDetail() {
    const d = state.dlq;
    const id = d.selected;
    if (id == null || state.busy.has(`dlq:${id}`)) return;
    const seq = ++d.dseq;
    try {
      const entry = await api(`/dlq/${encodeURIComponent(id)}`);
      if (seq !== d.dseq || d.selected !== id || state.busy.has(`dlq:${id}`)) return;
      d.detail = entry;
      d.detailError = null;
    } catch (e) {
      if (seq !== d.dseq || d.selected !== id) return;
      if (serious(e)) throw e;
      d.detail = null;
      d.detailError = e;
    }
    renderDlqDetail();
  }

  /** How many dead letters wait (status DEAD), for the tab; "100+" past one page. */
  async function loadDeadCount() {
    let page;
    try {
      page = await api('/dlq?status=DEAD&limit=100');
    } catch (e) {
      if (serious(e)) throw e;
      return;
    }
    state.dlq.dead = page.nextCursor != null ? '100+' : String(page.items.length);
    learnDlqNames(page.items);
    const badgeNode = $('#dlq-dead-count');
    setText(badgeNode, state.dlq.dead);
    badgeNode.classList.toggle('alert', state.dlq.dead !== '0');
    renderDlqOverview(page);
  }

  /** What waits, by consumer and by reason (of the first 100 DEAD entries: the API has no counts). */
  function renderDlqOverview(page) {
    const waiting = $('#dlq-waiting');
    setText($('.card-value', waiting), state.dlq.dead);
    waiting.classList.toggle('zero', state.dlq.dead === '0');
    const oldest = page.items.length ? page.items[0].deadLetteredAt : null;
    const note = $('#dlq-oldest');
    if (note.dataset.t !== String(time(oldest))) {
      fill(note, oldest ? ['the oldest for ', live('since', oldest)] : 'nothing waits');
      note.dataset.t = String(time(oldest));
    }
    const count = (key) => {
      const counts = new Map();
      for (const item of page.items) counts.set(item[key], (counts.get(item[key]) || 0) + 1);
      return [...counts].sort((a, b) => b[1] - a[1] || String(a[0]).localeCompare(String(b[0])));
    };
    const partial = page.nextCursor != null;
    for (const [key, node] of [['consumer', $('#dlq-by-consumer')], ['reason', $('#dlq-by-reason')]]) {
      const rows = count(key);
      const signature = JSON.stringify([rows, partial, state.dlq.filters[key]]);
      if (node.dataset.signature === signature) continue;
      node.dataset.signature = signature;
      const most = rows.length ? rows[0][1] : 1;
      const shown = rows.slice(0, rows.length > 4 ? 3 : 4);
      fill(node, ...shown.map(([name, n]) => el('button', {
        type: 'button', class: `bar-row${state.dlq.filters[key] === name ? ' active' : ''}`,
        title: `${n} DEAD ${key === 'consumer' ? 'for' : 'with reason'} ${name}${partial ? ' (among the first 100)' : ''}. Click to filter.`,
        onclick: () => {
          const f = state.dlq.filters;
          f[key] = f[key] === name ? '' : name;
          if (f[key]) f.status = 'DEAD';
          dlqFiltersChanged();
        },
      },
      el('span', { class: 'bar-name' }, name),
      el('span', { class: 'bar-track' }, barFill(n / most)),
      el('b', null, String(n)))),
      rows.length > shown.length ? el('span', { class: 'faint bar-more' }, `and ${rows.length - shown.length} more`) : null,
      rows.length ? null : el('span', { class: 'faint bar-more' }, 'Nothing waits.'));
    }
  }

  function barFill(share) {
    const bar = el('span', { class: 'bar-fill' });
    bar.style.width = `${Math.max(4, Math.round(share * 100))}%`;
    return bar;
  }

  function learnDlqNames(items) {
    const d = state.dlq;
    const before = d.consumers.size + d.subjects.size;
    for (const item of items) {
      d.consumers.add(item.consumer);
      d.subjects.add(item.subject);
    }
    if (d.consumers.size + d.subjects.size === before) return;
    $('#dlq-consumers').replaceChildren(...[...d.consumers].sort().map((c) => el('option', { value: c })));
    $('#dlq-subjects').replaceChildren(...[...d.subjects].sort().map((c) => el('option', { value: c })));
  }

  // ---------------------------------------------------------------- top bar

  function renderLive() {
    const node = $('#live');
    const text = $('#live-text');
    if (state.paused) {
      node.dataset.state = 'paused';
      setText(text, 'Paused');
      node.title = 'Not refreshing: press Resume';
    } else if (!state.online) {
      node.dataset.state = 'offline';
      setText(text, 'Offline · retrying');
      node.title = state.problem ? `${state.problem.code}: ${state.problem.message}` : '';
    } else {
      node.dataset.state = 'live';
      const age = state.lastOk ? Math.max(0, Math.floor((Date.now() - state.lastOk) / 1000)) : null;
      setText(text, age == null ? 'Connecting…' : `Live · updated ${age < 1 ? 'just now' : `${age}s ago`}`);
      node.title = `Refreshes every ${REFRESH_MS / 1000} s`;
    }
    setText($('#pause'), state.paused ? 'Resume' : 'Pause');
  }

  function renderAdminState() {
    const button = $('#admin-state');
    button.replaceChildren(icon(adminToken ? 'unlock' : 'lock'), adminToken ? 'Forget admin token' : 'Enter admin token');
    button.dataset.state = adminToken ? 'set' : 'unset';
  }

  // ---------------------------------------------------------------- overview

  const CARDS = [
    { key: 'STARTED', label: 'Started', filter: { status: 'STARTED' } },
    { key: 'COMPENSATING', label: 'Compensating', filter: { status: 'COMPENSATING' } },
    { key: 'FAILED', label: 'Failed', filter: { status: 'FAILED' }, warn: true },
    { key: 'stuck', label: 'Stuck', filter: { stuck: 'true' }, warn: true },
    { key: 'COMPLETED', label: 'Completed', filter: { status: 'COMPLETED' } },
    { key: 'COMPENSATED', label: 'Compensated', filter: { status: 'COMPENSATED' } },
    { key: 'inFlight', label: 'In flight' },
    { key: 'ended', label: 'Ended · 1h' },
  ];

  function buildCards() {
    $('#stats').replaceChildren(...CARDS.map((card) => {
      const props = {
        class: `card${card.warn ? ' warn' : ''} zero`, dataset: { key: card.key }, testid: `stat-${card.key}`,
      };
      const body = [el('span', { class: 'card-label' }, card.label), el('span', { class: 'card-value', testid: 'stat-value' }, '–')];
      if (!card.filter) {
        return el('div', { ...props, class: `${props.class} static`, title: card.key === 'inFlight' ? 'STARTED or COMPENSATING now' : 'COMPLETED or COMPENSATED in the last hour' }, body);
      }
      return el('button', {
        ...props, type: 'button',
        title: card.key === 'stuck'
          ? 'Past their deadline and not yet swept. Click to list them.'
          : `Sagas ${card.key} now. Click to list them.`,
        onclick: () => toggleCardFilter(card),
      }, body);
    }));
  }

  function toggleCardFilter(card) {
    const f = state.sagas.filters;
    const active = Object.entries(card.filter).every(([k, v]) => f[k] === v);
    if (active) for (const k of Object.keys(card.filter)) f[k] = '';
    else Object.assign(f, card.filter);
    filtersChanged();
  }

  function buildSidePanel() {
    const reasons = $('#reasons');
    for (const reason of REASONS) {
      reasons.append(el('dt', { title: reason }, humanize(reason)), el('dd', { class: 'zero', dataset: { reason } }, '–'));
    }
    const durations = $('#durations');
    for (const [key, label] of [['p50Ms', 'p50'], ['p90Ms', 'p90'], ['p99Ms', 'p99'], ['maxMs', 'max']]) {
      durations.append(el('div', null, el('span', null, label), el('b', { dataset: { key } }, '–')));
    }
  }

  function renderStats() {
    const stats = state.stats;
    if (!stats) return;
    const values = { ...stats.byStatus, stuck: stats.stuck, inFlight: stats.inFlight, ended: stats.ended };
    for (const card of CARDS) {
      const node = $(`[data-key="${card.key}"]`, $('#stats'));
      const value = values[card.key] ?? 0;
      setText($('.card-value', node), value.toLocaleString('en'));
      node.classList.toggle('zero', value === 0);
    }
    renderCardsActive();
    const reasons = $('#reasons');
    for (const reason of REASONS) {
      const dd = $(`dd[data-reason="${reason}"]`, reasons);
      const n = stats.byReason[reason] ?? 0;
      setText(dd, n.toLocaleString('en'));
      dd.classList.toggle('zero', n === 0);
    }
    const durations = $('#durations');
    for (const key of ['p50Ms', 'p90Ms', 'p99Ms', 'maxMs']) {
      setText($(`b[data-key="${key}"]`, durations), stats.ended ? duration(stats.duration[key]) : '–');
    }
    renderChart();
  }

  function renderCardsActive() {
    const f = state.sagas.filters;
    for (const card of CARDS) {
      if (!card.filter) continue;
      const on = Object.entries(card.filter).every(([k, v]) => f[k] === v);
      $(`[data-key="${card.key}"]`, $('#stats')).classList.toggle('active', on);
    }
  }

  /** A round top for the chart's scale. */
  function niceMax(n) {
    if (n <= 4) return 4;
    const power = 10 ** Math.floor(Math.log10(n));
    for (const step of [1, 2, 2.5, 5, 10]) if (step * power >= n) return step * power;
    return 10 * power;
  }

  let chartSignature = '';
  function renderChart() {
    const box = $('#chart');
    const points = (state.stats && state.stats.endedPerMinute) || [];
    const width = box.clientWidth;
    const height = box.clientHeight;
    if (!width || !height) return;
    const signature = JSON.stringify([width, height, points]);
    if (signature === chartSignature) return;
    chartSignature = signature;

    let completed = 0;
    let compensated = 0;
    for (const p of points) { completed += p.completed; compensated += p.compensated; }
    setText($('#legend-completed'), completed.toLocaleString('en'));
    setText($('#legend-compensated'), compensated.toLocaleString('en'));

    const left = 30;
    const right = 16;
    const top = 8;
    const bottom = 20;
    const plotW = Math.max(10, width - left - right);
    const plotH = Math.max(10, height - top - bottom);
    const most = Math.max(0, ...points.map((p) => p.completed + p.compensated));
    const scale = niceMax(most);
    const y = (v) => top + plotH - (v / scale) * plotH;
    const n = Math.max(points.length, 1);
    const slot = plotW / n;
    const barW = Math.max(1, Math.min(16, slot * 0.68));
    const root = svg('svg', { width, height, viewBox: `0 0 ${width} ${height}` });

    for (const v of [0, scale / 2, scale]) {
      const yy = Math.round(y(v)) + 0.5;
      root.append(svg('line', { class: v === 0 ? 'axis' : 'grid', x1: left, x2: width - right + 6, y1: yy, y2: yy }));
      root.append(svg('text', { class: 'tick', x: left - 7, y: yy + 3.5, 'text-anchor': 'end' }, String(Math.round(v * 10) / 10)));
    }
    points.forEach((p, i) => {
      const x = left + i * slot + (slot - barW) / 2;
      const minute = time(p.minute);
      const label = `${clock(minute).slice(0, 5)} · ${p.completed} completed, ${p.compensated} compensated`;
      const group = svg('g');
      const hc = p.completed ? Math.max(1.5, (p.completed / scale) * plotH) : 0;
      const hp = p.compensated ? Math.max(1.5, (p.compensated / scale) * plotH) : 0;
      if (hc) group.append(svg('rect', { class: 'bar-completed', x, y: top + plotH - hc, width: barW, height: hc, rx: Math.min(2, barW / 3) }));
      if (hp) group.append(svg('rect', { class: 'bar-compensated', x, y: top + plotH - hc - hp, width: barW, height: hp, rx: Math.min(2, barW / 3) }));
      group.append(svg('rect', { class: 'slot', x: left + i * slot, y: top, width: slot, height: plotH }, svg('title', null, label)));
      root.append(group);
      const d = new Date(minute);
      if ((d.getMinutes() % 15 === 0 && i < points.length - 4) || i === points.length - 1) {
        const last = i === points.length - 1;
        root.append(svg('text', {
          class: 'tick', x: left + i * slot + slot / 2, y: height - 5, 'text-anchor': last ? 'end' : 'middle',
        }, last ? 'now' : clock(minute).slice(0, 5)));
      }
    });
    const children = [root];
    if (!completed && !compensated) children.push(el('div', { class: 'chart-empty' }, 'No saga ended in the last hour'));
    box.replaceChildren(...children);
  }

  // ---------------------------------------------------------------- the saga list

  function buildSagaFilters() {
    $('#filter-status').replaceChildren(el('option', { value: '' }, 'Any'), ...SAGA_STATUSES.map((s) => el('option', { value: s }, humanize(s))));
    $('#filter-reason').replaceChildren(el('option', { value: '' }, 'Any'), ...REASONS.map((r) => el('option', { value: r }, humanize(r))));
    const form = $('#saga-filters');
    form.addEventListener('submit', (event) => { event.preventDefault(); readSagaFilters(); });
    form.addEventListener('change', () => readSagaFilters());
    $('#filter-order').addEventListener('keydown', (event) => {
      if (event.key === 'Enter') { event.preventDefault(); readSagaFilters(); }
    });
    $('#filter-clear').addEventListener('click', () => {
      Object.keys(state.sagas.filters).forEach((k) => { state.sagas.filters[k] = ''; });
      filtersChanged();
    });
    $('#saga-prev').addEventListener('click', () => {
      const s = state.sagas;
      if (s.cursors.length > 1) { s.cursors.pop(); pageChanged('saga'); }
    });
    $('#saga-next').addEventListener('click', () => {
      const s = state.sagas;
      if (s.page.nextCursor) { s.cursors.push(s.page.nextCursor); pageChanged('saga'); }
    });
    $('#saga-limit').addEventListener('change', (event) => {
      state.sagas.limit = Number(event.target.value);
      state.sagas.cursors = [null];
      pageChanged('saga');
    });
    const rows = $('#saga-rows');
    rows.addEventListener('click', (event) => {
      const tr = event.target.closest('tr[data-saga-id]');
      if (tr) selectSaga(tr.dataset.sagaId);
    });
    rows.addEventListener('keydown', (event) => rowKeys(event, 'sagaId', selectSaga));
  }

  /** Up and down move along the rows, Enter opens one. */
  function rowKeys(event, key, select) {
    const tr = event.target.closest('tr');
    if (!tr) return;
    let next = null;
    if (event.key === 'ArrowDown') next = tr.nextElementSibling;
    else if (event.key === 'ArrowUp') next = tr.previousElementSibling;
    else if (event.key === 'Enter' || event.key === ' ') { event.preventDefault(); select(tr.dataset[key]); return; }
    else return;
    event.preventDefault();
    if (next) { next.focus(); select(next.dataset[key]); }
  }

  function readSagaFilters() {
    const f = state.sagas.filters;
    const next = {
      status: $('#filter-status').value,
      reason: $('#filter-reason').value,
      stuck: $('#filter-stuck').value,
      created: $('#filter-created').value,
      orderId: $('#filter-order').value.trim(),
      createdAfter: $('#filter-after').value,
      createdBefore: $('#filter-before').value,
    };
    if (next.created !== 'custom') {
      next.createdAfter = '';
      next.createdBefore = '';
    }
    if (Object.keys(next).every((k) => next[k] === f[k])) return;
    Object.assign(f, next);
    filtersChanged();
  }

  function writeSagaFilters() {
    const f = state.sagas.filters;
    $('#filter-status').value = f.status;
    $('#filter-reason').value = f.reason;
    $('#filter-stuck').value = f.stuck;
    $('#filter-created').value = f.created;
    $('#filter-range').hidden = f.created !== 'custom';
    $('#filter-order').value = f.orderId;
    $('#filter-after').value = f.createdAfter;
    $('#filter-before').value = f.createdBefore;
    $('#saga-limit').value = String(state.sagas.limit);
    $('#filter-clear').disabled = Object.values(f).every((v) => !v);
    renderCardsActive();
  }

  function filtersChanged() {
    state.sagas.cursors = [null];
    writeSagaFilters();
    pageChanged('saga');
  }

  function pageChanged(which) {
    syncHash();
    if (which === 'saga') {
      renderPager('saga');
      $('#saga-table-wrap').scrollTop = 0;
      loadSagas().catch(() => {});
    } else {
      renderPager('dlq');
      $('#dlq-table-wrap').scrollTop = 0;
      loadDlq().catch(() => {});
    }
  }

  function renderPager(which) {
    const s = which === 'saga' ? state.sagas : state.dlq;
    $(`#${which}-prev`).disabled = s.cursors.length <= 1;
    $(`#${which}-next`).disabled = s.page.nextCursor == null;
    setText($(`#${which}-page`), `Page ${s.cursors.length}`);
  }

  /** Updates `tbody` to show `items` in order, reusing each item's row: rows do not flicker. */
  function syncRows(tbody, items, keyOf, build, update) {
    const existing = new Map($$(':scope > tr', tbody).map((tr) => [tr.dataset.key, tr]));
    let previous = null;
    for (const item of items) {
      const key = keyOf(item);
      let tr = existing.get(key);
      if (tr) existing.delete(key);
      else tr = build(item, key);
      update(tr, item);
      const wanted = previous ? previous.nextElementSibling : tbody.firstElementChild;
      if (wanted !== tr) tbody.insertBefore(tr, wanted);
      previous = tr;
    }
    for (const tr of existing.values()) tr.remove();
  }

  function renderSagaList() {
    const s = state.sagas;
    errorBanner($('#saga-error'), s.error);
    syncRows($('#saga-rows'), s.page.items, (saga) => saga.sagaId,
      (saga, key) => el('tr', { tabindex: '0', testid: 'saga-row', dataset: { key, sagaId: key } }),
      updateSagaRow);
    const empty = $('#saga-empty');
    const filtered = Object.values(s.filters).some(Boolean);
    if (!s.loaded) empty.replaceChildren('Loading…');
    else if (s.error) empty.replaceChildren();
    else if (!s.page.items.length && s.unreachable) unreachable(empty, 'sagas', s.unreachable);
    else if (!s.page.items.length) {
      empty.replaceChildren(el('b', null, filtered ? 'No saga matches these filters' : 'No sagas yet'),
        el('span', null, filtered ? 'Change or clear the filters above.' : 'Each order placed starts one.'));
    }
    empty.hidden = s.loaded && !s.error && s.page.items.length > 0;
    renderPager('saga');
  }

  function unreachable(node, what, e) {
    fill(node, el('b', null, `The ${what} could not be loaded`),
      el('span', null, e.status ? `${e.status} ${e.code}: ${e.message}` : e.message),
      el('span', { class: 'faint' }, 'Trying again every few seconds.'));
  }

  function updateSagaRow(tr, saga) {
    const key = `saga:${saga.sagaId}`;
    tr.classList.toggle('selected', state.sagas.selected === saga.sagaId);
    tr.classList.toggle('busy', state.busy.has(key));
    if (state.busy.has(key) && tr.children.length) return;
    const signature = JSON.stringify(saga);
    if (tr.dataset.signature === signature) return;
    tr.dataset.signature = signature;
    tr.dataset.status = saga.status;
    const created = time(saga.createdAt);
    const ended = time(saga.endedAt);
    let took;
    if (Number.isFinite(ended)) took = el('span', null, duration(ended - created));
    else if (IN_FLIGHT.has(saga.status)) took = live('since', saga.createdAt, { title: 'running' });
    else took = el('span', { class: 'faint', title: 'Not ended' }, '—');
    tr.replaceChildren(
      el('td', { class: 'two', title: `saga ${saga.sagaId}\norder ${saga.orderId}` },
        el('span', { class: 'id' }, shortId(saga.sagaId)),
        el('span', { class: 'id sub' }, `order ${shortId(saga.orderId)}`)),
      el('td', null, badge(saga.status)),
      el('td', null, reasonChip(saga.reason)),
      el('td', { title: `payment ${saga.payment.status}` }, el('span', { class: `part p-${saga.payment.status}` }, humanize(saga.payment.status))),
      el('td', { title: `inventory ${saga.inventory.status}` }, el('span', { class: `part p-${saga.inventory.status}` }, humanize(saga.inventory.status))),
      el('td', { title: saga.createdAt }, when(saga.createdAt)),
      el('td', { class: 'num' }, took),
    );
  }

  function markSelectedRows() {
    for (const tr of $$('#saga-rows > tr')) tr.classList.toggle('selected', tr.dataset.sagaId === state.sagas.selected);
    for (const tr of $$('#dlq-rows > tr')) tr.classList.toggle('selected', tr.dataset.dlqId === String(state.dlq.selected));
  }

  function selectSaga(id) {
    const s = state.sagas;
    if (s.selected === id) return;
    s.selected = id;
    s.detail = (id && s.page.items.find((x) => x.sagaId === id)) || null;
    s.detailError = null;
    s.dseq += 1;
    markSelectedRows();
    renderSagaDetail();
    syncHash();
    if (id) loadSagaDetail().catch(() => {});
  }

  // ---------------------------------------------------------------- a saga

  function placeholder(kind) {
    return el('div', { class: 'placeholder', testid: 'detail-placeholder' },
      icon(kind === 'saga' ? 'timeline' : 'inbox'),
      el('b', null, kind === 'saga' ? 'No saga selected' : 'No dead letter selected'),
      el('p', null, kind === 'saga'
        ? 'Pick a saga in the list to see its timeline, its participants and its deadlines, and to retry or abort it.'
        : 'Pick an entry to see why it was dead-lettered, the original message and its headers, and to replay or discard it.'),
      el('p', { class: 'faint' }, el('span', { class: 'kbd' }, '↑'), ' ', el('span', { class: 'kbd' }, '↓'), ' move along the list · ', el('span', { class: 'kbd' }, 'Esc'), ' closes'));
  }

  function closeButton(onclick) {
    return el('button', { type: 'button', class: 'icon-btn close', title: 'Close (Esc)', 'aria-label': 'Close', testid: 'detail-close', onclick }, icon('close'));
  }

  function actionButton({ label, busyLabel, iconName, enabled, why, busy, onclick, testid, kind = '' }) {
    const button = el('button', {
      type: 'button', class: `btn small ${kind}`, testid, disabled: !enabled || Boolean(busy),
      title: enabled ? null : why, onclick,
    }, busy ? el('span', { class: 'spin' }) : icon(iconName), busy ? busyLabel : label);
    return button;
  }

  /** On a narrow window an open detail covers the page, which then must not scroll beneath it. */
  function markDetailOpen() {
    const open = state.view === 'sagas' ? state.sagas.selected != null : state.dlq.selected != null;
    document.body.dataset.detail = open ? 'open' : 'closed';
  }

  function renderSagaDetail() {
    markDetailOpen();
    const pane = $('#saga-detail');
    const s = state.sagas;
    const id = s.selected;
    pane.dataset.empty = String(!id);
    const busy = id ? state.busy.get(`saga:${id}`) : null;
    const signature = JSON.stringify([id, s.detail, s.detailError && s.detailError.message, busy]);
    if (pane.dataset.signature === signature) return;
    pane.dataset.signature = signature;
    const scroll = pane.scrollTop;
    if (!id) {
      fill(pane, placeholder('saga'));
      return;
    }
    const close = closeButton(() => selectSaga(null));
    if (!s.detail) {
      fill(pane, el('div', { class: 'detail-head' },
        el('div', { class: 'detail-kind' }, 'Saga', close),
        el('div', { class: 'detail-id' }, id)),
      s.detailError
        ? el('div', { class: 'section' }, el('div', { class: 'banner', role: 'alert' }, el('b', null, `${s.detailError.status} ${s.detailError.code}`), s.detailError.message))
        : el('div', { class: 'section muted' }, 'Loading…'));
      return;
    }
    const saga = s.detail;
    const created = time(saga.createdAt);
    const retryable = RETRYABLE.has(saga.status);
    const abortable = ABORTABLE.has(saga.status);

    const head = el('div', { class: 'detail-head' },
      el('div', { class: 'detail-kind' }, 'Saga',
        el('div', { class: 'detail-actions' },
          actionButton({
            label: 'Retry', busyLabel: 'Retrying…', iconName: 'retry', enabled: retryable, busy: busy === 'retry',
            why: 'Only a COMPENSATING or FAILED saga can be retried', testid: 'action-retry',
            kind: saga.status === 'FAILED' ? 'primary' : '', onclick: () => retrySaga(saga.sagaId),
          }),
          actionButton({
            label: 'Abort', busyLabel: 'Aborting…', iconName: 'stop', enabled: abortable, busy: busy === 'abort',
            why: 'Only a STARTED saga can be aborted', testid: 'action-abort', kind: 'danger',
            onclick: () => abortSaga(saga.sagaId),
          })),
        close),
      el('div', { class: 'detail-id' }, el('span', { testid: 'detail-saga-id' }, saga.sagaId), copyButton(saga.sagaId, 'saga id')),
      el('div', { class: 'detail-status' },
        badge(saga.status, { class: 'large', testid: 'detail-status' }),
        saga.reason ? reasonChip(saga.reason) : null,
        el('span', { class: 'rel' }, saga.endedAt ? `ended after ${duration(time(saga.endedAt) - created)}` : null)));

    const facts = el('dl', { class: 'facts', testid: 'saga-facts' });
    const fact = (label, ...value) => facts.append(el('dt', null, label), el('dd', null, value));
    fact('Order', el('span', { class: 'copy-line' }, el('span', { class: 'mono' }, saga.orderId), copyButton(saga.orderId, 'order id')));
    fact('Created', when(saga.createdAt, true), live('ago', saga.createdAt));
    if (saga.endedAt) fact('Ended', when(saga.endedAt, true), el('span', { class: 'rel' }, `took ${duration(time(saga.endedAt) - created)}`));
    fact('Updated', when(saga.updatedAt, true), live('ago', saga.updatedAt));
    fact('Deadline', when(saga.deadline), el('span', { class: 'rel' }, offset(time(saga.deadline) - created)),
      saga.status === 'STARTED' ? live('deadline', saga.deadline, { watch: 'true' }) : null);
    if (saga.compensationDeadline) {
      fact('Compensation deadline', when(saga.compensationDeadline), el('span', { class: 'rel' }, offset(time(saga.compensationDeadline) - created)),
        saga.status === 'COMPENSATING' ? live('deadline', saga.compensationDeadline, { watch: 'true' }) : null);
    }
    if (saga.traceId) {
      fact('Trace', el('span', { class: 'copy-line' }, el('span', { class: 'mono', testid: 'detail-trace' }, saga.traceId), copyButton(saga.traceId, 'trace id')));
    }

    const undoing = saga.status === 'FAILED' || saga.status === 'COMPENSATING';
    const participant = (name, p, idLabel, idValue, holds) => el('div', {
      class: `participant${undoing && holds ? ' holds' : ''}`, testid: `participant-${name.toLowerCase()}`,
    },
    el('div', { class: 'participant-name' }, name, badge(p.status)),
    idValue ? el('span', { class: 'mono', title: `${idLabel} ${idValue}` }, idValue) : el('span', { class: 'sub' }, `no ${idLabel} yet`),
    undoing && holds ? el('span', { class: 'sub holds-note' }, 'Not undone yet') : null);
    const participants = el('div', { class: 'participants' },
      participant('Payment', saga.payment, 'payment', saga.payment.paymentId, saga.payment.status === 'CONFIRMED'),
      participant('Inventory', saga.inventory, 'reservation', saga.inventory.reservationId, ['RESERVED', 'COMMITTED'].includes(saga.inventory.status)));

    const history = saga.history || [];
    const timeline = el('ol', { class: 'timeline', testid: 'timeline' });
    // The saga starts with its first event, which its producer stamped before the coordinator
    // recorded the saga.
    const start = Math.min(created, ...history.map((h) => time(h.occurredAt)).filter(Number.isFinite));
    for (const entry of history) timeline.append(timelineEntry(entry, start));
    const marker = timelineMarker(saga, start);
    if (marker) timeline.append(marker);

    fill(pane, head,
      el('section', { class: 'section' }, facts),
      el('section', { class: 'section' }, el('h3', null, 'Participants'), participants),
      el('section', { class: 'section' },
        el('h3', null, 'Timeline', el('span', { class: 'hint' }, `${history.length} event${history.length === 1 ? '' : 's'} · times from the saga's start`)),
        history.length ? timeline : el('p', { class: 'muted' }, 'No event yet.')));
    pane.scrollTop = scroll;
  }

  function timelineEntry(entry, created) {
    const family = eventFamily(entry.eventType);
    const occurred = time(entry.occurredAt);
    const received = time(entry.receivedAt);
    const operator = family === 'operator';
    const bad = isBadEvent(entry.eventType);
    const lag = received - occurred;
    return el('li', {
      class: `tl-item tl-${family}${bad ? ' tl-bad' : ''}`, testid: 'timeline-entry',
      title: `event ${entry.eventId}\noccurred ${entry.occurredAt}\nreceived ${entry.receivedAt}`,
      dataset: { eventType: entry.eventType, eventId: entry.eventId },
    },
    el('div', { class: 'tl-time' }, offset(occurred - created)),
    el('div', { class: 'tl-rail' }, el('span', { class: 'tl-dot' })),
    el('div', { class: 'tl-body' },
      el('div', { class: 'tl-head' },
        el('span', { class: `evt evt-${family}${bad ? ' evt-bad' : ''}`, testid: 'event-type' }, entry.eventType),
        el('time', { datetime: entry.occurredAt }, when(entry.occurredAt, true)),
        // A message that took long to arrive is worth seeing; a usual one is not.
        Number.isFinite(lag) && lag >= 1000 ? el('span', { class: 'tl-lag' }, `received ${duration(lag)} later`) : null),
      operator && entry.actor ? el('div', { class: 'tl-actor', testid: 'event-actor' }, 'by ', el('span', { class: 'mono' }, entry.actor)) : null,
      entry.detail ? el('div', { class: 'tl-note', testid: 'event-detail' }, entry.detail) : null));
  }

  /** Where the saga stands at the end of its timeline. */
  function timelineMarker(saga, created) {
    let at = null;
    let text;
    if (saga.endedAt) {
      at = time(saga.endedAt);
      text = [badge(saga.status), ` after ${duration(at - created)}`];
    } else if (saga.status === 'FAILED') {
      at = time(saga.updatedAt);
      text = [badge('FAILED'), ' compensation did not finish by its deadline'];
    } else {
      const waiting = [];
      if (saga.payment.status === 'PENDING') waiting.push('payment');
      if (saga.inventory.status === 'PENDING') waiting.push('inventory');
      text = [badge(saga.status), waiting.length ? ` waiting for ${waiting.join(' and ')}` : ' in progress'];
    }
    return el('li', { class: 'tl-item tl-marker', testid: 'timeline-marker' },
      el('div', { class: 'tl-time' }, at == null ? '' : offset(at - created)),
      el('div', { class: 'tl-rail' }, el('span', { class: 'tl-dot' })),
      el('div', { class: 'tl-body' }, el('div', { class: 'tl-head' }, text)));
  }

  // ---------------------------------------------------------------- acting on a saga

  function setBusy(key, action) {
    if (action) state.busy.set(key, action);
    else state.busy.delete(key);
    renderSagaList();
    renderSagaDetail();
    renderDlqList();
    renderDlqDetail();
  }

  /** Puts a saga the API answered with into the list and the detail at once. */
  function showSaga(saga) {
    const s = state.sagas;
    const index = s.page.items.findIndex((x) => x.sagaId === saga.sagaId);
    if (index >= 0) s.page.items[index] = { ...s.page.items[index], ...saga, history: undefined };
    if (s.detail && s.detail.sagaId === saga.sagaId) {
      s.detail = { ...s.detail, ...saga, history: saga.history || s.detail.history };
    }
  }

  async function retrySaga(id) {
    const key = `saga:${id}`;
    if (state.busy.has(key)) return;
    setBusy(key, 'retry');
    try {
      const saga = await adminCall('POST', `/sagas/${encodeURIComponent(id)}/retry`);
      if (saga) {
        showSaga(saga);
        toast('ok', 'Retry accepted', `Saga ${shortId(id)} is ${saga.status} again: every participant that still holds something is asked to undo it.`);
      }
    } catch (e) {
      toastError('Retry refused', e);
    } finally {
      setBusy(key, null);
      refreshSagasNow();
    }
  }

  async function abortSaga(id) {
    const key = `saga:${id}`;
    if (state.busy.has(key)) return;
    setBusy(key, 'confirm');
    try {
      const answer = await confirmAction({
        title: 'Abort this saga?',
        text: `Saga ${shortId(id)} is aborted now with reason OPERATOR: its order is cancelled, and its payment and stock reservation are undone.`,
        ok: 'Abort saga', danger: true,
        note: { label: 'Why (optional, kept in its history)', placeholder: 'e.g. customer called: cancel' },
      });
      if (!answer) return;
      setBusy(key, 'abort');
      const saga = await adminCall('POST', `/sagas/${encodeURIComponent(id)}/abort`, answer.note ? { detail: answer.note } : undefined);
      if (saga) {
        showSaga(saga);
        toast('ok', 'Saga aborted', `Saga ${shortId(id)} is ${saga.status}: its order is being cancelled.`);
      }
    } catch (e) {
      toastError('Abort refused', e);
    } finally {
      setBusy(key, null);
      refreshSagasNow();
    }
  }

  function refreshSagasNow() {
    Promise.allSettled([loadSagas(), loadSagaDetail(), loadStats()]);
  }

  // ---------------------------------------------------------------- dead letters

  function buildDlqFilters() {
    $('#dlq-filter-reason').replaceChildren(el('option', { value: '' }, 'Any'), ...DLQ_REASONS.map((r) => el('option', { value: r }, humanize(r))));
    const form = $('#dlq-filters');
    form.addEventListener('submit', (event) => { event.preventDefault(); readDlqFilters(); });
    form.addEventListener('change', () => readDlqFilters());
    for (const id of ['#dlq-filter-consumer', '#dlq-filter-subject']) {
      $(id).addEventListener('keydown', (event) => {
        if (event.key === 'Enter') { event.preventDefault(); readDlqFilters(); }
      });
    }
    $('#dlq-filter-clear').addEventListener('click', () => {
      Object.keys(state.dlq.filters).forEach((k) => { state.dlq.filters[k] = ''; });
      dlqFiltersChanged();
    });
    $('#dlq-replay-matching').addEventListener('click', replayMatching);
    $('#dlq-waiting').addEventListener('click', () => {
      const f = state.dlq.filters;
      f.status = f.status === 'DEAD' ? '' : 'DEAD';
      dlqFiltersChanged();
    });
    $('#dlq-prev').addEventListener('click', () => {
      const d = state.dlq;
      if (d.cursors.length > 1) { d.cursors.pop(); pageChanged('dlq'); }
    });
    $('#dlq-next').addEventListener('click', () => {
      const d = state.dlq;
      if (d.page.nextCursor != null) { d.cursors.push(d.page.nextCursor); pageChanged('dlq'); }
    });
    $('#dlq-limit').addEventListener('change', (event) => {
      state.dlq.limit = Number(event.target.value);
      state.dlq.cursors = [null];
      pageChanged('dlq');
    });
    const rows = $('#dlq-rows');
    rows.addEventListener('click', (event) => {
      const tr = event.target.closest('tr[data-dlq-id]');
      if (tr) selectEntry(Number(tr.dataset.dlqId));
    });
    rows.addEventListener('keydown', (event) => rowKeys(event, 'dlqId', (id) => selectEntry(Number(id))));
  }

  function readDlqFilters() {
    const f = state.dlq.filters;
    const next = {
      status: $('#dlq-filter-status').value,
      consumer: $('#dlq-filter-consumer').value.trim(),
      subject: $('#dlq-filter-subject').value.trim(),
      reason: $('#dlq-filter-reason').value,
    };
    if (Object.keys(next).every((k) => next[k] === f[k])) return;
    Object.assign(f, next);
    dlqFiltersChanged();
  }

  function writeDlqFilters() {
    const f = state.dlq.filters;
    $('#dlq-filter-status').value = f.status;
    $('#dlq-filter-consumer').value = f.consumer;
    $('#dlq-filter-subject').value = f.subject;
    $('#dlq-filter-reason').value = f.reason;
    $('#dlq-limit').value = String(state.dlq.limit);
    $('#dlq-filter-clear').disabled = Object.values(f).every((v) => !v);
    $('#dlq-waiting').classList.toggle('active', f.status === 'DEAD');
    for (const node of [$('#dlq-by-consumer'), $('#dlq-by-reason')]) node.dataset.signature = '';
    const bulk = $('#dlq-replay-matching');
    bulk.disabled = !(f.consumer || f.subject || f.reason);
    bulk.title = bulk.disabled
      ? 'Set a consumer, subject or reason filter to replay every DEAD entry that matches it'
      : 'Replay every DEAD entry that matches the consumer, subject and reason filters';
  }

  function dlqFiltersChanged() {
    state.dlq.cursors = [null];
    writeDlqFilters();
    pageChanged('dlq');
  }

  function renderDlqList() {
    const d = state.dlq;
    errorBanner($('#dlq-error'), d.error);
    syncRows($('#dlq-rows'), d.page.items, (entry) => String(entry.id),
      (entry, key) => el('tr', { tabindex: '0', testid: 'dlq-row', dataset: { key, dlqId: key } }),
      updateDlqRow);
    const empty = $('#dlq-empty');
    const filtered = Object.values(d.filters).some(Boolean);
    if (!d.loaded) empty.replaceChildren('Loading…');
    else if (d.error) empty.replaceChildren();
    else if (!d.page.items.length && d.unreachable) unreachable(empty, 'dead letters', d.unreachable);
    else if (!d.page.items.length) {
      empty.replaceChildren(el('b', null, filtered ? 'No dead letter matches these filters' : 'No dead letters'),
        el('span', null, filtered ? 'Change or clear the filters above.' : 'Every message was handled.'));
    }
    empty.hidden = d.loaded && !d.error && d.page.items.length > 0;
    renderPager('dlq');
  }

  function updateDlqRow(tr, entry) {
    const key = `dlq:${entry.id}`;
    tr.classList.toggle('selected', state.dlq.selected === entry.id);
    tr.classList.toggle('busy', state.busy.has(key));
    if (state.busy.has(key) && tr.children.length) return;
    const { payload, ...rest } = entry;
    const signature = JSON.stringify(rest);
    if (tr.dataset.signature === signature) return;
    tr.dataset.signature = signature;
    tr.dataset.status = entry.status;
    tr.replaceChildren(
      el('td', { class: 'num' }, el('span', { class: 'id' }, `#${entry.id}`)),
      el('td', { title: entry.deadLetteredAt }, when(entry.deadLetteredAt)),
      el('td', { class: 'two', title: `${entry.consumer}\n${entry.subject}` },
        el('span', { class: 'id' }, entry.consumer),
        el('span', { class: 'id sub' }, entry.subject)),
      el('td', { class: 'two', title: entry.detail || entry.reason },
        el('span', null, el('span', { class: 'reason' }, entry.reason)),
        el('span', { class: 'sub' }, entry.detail || (entry.eventType ? entry.eventType : 'not an event of this system'))),
      el('td', { class: 'num' }, entry.delivered == null ? el('span', { class: 'faint' }, '—') : String(entry.delivered)),
      el('td', null, badge(entry.status)),
    );
  }

  function selectEntry(id) {
    const d = state.dlq;
    if (d.selected === id) return;
    d.selected = id;
    d.detail = (id != null && d.page.items.find((x) => x.id === id)) || null;
    d.detailError = null;
    d.dseq += 1;
    markSelectedRows();
    renderDlqDetail();
    syncHash();
    if (id != null) loadDlqDetail().catch(() => {});
  }

  /** The original message: pretty JSON, coloured, or the text as it came. */
  function payloadView(payload) {
    if (typeof payload === 'string') {
      return [el('p', { class: 'note-line' }, 'Not JSON: shown as received.'),
        el('pre', { class: 'code text', testid: 'dlq-payload' }, payload)];
    }
    const out = [];
    const indent = (n) => '  '.repeat(n);
    const span = (cls, text) => el('span', { class: cls }, text);
    const punct = (text) => span('j-punct', text);
    (function walk(value, depth) {
      if (value === null) out.push(span('j-null', 'null'));
      else if (typeof value === 'string') out.push(span('j-str', JSON.stringify(value)));
      else if (typeof value === 'number') out.push(span('j-num', String(value)));
      else if (typeof value === 'boolean') out.push(span('j-bool', String(value)));
      else if (Array.isArray(value)) {
        if (!value.length) { out.push(punct('[]')); return; }
        out.push(punct('['), '\n');
        value.forEach((item, i) => {
          out.push(indent(depth + 1));
          walk(item, depth + 1);
          out.push(i < value.length - 1 ? punct(',') : '', '\n');
        });
        out.push(indent(depth), punct(']'));
      } else {
        const keys = Object.keys(value);
        if (!keys.length) { out.push(punct('{}')); return; }
        out.push(punct('{'), '\n');
        keys.forEach((key, i) => {
          out.push(indent(depth + 1), span('j-key', JSON.stringify(key)), punct(': '));
          walk(value[key], depth + 1);
          out.push(i < keys.length - 1 ? punct(',') : '', '\n');
        });
        out.push(indent(depth), punct('}'));
      }
    }(payload, 0));
    return [el('pre', { class: 'code', testid: 'dlq-payload' }, out)];
  }

  function renderDlqDetail() {
    markDetailOpen();
    const pane = $('#dlq-detail');
    const d = state.dlq;
    const id = d.selected;
    pane.dataset.empty = String(id == null);
    const busy = id != null ? state.busy.get(`dlq:${id}`) : null;
    const signature = JSON.stringify([id, d.detail, d.detailError && d.detailError.message, busy]);
    if (pane.dataset.signature === signature) return;
    pane.dataset.signature = signature;
    const scroll = pane.scrollTop;
    if (id == null) {
      fill(pane, placeholder('dlq'));
      return;
    }
    const close = closeButton(() => selectEntry(null));
    if (!d.detail) {
      fill(pane, el('div', { class: 'detail-head' },
        el('div', { class: 'detail-kind' }, 'Dead letter', close),
        el('div', { class: 'detail-id' }, `#${id}`)),
      d.detailError
        ? el('div', { class: 'section' }, el('div', { class: 'banner', role: 'alert' }, el('b', null, `${d.detailError.status} ${d.detailError.code}`), d.detailError.message))
        : el('div', { class: 'section muted' }, 'Loading…'));
      return;
    }
    const entry = d.detail;
    const dead = entry.status === 'DEAD';
    const head = el('div', { class: 'detail-head' },
      el('div', { class: 'detail-kind' }, 'Dead letter',
        el('div', { class: 'detail-actions' },
          actionButton({
            label: 'Replay', busyLabel: 'Replaying…', iconName: 'replay', enabled: dead, busy: busy === 'replay',
            why: 'Only a DEAD entry can be replayed', testid: 'dlq-replay', kind: 'primary',
            onclick: () => replayEntry(entry.id),
          }),
          actionButton({
            label: 'Discard', busyLabel: 'Discarding…', iconName: 'trash', enabled: dead, busy: busy === 'discard',
            why: 'Only a DEAD entry can be discarded', testid: 'dlq-discard', kind: 'danger',
            onclick: () => discardEntry(entry.id),
          })),
        close),
      el('div', { class: 'detail-id' }, el('span', { testid: 'detail-dlq-id' }, `#${entry.id}`), el('span', { class: 'muted' }, ` · ${entry.consumer}`)),
      el('div', { class: 'detail-status' },
        badge(entry.status, { class: 'large', testid: 'dlq-status' }),
        el('span', { class: 'reason', title: entry.reason }, entry.reason)));

    const facts = el('dl', { class: 'facts', testid: 'dlq-facts' });
    const fact = (label, ...value) => facts.append(el('dt', null, label), el('dd', null, value));
    if (entry.detail) fact('Why', el('span', { class: 'why', testid: 'dlq-why' }, entry.detail));
    fact('Consumer', el('span', { class: 'mono' }, entry.consumer));
    fact('Subject', el('span', { class: 'mono' }, entry.subject));
    fact('Dead-lettered', when(entry.deadLetteredAt, true), live('ago', entry.deadLetteredAt));
    fact('Deliveries', entry.delivered == null ? el('span', { class: 'faint' }, 'unknown') : String(entry.delivered));
    fact('Event', entry.eventType ? el('span', { class: 'mono' }, entry.eventType) : el('span', { class: 'faint' }, 'not an event of this system'));
    if (entry.eventId) fact('Event id', el('span', { class: 'copy-line' }, el('span', { class: 'mono' }, entry.eventId), copyButton(entry.eventId, 'event id')));
    if (entry.statusChangedAt) {
      fact(humanize(entry.status), when(entry.statusChangedAt, true), live('ago', entry.statusChangedAt),
        entry.statusChangedBy ? el('span', { class: 'rel' }, `by ${entry.statusChangedBy}`) : null);
    }
    if (entry.statusDetail) fact('Note', el('span', { class: 'tl-note', testid: 'dlq-note' }, entry.statusDetail));

    const headers = entry.headers || {};
    const names = Object.keys(headers);
    const headerTable = names.length
      ? el('table', { class: 'headers', testid: 'dlq-headers' }, el('tbody', null, names.sort().map((name) => el('tr', null, el('td', null, name), el('td', null, String(headers[name]))))))
      : el('p', { class: 'muted', testid: 'dlq-headers' }, 'The original message had no headers.');
    const payloadText = typeof entry.payload === 'string' ? entry.payload : JSON.stringify(entry.payload, null, 2);

    fill(pane, head,
      el('section', { class: 'section' }, facts),
      el('section', { class: 'section' }, el('h3', null, 'Original message', el('span', { class: 'hint' }, typeof entry.payload === 'string' ? 'text' : 'JSON'), copyButton(payloadText, 'message')), payloadView(entry.payload)),
      el('section', { class: 'section' }, el('h3', null, 'Headers', el('span', { class: 'hint' }, String(names.length))), headerTable));
    pane.scrollTop = scroll;
  }

  function showEntry(entry) {
    const d = state.dlq;
    const index = d.page.items.findIndex((x) => x.id === entry.id);
    if (index >= 0) d.page.items[index] = { ...d.page.items[index], ...entry };
    if (d.detail && d.detail.id === entry.id) d.detail = { ...d.detail, ...entry, headers: entry.headers || d.detail.headers };
  }

  async function replayEntry(id) {
    const key = `dlq:${id}`;
    if (state.busy.has(key)) return;
    setBusy(key, 'replay');
    try {
      const entry = await adminCall('POST', `/dlq/${id}/replay`);
      if (entry) {
        showEntry(entry);
        toast('ok', `Dead letter #${id} replayed`, `Published again to ${entry.subject} for ${entry.consumer}. If it fails again it comes back as a new entry.`);
      }
    } catch (e) {
      toastError('Replay refused', e);
    } finally {
      setBusy(key, null);
      refreshDlqNow();
    }
  }

  async function discardEntry(id) {
    const key = `dlq:${id}`;
    if (state.busy.has(key)) return;
    setBusy(key, 'confirm');
    try {
      const answer = await confirmAction({
        title: `Discard dead letter #${id}?`,
        text: 'It becomes DISCARDED and is never published again.',
        ok: 'Discard', danger: true,
        note: { label: 'Note (optional)', placeholder: 'e.g. test message from a load tool' },
      });
      if (!answer) return;
      setBusy(key, 'discard');
      const entry = await adminCall('POST', `/dlq/${id}/discard`, answer.note ? { detail: answer.note } : undefined);
      if (entry) {
        showEntry(entry);
        toast('ok', `Dead letter #${id} discarded`);
      }
    } catch (e) {
      toastError('Discard refused', e);
    } finally {
      setBusy(key, null);
      refreshDlqNow();
    }
  }

  async function replayMatching() {
    const f = state.dlq.filters;
    const body = {};
    for (const key of ['consumer', 'subject', 'reason']) if (f[key]) body[key] = f[key];
    if (!Object.keys(body).length) return;
    const which = Object.entries(body).map(([k, v]) => `${k} ${v}`).join(', ');
    const answer = await confirmAction({
      title: 'Replay every matching dead letter?',
      text: `Every DEAD entry with ${which} is published again to its original subject.`,
      ok: 'Replay all',
    });
    if (!answer) return;
    try {
      const result = await adminCall('POST', '/dlq/replay', body);
      if (result) toast('ok', `${result.replayed} dead letter${result.replayed === 1 ? '' : 's'} replayed`, `Matching ${which}.`);
    } catch (e) {
      toastError('Replay refused', e);
    } finally {
      refreshDlqNow();
    }
  }

  function refreshDlqNow() {
    Promise.allSettled([loadDlq(), loadDlqDetail(), loadDeadCount()]);
  }

  // ---------------------------------------------------------------- views and the address

  /** The view, its filters and its selection live in the address's fragment (never sent anywhere). */
  function syncHash() {
    const q = new URLSearchParams();
    if (state.view === 'sagas') {
      const s = state.sagas;
      for (const [key, value] of Object.entries(s.filters)) if (value) q.set(key, value);
      if (s.limit !== 20) q.set('limit', String(s.limit));
      if (s.selected) q.set('saga', s.selected);
    } else {
      const d = state.dlq;
      for (const [key, value] of Object.entries(d.filters)) if (value) q.set(key, value);
      if (d.limit !== 20) q.set('limit', String(d.limit));
      if (d.selected != null) q.set('entry', String(d.selected));
    }
    const query = q.toString();
    const hash = `#/${state.view}${query ? `?${query}` : ''}`;
    if (location.hash !== hash) history.replaceState(null, '', hash);
  }

  function readHash() {
    const match = /^#\/(sagas|dlq)(?:\?(.*))?$/.exec(location.hash);
    const view = match ? match[1] : 'sagas';
    const q = new URLSearchParams((match && match[2]) || '');
    const limit = [20, 50, 100].includes(Number(q.get('limit'))) ? Number(q.get('limit')) : 20;
    if (view === 'sagas') {
      const s = state.sagas;
      for (const key of Object.keys(s.filters)) s.filters[key] = q.get(key) || '';
      s.limit = limit;
      s.cursors = [null];
      s.selected = q.get('saga') || null;
    } else {
      const d = state.dlq;
      for (const key of Object.keys(d.filters)) d.filters[key] = q.get(key) || '';
      d.limit = limit;
      d.cursors = [null];
      d.selected = q.get('entry') && /^\d+$/.test(q.get('entry')) ? Number(q.get('entry')) : null;
    }
    return view;
  }

  function setView(view, load = true) {
    state.view = view;
    $('#view-sagas').hidden = view !== 'sagas';
    $('#view-dlq').hidden = view !== 'dlq';
    $('#tab-sagas').setAttribute('aria-selected', String(view === 'sagas'));
    $('#tab-dlq').setAttribute('aria-selected', String(view === 'dlq'));
    document.title = `${view === 'sagas' ? 'Sagas' : 'Dead letters'} · Order saga`;
    writeSagaFilters();
    writeDlqFilters();
    renderSagaList();
    renderSagaDetail();
    renderDlqList();
    renderDlqDetail();
    chartSignature = '';
    if (view === 'sagas') renderStats();
    syncHash();
    if (load) refreshView();
  }

  /** Loads what the current view shows now, besides the regular refresh. */
  function refreshView() {
    if (state.view === 'sagas') refreshSagasNow();
    else refreshDlqNow();
  }

  // ---------------------------------------------------------------- start

  function start() {
    buildCards();
    buildSidePanel();
    buildSagaFilters();
    buildDlqFilters();
    renderAdminState();
    for (const [tab, view] of [['#tab-sagas', 'sagas'], ['#tab-dlq', 'dlq']]) {
      $(tab).addEventListener('click', (event) => {
        event.preventDefault();
        if (state.view !== view) setView(view);
      });
    }
    window.addEventListener('hashchange', () => {
      const view = readHash();
      state.sagas.detail = null;
      state.dlq.detail = null;
      setView(view);
    });
    $('#pause').addEventListener('click', () => {
      state.paused = !state.paused;
      renderLive();
      if (state.paused) clearTimeout(timer);
      else tick();
    });
    $('#admin-state').addEventListener('click', async () => {
      if (adminToken) {
        adminToken = null;
        renderAdminState();
        toast('ok', 'Admin token forgotten', 'The next admin action asks for it again.');
      } else {
        const token = await askToken(null);
        if (token) {
          adminToken = token;
          renderAdminState();
          toast('ok', 'Admin token kept for this page', 'It is checked on the first admin action.');
        }
      }
    });
    document.addEventListener('keydown', (event) => {
      if (event.key !== 'Escape' || $('dialog[open]')) return;
      if (state.view === 'sagas' && state.sagas.selected) selectSaga(null);
      else if (state.view === 'dlq' && state.dlq.selected != null) selectEntry(null);
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) tick(); });
    let resizing = 0;
    window.addEventListener('resize', () => {
      cancelAnimationFrame(resizing);
      resizing = requestAnimationFrame(() => renderChart());
    });
    setInterval(() => {
      const now = Date.now();
      for (const node of $$('[data-live]')) updateLive(node, now);
      renderLive();
    }, 1000);
    setView(readHash(), false);
    tick();
  }

  start();
})();
