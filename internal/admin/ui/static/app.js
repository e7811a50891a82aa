// The mqttd dashboard: polls the admin REST API (with the operator's token)
// and /metrics, and draws what it finds. Plain browser JavaScript, no build
// step: the broker embeds this file as it is.
'use strict';
(() => {
  const TOKEN_KEY = 'mqttd.admin.token';
  const params = new URLSearchParams(location.search);
  // ?refresh=ms sets the polling period (tests use a short one).
  const REFRESH_MS = Math.max(250, Number(params.get('refresh')) || 2000);
  // The admin routes live beside /ui/, wherever a proxy put them.
  const BASE = location.pathname.replace(/\/ui(\/.*)?$/, '');
  const RATE_POINTS = 90; // points kept for the chart
  const LATENCY_WINDOW_MS = 60000; // latency percentiles cover about a minute
  const PAGE_SIZE = 50;

  const $ = (id) => document.getElementById(id);
  const state = {
    token: sessionStorage.getItem(TOKEN_KEY) || '',
    prev: null, // last stats sample: {t, in, out}
    rates: [], // [{in, out}]
    scrapes: [], // [{t, samples}] of /metrics, oldest first
    clientsShown: '', // what the client rows show, to skip redrawing them
    cursor: '', // cursor of the client page shown
    next: '', // cursor of the page after it
    query: '',
    timer: 0,
    gen: 0, // bumped by each refresh, so only the latest one schedules the next
  };

  // el builds an element; text always goes in as text, never as HTML.
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === 'class') e.className = v;
      else if (k.startsWith('data-')) e.setAttribute(k, String(v));
      else e[k] = v;
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  class HTTPError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }

  async function request(path, opts = {}, auth = true) {
    const headers = Object.assign({}, opts.headers);
    if (auth) headers.Authorization = 'Bearer ' + state.token;
    let res;
    try {
      res = await fetch(BASE + path, Object.assign({}, opts, { headers, cache: 'no-store' }));
    } catch (err) {
      throw new HTTPError(0, `${path}: broker unreachable (${err.message})`);
    }
    const text = await res.text();
    if (!res.ok) {
      let why = text.trim() || res.statusText;
      try { why = JSON.parse(text).error || why; } catch (_) { /* not JSON */ }
      throw new HTTPError(res.status, `${path}: ${res.status} ${why}`);
    }
    return text;
  }

  const api = async (path, opts) => JSON.parse(await request(path, opts));
  // items reads a list answer: {"items": [...]} or a bare array.
  const items = (x) => (Array.isArray(x) ? x : (x && x.items) || []);

  // ---- formatting

  const fmtInt = (n) => (typeof n === 'number' ? n.toLocaleString('en-US') : '–');

  function fmtRate(r) {
    if (r === null || r === undefined) return '–';
    return r >= 100 ? Math.round(r).toLocaleString('en-US') : r.toFixed(1);
  }

  function fmtUptime(s) {
    if (typeof s !== 'number') return '–';
    const d = Math.floor(s / 86400), h = Math.floor(s / 3600) % 24, m = Math.floor(s / 60) % 60;
    if (d) return `${d}d ${h}h`;
    if (h) return `${h}h ${m}m`;
    return `${m}m ${Math.floor(s % 60)}s`;
  }

  function fmtSeconds(v) {
    if (v === null) return '–';
    if (v === Infinity) return '> 5 s';
    if (v < 0.001) return (v * 1000).toFixed(2) + ' ms';
    if (v < 1) return (v * 1000).toFixed(v < 0.01 ? 1 : 0) + ' ms';
    return v.toFixed(2) + ' s';
  }

  function fmtSince(iso) {
    const t = Date.parse(iso);
    if (isNaN(t)) return iso || '–';
    // Minutes at most, so a row's text stays put between polls.
    const s = Math.max(0, (Date.now() - t) / 1000);
    return s < 60 ? 'under a minute ago' : fmtUptime(s).replace(/ \d+s$/, '') + ' ago';
  }

  function fmtTime(iso) {
    const t = new Date(iso);
    return isNaN(t) ? String(iso) : t.toLocaleTimeString('en-GB');
  }

  function fmtProtocol(p) {
    return { 3: '3.1', 4: '3.1.1', 5: '5.0' }[p] || String(p ?? '–');
  }

  // ---- banner, toast, token

  function banner(msg) {
    $('banner').hidden = !msg;
    $('banner').textContent = msg || '';
  }

  let toastTimer = 0;
  function toast(msg) {
    $('toast').textContent = msg;
    $('toast').hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { $('toast').hidden = true; }, 4000);
  }

  function setToken(tok) {
    state.token = tok;
    if (tok) sessionStorage.setItem(TOKEN_KEY, tok);
    else sessionStorage.removeItem(TOKEN_KEY);
    $('token').value = '';
    $('token').placeholder = tok ? 'token set (kept for this tab)' : "admin.token from the broker's config";
  }

  function needToken(msg) {
    document.body.dataset.state = 'need-token';
    banner(msg);
    $('token').focus();
  }

  // ---- stats and the rate chart

  function renderStats(s) {
    $('clients-connected').textContent = fmtInt(s.clients_connected);
    $('subscriptions').textContent = fmtInt(s.subscriptions);
    $('retained').textContent = fmtInt(s.retained);
    $('uptime').textContent = fmtUptime(s.uptime_seconds);
    const parsed = Date.parse(s.time);
    const cur = { t: isNaN(parsed) ? Date.now() : parsed, in: s.messages_received, out: s.messages_sent };
    const prev = state.prev;
    state.prev = cur;
    if (!prev || cur.t <= prev.t || cur.in < prev.in || cur.out < prev.out) return; // first sample, or a restart
    const dt = (cur.t - prev.t) / 1000;
    const r = { in: (cur.in - prev.in) / dt, out: (cur.out - prev.out) / dt };
    state.rates.push(r);
    if (state.rates.length > RATE_POINTS) state.rates.shift();
    $('rate-in').textContent = fmtRate(r.in);
    $('rate-out').textContent = fmtRate(r.out);
    drawChart();
  }

  function niceMax(v) {
    if (v <= 0) return 1;
    const p = Math.pow(10, Math.floor(Math.log10(v)));
    for (const m of [1, 2, 5, 10]) if (v <= m * p) return m * p;
    return 10 * p;
  }

  function drawChart() {
    const c = $('chart');
    const ratio = window.devicePixelRatio || 1;
    const w = c.clientWidth, h = c.clientHeight;
    if (c.width !== w * ratio || c.height !== h * ratio) { c.width = w * ratio; c.height = h * ratio; }
    const g = c.getContext('2d');
    c.dataset.points = state.rates.length;
    g.setTransform(ratio, 0, 0, ratio, 0, 0);
    g.clearRect(0, 0, w, h);
    const left = 48, top = 8, bottom = h - 18, right = w - 8;
    const max = niceMax(Math.max(0, ...state.rates.map((r) => Math.max(r.in, r.out))));
    const css = getComputedStyle(document.body);
    g.font = '11px system-ui, sans-serif';
    g.fillStyle = css.getPropertyValue('--muted');
    g.strokeStyle = css.getPropertyValue('--grid');
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = bottom - (bottom - top) * i / 4;
      g.beginPath(); g.moveTo(left, y); g.lineTo(right, y); g.stroke();
      const v = max * i / 4;
      g.fillText(Number.isInteger(v) ? v.toLocaleString('en-US') : String(Number(v.toFixed(2))), 4, y + 4);
    }
    g.fillText(`last ${Math.round(RATE_POINTS * REFRESH_MS / 1000)} s`, left, h - 4);
    const x = (i) => right - (state.rates.length - 1 - i) * (right - left) / (RATE_POINTS - 1);
    const y = (v) => bottom - (bottom - top) * v / max;
    for (const key of ['in', 'out']) {
      g.strokeStyle = css.getPropertyValue('--' + key);
      g.lineWidth = 2;
      g.beginPath();
      state.rates.forEach((r, i) => (i ? g.lineTo(x(i), y(r[key])) : g.moveTo(x(i), y(r[key]))));
      g.stroke();
    }
  }

  // ---- /metrics: a small Prometheus text parser and the histogram maths

  function parseLabels(s) {
    const labels = {};
    let i = 0;
    while (i < s.length) {
      const eq = s.indexOf('=', i);
      if (eq < 0) break;
      const name = s.slice(i, eq).trim().replace(/^,/, '').trim();
      let j = eq + 2, v = ''; // skip ="
      for (; j < s.length && s[j] !== '"'; j++) {
        if (s[j] === '\\') { j++; v += s[j] === 'n' ? '\n' : s[j]; } else v += s[j];
      }
      labels[name] = v;
      i = j + 1;
    }
    return labels;
  }

  function parseMetrics(text) {
    const out = [];
    for (const line of text.split('\n')) {
      if (!line || line[0] === '#') continue;
      const brace = line.indexOf('{');
      const space = line.indexOf(' ');
      let name, labels = {}, rest;
      if (brace >= 0 && brace < space) {
        const close = line.lastIndexOf('}');
        name = line.slice(0, brace);
        labels = parseLabels(line.slice(brace + 1, close));
        rest = line.slice(close + 1).trim();
      } else {
        name = line.slice(0, space);
        rest = line.slice(space + 1).trim();
      }
      const v = rest.split(' ')[0];
      out.push({ name, labels, value: v === '+Inf' ? Infinity : Number(v) });
    }
    return out;
  }

  const sum = (samples, name, plugin) => samples
    .filter((m) => m.name === name && m.labels.plugin === plugin)
    .reduce((a, m) => a + m.value, 0);

  // buckets returns a plugin's decision latency histogram, summed over its
  // endpoints, as [[le, cumulative count]] sorted by le.
  function buckets(samples, plugin) {
    const by = new Map();
    for (const m of samples) {
      if (m.name !== 'mqttd_webhook_request_duration_seconds_bucket' || m.labels.plugin !== plugin) continue;
      const le = m.labels.le === '+Inf' ? Infinity : Number(m.labels.le);
      by.set(le, (by.get(le) || 0) + m.value);
    }
    return [...by.entries()].sort((a, b) => a[0] - b[0]);
  }

  // quantile interpolates inside the bucket holding rank q, as Prometheus's
  // histogram_quantile does; Infinity means above the largest bound.
  function quantile(q, bs) {
    const total = bs.length ? bs[bs.length - 1][1] : 0;
    if (!total) return null;
    const rank = q * total;
    let lo = 0, below = 0;
    for (const [le, count] of bs) {
      if (count >= rank) {
        if (le === Infinity) return Infinity;
        return lo + (le - lo) * (count > below ? (rank - below) / (count - below) : 1);
      }
      lo = le; below = count;
    }
    return Infinity;
  }

  // latency gives p50 and p99 over the last minute of scrapes when the
  // plugin was called in it, else since the broker started.
  function latency(plugin) {
    const now = state.scrapes[state.scrapes.length - 1];
    if (!now) return null;
    const cur = buckets(now.samples, plugin);
    const old = state.scrapes.find((s) => now.t - s.t <= LATENCY_WINDOW_MS);
    if (old && old !== now) {
      const before = new Map(buckets(old.samples, plugin));
      const delta = cur.map(([le, c]) => [le, c - (before.get(le) || 0)]);
      if (delta.length && delta[delta.length - 1][1] > 0 && delta.every(([, c]) => c >= 0)) {
        return { p50: quantile(0.5, delta), p99: quantile(0.99, delta), span: 'last minute' };
      }
    }
    if (!cur.length || !cur[cur.length - 1][1]) return { p50: null, p99: null, span: 'no calls yet' };
    return { p50: quantile(0.5, cur), p99: quantile(0.99, cur), span: 'since start' };
  }

  // statusLatency is the fallback when /metrics is unreadable: the worst
  // endpoint's percentiles since start, from the plugin's status.
  function statusLatency(st) {
    const eps = Object.values(st.endpoints || {}).filter((e) => e.calls > 0);
    if (!eps.length) return null;
    const worst = (k) => Math.max(...eps.map((e) => e[k] || 0)) / 1000;
    return { p50: worst('latency_p50_ms'), p99: worst('latency_p99_ms'), span: 'since start' };
  }

  // cacheHitRatio is since start: from the status when it has counted
  // lookups, else from /metrics (the same counters).
  function cacheHitRatio(plugin, st) {
    let hits = st.cache_hits, misses = st.cache_misses;
    if (!(hits + misses > 0)) {
      const now = state.scrapes[state.scrapes.length - 1];
      if (!now) return null;
      hits = sum(now.samples, 'mqttd_webhook_cache_hits_total', plugin);
      misses = sum(now.samples, 'mqttd_webhook_cache_misses_total', plugin);
    }
    return hits + misses ? hits / (hits + misses) : null;
  }

  async function scrapeMetrics() {
    const samples = parseMetrics(await request('/metrics', {}, false));
    const t = Date.now();
    state.scrapes.push({ t, samples });
    while (state.scrapes.length > 2 && t - state.scrapes[1].t > LATENCY_WINDOW_MS) state.scrapes.shift();
  }

  // ---- plugins

  const BREAKER_RANK = { closed: 0, half_open: 1, open: 2 };

  function row(label, value, attrs) {
    return el('div', { class: 'kv' }, el('span', { class: 'k' }, label), el('span', Object.assign({ class: 'v' }, attrs), value));
  }

  function pluginPanel(p, refusals, metricsOK) {
    const st = p.status || {};
    const eps = Object.entries(st.endpoints || {}).sort((a, b) => a[0].localeCompare(b[0]));
    let worst = eps.length ? 'closed' : 'none';
    for (const [, ep] of eps) if (BREAKER_RANK[ep.breaker_state] > (BREAKER_RANK[worst] ?? -1)) worst = ep.breaker_state;

    const head = el('header', {},
      el('h3', {}, p.alias),
      el('span', { class: 'badge' }, p.type || 'plugin'),
      st.ready === undefined ? null : el('span', { class: 'badge ' + (st.ready ? 'ok' : 'bad') }, st.ready ? 'ready' : 'not ready'));
    const panel = el('article', { class: 'plugin breaker-' + worst, 'data-plugin': p.alias, 'data-breaker': worst }, head);
    if (p.capabilities && p.capabilities.length) panel.append(el('p', { class: 'muted caps' }, p.capabilities.join(' · ')));

    if (eps.length) {
      const list = el('div', { class: 'breakers' });
      for (const [name, ep] of eps) {
        const title = `${ep.failures ?? 0} failures of ${ep.requests ?? 0} requests in the window, ${ep.consecutive_failures ?? 0} in a row`;
        list.append(el('span', { class: 'breaker ' + ep.breaker_state, title, 'data-endpoint': name, 'data-state': ep.breaker_state },
          `${name}: ${String(ep.breaker_state).replace('_', '-')}`));
      }
      panel.append(row('Breaker', list));
    }
    if (st.endpoints !== undefined || st.url !== undefined) {
      const lat = (metricsOK && latency(p.alias)) || statusLatency(st);
      const ratio = cacheHitRatio(p.alias, st);
      panel.append(
        row('Decision latency', lat ? `p50 ${fmtSeconds(lat.p50)} · p99 ${fmtSeconds(lat.p99)}` : '–',
          { title: lat ? lat.span : '/metrics unavailable', 'data-latency': '' }),
        row('Cache hit ratio', ratio === null ? '–' : (ratio * 100).toFixed(1) + ' %', { 'data-cache-ratio': '' }),
        row('Cache entries', fmtInt(st.cache_entries)),
        row('Queue depth', fmtInt(st.queue_depth), { 'data-queue-depth': '' }));
      const dropped = (st.events && st.events.dropped) || {};
      const total = Object.values(dropped).reduce((a, n) => a + n, 0);
      const why = Object.entries(dropped).filter(([, n]) => n).map(([k, n]) => `${k} ${n}`).join(', ');
      panel.append(row('Events dropped', fmtInt(total) + (why ? ` (${why})` : ''), { 'data-dropped': total }));
    }
    if (!eps.length && st.url === undefined) {
      panel.append(el('p', { class: 'muted' }, 'Decides in the broker: no breaker, cache or event queue.'));
    }
    const mine = refusals.filter((r) => r.plugin === p.alias);
    panel.append(row('Recent refusals', mine.length ? `${mine.length}, last ${fmtTime(mine[0].time)}` : 'none'));
    return panel;
  }

  function renderPlugins(plugins, refusals, metricsOK) {
    const box = $('plugins');
    box.replaceChildren();
    if (!plugins.length) box.append(el('p', { class: 'muted' }, 'No plugins configured.'));
    for (const p of plugins) box.append(pluginPanel(p, refusals, metricsOK));
  }

  // ---- refusals

  function renderRefusals(refusals) {
    const body = $('refusals');
    body.replaceChildren();
    if (!refusals.length) body.append(el('tr', {}, el('td', { colSpan: 7, class: 'muted' }, 'No refused connections.')));
    for (const r of refusals.slice(0, 20)) {
      body.append(el('tr', { 'data-refusal': r.client_id },
        el('td', {}, fmtTime(r.time)), el('td', {}, r.client_id), el('td', {}, r.username),
        el('td', {}, r.remote_addr), el('td', {}, r.listener),
        el('td', {}, `${r.reason_code !== undefined ? '0x' + Number(r.reason_code).toString(16).padStart(2, '0') + ' ' : ''}${r.reason || ''}`),
        el('td', {}, r.plugin || 'broker')));
    }
  }

  // ---- clients

  async function loadClients() {
    const q = new URLSearchParams({ q: state.query, limit: String(PAGE_SIZE) });
    if (state.cursor) q.set('cursor', state.cursor);
    const page = await api('/api/v1/clients?' + q.toString());
    renderClients(page);
  }

  function renderClients(page) {
    const list = items(page);
    state.next = page.next || '';
    $('page-next').disabled = !state.next;
    $('page-first').disabled = !state.cursor;
    $('clients-total').textContent = typeof page.total === 'number' ? `(${fmtInt(page.total)})` : '';
    // The rows are rebuilt only when what they show changed, so a poll
    // does not take away the operator's text selection or the button
    // under the mouse.
    const shown = JSON.stringify([state.query, list, list.map((c) => fmtSince(c.connected_at))]);
    if (shown === state.clientsShown) return;
    state.clientsShown = shown;
    const body = $('clients');
    body.replaceChildren();
    if (!list.length) body.append(el('tr', {}, el('td', { colSpan: 10, class: 'muted' }, state.query ? 'No client matches.' : 'No clients connected.')));
    for (const c of list) {
      body.append(el('tr', { 'data-client-id': c.client_id },
        el('td', { class: 'id' }, c.client_id), el('td', {}, c.username), el('td', {}, c.remote_addr),
        el('td', {}, fmtProtocol(c.protocol)),
        el('td', {}, c.listener + (c.transport && c.transport !== c.listener ? ` (${c.transport})` : '')),
        el('td', { title: c.connected_at }, fmtSince(c.connected_at)),
        el('td', { class: 'num' }, fmtInt(c.subscriptions)), el('td', { class: 'num' }, fmtInt(c.inflight)),
        el('td', { class: 'num' }, fmtInt(c.queued)),
        el('td', {}, el('button', { type: 'button', class: 'kick', 'data-kick': c.client_id }, 'Kick'))));
    }
  }

  async function kick(button) {
    const id = button.dataset.kick;
    button.disabled = true;
    button.textContent = 'Kicking…';
    try {
      await api(`/api/v1/clients/${encodeURIComponent(id)}/kick`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ discard_session: $('discard-session').checked }),
      });
      toast(`Kicked ${id}`);
      state.clientsShown = ''; // redraw even if the list reads the same
      await loadClients();
    } catch (err) {
      if (err.status === 401) { setToken(''); needToken('The broker refused the admin token (401). Enter admin.token from its config.'); return; }
      banner(`Could not kick ${id}: ${err.message}`);
      button.disabled = false;
      button.textContent = 'Kick';
    }
  }

  // ---- the polling loop

  async function refresh() {
    clearTimeout(state.timer);
    const gen = ++state.gen;
    if (!state.token) {
      needToken("Enter the admin token (admin.token in the broker's config) to load the dashboard.");
      return;
    }
    const [stats, plugins, refusals, clients, metrics] = await Promise.allSettled([
      api('/api/v1/stats'), api('/api/v1/plugins'), api('/api/v1/refusals'), loadClients(), scrapeMetrics(),
    ]);
    if (gen !== state.gen) return; // a newer refresh (a new token) took over
    const failed = [stats, plugins, refusals, clients].filter((r) => r.status === 'rejected').map((r) => r.reason);
    if (failed.some((e) => e.status === 401)) {
      setToken('');
      needToken('The broker refused the admin token (401). Enter admin.token from its config.');
      return;
    }
    if (stats.status === 'fulfilled') renderStats(stats.value);
    const refused = refusals.status === 'fulfilled' ? items(refusals.value) : [];
    if (refusals.status === 'fulfilled') renderRefusals(refused);
    if (plugins.status === 'fulfilled') renderPlugins(items(plugins.value), refused, metrics.status === 'fulfilled');
    banner(failed.map((e) => e.message).join(' · '));
    document.body.dataset.state = failed.length ? 'error' : 'ok';
    $('updated').textContent = 'updated ' + new Date().toLocaleTimeString('en-GB');
    state.timer = setTimeout(refresh, REFRESH_MS);
  }

  // ---- wiring

  function debounce(fn, ms) {
    let t = 0;
    return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
  }

  function showClientsError(err) { banner(err.message); }

  $('token-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const tok = $('token').value.trim();
    if (!tok) { needToken('The token is empty: paste admin.token from the broker\'s config.'); return; }
    setToken(tok);
    banner('');
    document.body.dataset.state = 'loading';
    refresh();
  });
  $('token-forget').addEventListener('click', () => {
    setToken('');
    clearTimeout(state.timer);
    state.gen++;
    needToken('Token forgotten. Enter it again to load the dashboard.');
  });
  $('clients').addEventListener('click', (ev) => {
    const b = ev.target.closest('button[data-kick]');
    if (b) kick(b);
  });
  $('client-search').addEventListener('input', debounce((ev) => {
    state.query = ev.target.value.trim();
    state.cursor = '';
    loadClients().catch(showClientsError);
  }, 300));
  $('page-next').addEventListener('click', () => {
    state.cursor = state.next;
    loadClients().catch(showClientsError);
  });
  $('page-first').addEventListener('click', () => {
    state.cursor = '';
    loadClients().catch(showClientsError);
  });
  window.addEventListener('resize', debounce(drawChart, 100));

  setToken(state.token);
  drawChart();
  refresh();
})();
