/**
 * The fleet web page: plain HTML + CSS + vanilla JS, no build step, no external resources. Script
 * and style are separate same-origin resources so the Content-Security-Policy needs no
 * 'unsafe-inline'. Every agent-supplied string is inserted with textContent, never as HTML.
 */

export const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "connect-src 'self'",
  "img-src 'self' data:",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export const FLEET_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>cvm-agent fleet</title>
<link rel="stylesheet" href="/assets/fleet.css">
<script src="/assets/fleet.js" defer></script>
</head>
<body>
<header>
  <h1>cvm-agent fleet</h1>
  <p id="summary" aria-live="polite">loading…</p>
</header>
<main>
  <table id="agents">
    <thead>
      <tr><th>Agent</th><th>Link</th><th>Status</th><th>Devices</th><th>Last verdict</th><th>Last seen</th><th>Events</th><th>Last problem</th></tr>
    </thead>
    <tbody id="agent-rows"><tr class="empty"><td colspan="8">no agents yet</td></tr></tbody>
  </table>
  <section id="details" hidden>
    <h2 id="details-title"></h2>
    <ul id="details-checks"></ul>
  </section>
</main>
<footer>Refreshes every 3 s from <code>/v1/agents</code>. Token signing keys: <a href="/.well-known/jwks.json">/.well-known/jwks.json</a></footer>
</body>
</html>
`;

export const FLEET_CSS = `:root { --ok: #1b7f3b; --warn: #b26a00; --bad: #b3261e; --none: #6b6b6b; --sim: #6a1b9a; font-family: system-ui, sans-serif; }
body { margin: 0; background: #f6f7f9; color: #1d1d1f; }
header, main, footer { padding: 0 24px; }
header { background: #1d2433; color: #fff; padding-top: 12px; padding-bottom: 12px; }
h1 { margin: 0; font-size: 22px; }
#summary { margin: 4px 0 0; opacity: .85; }
table { width: 100%; border-collapse: collapse; margin-top: 16px; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.1); }
th, td { text-align: left; padding: 8px 10px; border-bottom: 1px solid #e3e5e8; font-size: 14px; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; }
tr.agent { cursor: pointer; }
tr.agent:hover { background: #f0f4ff; }
.status { display: inline-block; padding: 2px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; text-transform: uppercase; }
.status.affirming { background: var(--ok); }
.status.warning { background: var(--warn); }
.status.contraindicated { background: var(--bad); }
.status.none { background: var(--none); }
.device { display: inline-block; margin: 0 4px 2px 0; padding: 1px 6px; border-radius: 4px; font-size: 12px; border: 1px solid; }
.device.affirming { color: var(--ok); border-color: var(--ok); }
.device.warning { color: var(--warn); border-color: var(--warn); }
.device.contraindicated { color: var(--bad); border-color: var(--bad); }
.device.none { color: var(--none); border-color: var(--none); }
.badge-sim { display: inline-block; margin-left: 6px; padding: 1px 6px; border-radius: 4px; background: var(--sim); color: #fff; font-size: 11px; font-weight: 700; letter-spacing: .05em; }
.link-up { color: var(--ok); font-weight: 600; }
.link-down { color: var(--none); }
.problem { color: var(--bad); font-size: 12px; max-width: 360px; }
.empty td { color: var(--none); font-style: italic; }
#details { background: #fff; margin-top: 16px; padding: 8px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.1); }
#details li.fail { color: var(--bad); }
#details li.warn { color: var(--warn); }
footer { margin: 16px 0; font-size: 12px; color: var(--none); }
`;

export const FLEET_JS = `'use strict';
(function () {
  var REFRESH_MS = 3000;
  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  var STATUSES = ['affirming', 'warning', 'contraindicated', 'none'];
  function statusClass(s) { return STATUSES.indexOf(s) >= 0 ? s : 'none'; }
  function ago(iso) {
    if (!iso) return 'never';
    var s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
    if (s < 60) return s + ' s ago';
    if (s < 3600) return Math.round(s / 60) + ' min ago';
    return Math.round(s / 3600) + ' h ago';
  }
  function row(a) {
    var tr = el('tr', 'agent');
    tr.dataset.agentId = a.id;
    var name = el('td', 'agent-id', a.id);
    if (a.simulated) name.appendChild(el('span', 'badge-sim', 'SIMULATED'));
    tr.appendChild(name);
    tr.appendChild(el('td', a.connected ? 'link-up' : 'link-down', a.connected ? 'connected' : 'offline'));
    var st = el('td');
    st.appendChild(el('span', 'status ' + statusClass(a.status), a.status));
    tr.appendChild(st);
    var dev = el('td');
    Object.keys(a.devices || {}).sort().forEach(function (id) {
      var s = a.devices[id];
      dev.appendChild(el('span', 'device ' + statusClass(s), id + ': ' + s));
    });
    tr.appendChild(dev);
    tr.appendChild(el('td', null, ago(a.lastVerdictAt)));
    tr.appendChild(el('td', null, ago(a.lastSeen)));
    tr.appendChild(el('td', null, 'seq ' + a.lastSeq + (a.gaps ? ', ' + a.gaps + ' gap(s)' : '')));
    tr.appendChild(el('td', 'problem', a.lastRejection ? a.lastRejection.code + ': ' + a.lastRejection.message : ''));
    tr.addEventListener('click', function () { showDetails(a.id); });
    return tr;
  }
  function render(agents) {
    var body = document.getElementById('agent-rows');
    while (body.firstChild) body.removeChild(body.firstChild);
    if (agents.length === 0) {
      var tr = el('tr', 'empty');
      var td = el('td', null, 'no agents yet');
      td.colSpan = 8;
      tr.appendChild(td);
      body.appendChild(tr);
    }
    agents.forEach(function (a) { body.appendChild(row(a)); });
    var count = function (s) { return agents.filter(function (a) { return a.status === s; }).length; };
    var up = agents.filter(function (a) { return a.connected; }).length;
    document.getElementById('summary').textContent = agents.length + ' agent(s), ' + up + ' connected — ' +
      count('affirming') + ' affirming, ' + count('warning') + ' warning, ' + count('contraindicated') + ' contraindicated' +
      (agents.some(function (a) { return a.simulated; }) ? ' — includes SIMULATED evidence' : '');
  }
  function showDetails(id) {
    fetch('/v1/agents/' + encodeURIComponent(id), { cache: 'no-store' }).then(function (r) { return r.json(); }).then(function (d) {
      var box = document.getElementById('details');
      document.getElementById('details-title').textContent = d.id + ' — ' + (d.lastVerdict ? d.lastVerdict.status : 'no verdict yet');
      var list = document.getElementById('details-checks');
      while (list.firstChild) list.removeChild(list.firstChild);
      var subs = (d.lastVerdict && d.lastVerdict.ear && d.lastVerdict.ear.submods) || {};
      Object.keys(subs).sort().forEach(function (dev) {
        (subs[dev]['cvm.checks'] || []).forEach(function (c) {
          if (c.ok && !c.warning) return;
          list.appendChild(el('li', c.ok ? 'warn' : 'fail', dev + ' ' + c.name + ': ' + c.detail));
        });
      });
      if (!list.firstChild) list.appendChild(el('li', null, 'every check passed'));
      box.hidden = false;
    }).catch(function () {});
  }
  function refresh() {
    fetch('/v1/agents', { cache: 'no-store' }).then(function (r) {
      if (!r.ok) throw new Error('HTTP ' + r.status);
      return r.json();
    }).then(function (doc) { render(doc.agents || []); }).catch(function (e) {
      document.getElementById('summary').textContent = 'cannot reach the controller: ' + e.message;
    });
  }
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
`;
