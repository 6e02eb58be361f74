/**
 * The fleet page's browser script (served as /assets/fleet.js, same origin, so the CSP needs no
 * 'unsafe-inline'). Agent ids, versions and every other agent-supplied string are hostile input:
 * they reach the DOM through textContent, title and dataset only, never as HTML. Sorting,
 * filtering and paging happen here on the fetched list, and only one page of rows is in the DOM,
 * so a fleet of thousands stays quick to render and to refresh.
 */
export const FLEET_JS = `'use strict';
(function () {
  var REFRESH_MS = 3000;
  var PAGE_SIZE = 50;
  var STATUSES = ['affirming', 'warning', 'contraindicated', 'none'];
  // Worst first when sorted ascending: what an operator looks for.
  var SEVERITY = { contraindicated: 0, none: 1, warning: 2, affirming: 3 };
  var MARKS = { affirming: '✓', warning: '!', contraindicated: '✗', none: '–' };
  var TEE_NAMES = { snp: 'SEV-SNP', 'azure-snp-vtpm': 'SEV-SNP (Azure vTPM)' };
  var state = { agents: [], sort: 'id', dir: 1, filter: 'all', query: '', page: 0, rendered: false };

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }
  function statusClass(s) { return STATUSES.indexOf(s) >= 0 ? s : 'none'; }
  function time(iso) { var t = iso ? Date.parse(iso) : NaN; return isNaN(t) ? null : t; }
  function span(seconds) {
    var s = Math.abs(Math.round(seconds));
    if (s < 60) return s + ' s';
    if (s < 3600) return Math.round(s / 60) + ' min';
    if (s < 172800) return Math.round(s / 3600) + ' h';
    return Math.round(s / 86400) + ' d';
  }
  function ago(iso) {
    var t = time(iso);
    return t === null ? 'never' : span(Math.max(0, Date.now() - t) / 1000) + ' ago';
  }

  // Sort keys: null sorts last in either direction (an unknown is never "the smallest").
  var KEYS = {
    id: function (a) { return String(a.id); },
    link: function (a) { return a.connected ? 1 : 0; },
    status: function (a) { return SEVERITY[statusClass(a.status)]; },
    tee: function (a) { return a.teeKind ? String(a.teeKind) : null; },
    version: function (a) { return a.version ? String(a.version) : null; },
    gpus: function (a) { return typeof a.gpus === 'number' ? a.gpus : null; },
    verdict: function (a) { return time(a.lastVerdictAt); },
    token: function (a) { return time(a.tokenExpiresAt); },
    seen: function (a) { return time(a.lastSeen); },
    events: function (a) { return typeof a.eventsStored === 'number' ? a.eventsStored : null; }
  };
  function compare(x, y) {
    if (x === y) return 0;
    if (typeof x === 'string' && typeof y === 'string') return x.localeCompare(y);
    return x < y ? -1 : 1;
  }
  function sorted(list) {
    var key = KEYS[state.sort] || KEYS.id;
    var dir = state.dir;
    return list.map(function (a) { return { a: a, k: key(a) }; }).sort(function (p, q) {
      if (p.k === null || q.k === null) {
        if (p.k !== q.k) return p.k === null ? 1 : -1;
      } else {
        var c = compare(p.k, q.k) * dir;
        if (c !== 0) return c;
      }
      return compare(String(p.a.id), String(q.a.id));
    }).map(function (p) { return p.a; });
  }
  function matches(a) {
    var f = state.filter;
    if (f === 'disconnected' && a.connected) return false;
    if (f !== 'all' && f !== 'disconnected' && statusClass(a.status) !== f) return false;
    return state.query === '' || String(a.id).toLowerCase().indexOf(state.query) >= 0;
  }

  function teeCell(a) {
    if (!a.teeKind) return el('td', 'unknown', 'unknown');
    var td = el('td', null, TEE_NAMES[a.teeKind] || a.teeKind);
    td.title = 'cpu.kind of the last appraised evidence: ' + a.teeKind;
    return td;
  }
  function gpuCell(a) {
    if (typeof a.gpus !== 'number') {
      var u = el('td', 'unknown', 'unknown');
      u.title = 'no evidence appraised yet';
      return u;
    }
    var td = el('td', 'gpus', a.gpus);
    if (a.gpus === 0) return td;
    var r = a.gpuReady;
    var badge = el('span', 'ready ' + (!r ? 'unknown' : r.ready ? 'yes' : 'no'), !r ? 'ready: unknown' : r.ready ? 'ready' : 'not ready');
    badge.title = !r
      ? 'the agent has not streamed an event that reports the ready state'
      : 'as the agent reported in event seq ' + r.seq + ' at ' + r.at + (r.reason ? ': ' + r.reason : '');
    td.appendChild(badge);
    return td;
  }
  function tokenCell(a) {
    var t = time(a.tokenExpiresAt);
    if (t === null) return el('td', 'unknown', 'none');
    var left = (t - Date.now()) / 1000;
    var td = el('td', left > 0 ? null : 'expired', left > 0 ? 'in ' + span(left) : 'expired ' + span(left) + ' ago');
    td.title = a.tokenExpiresAt;
    return td;
  }
  function eventsCell(a) {
    var n = typeof a.eventsStored === 'number' ? a.eventsStored : a.lastSeq;
    var td = el('td', 'events', n + ' stored');
    if (a.gaps) td.appendChild(el('span', 'gaps', a.gaps + ' gap' + (a.gaps === 1 ? '' : 's')));
    if (a.alarms) td.appendChild(el('span', 'alarms', a.alarms + ' alarm' + (a.alarms === 1 ? '' : 's')));
    td.title = n + ' signed events stored, seq 1..' + a.lastSeq + '; ' + (a.gaps || 0) + ' gap range(s) of seqs never stored; ' +
      (a.alarms || 0) + ' stream alarm(s)';
    return td;
  }
  function row(a) {
    var tr = el('tr', 'agent');
    tr.dataset.agentId = a.id;
    var name = el('td', 'agent-id', a.id);
    if (a.simulated) name.appendChild(el('span', 'badge-sim', 'SIMULATED'));
    tr.appendChild(name);
    var link = el('td', a.connected ? 'link-up' : 'link-down', a.connected ? 'connected' : 'offline');
    link.title = 'last seen ' + ago(a.lastSeen);
    tr.appendChild(link);
    var st = el('td');
    st.appendChild(el('span', 'status ' + statusClass(a.status), a.status));
    tr.appendChild(st);
    tr.appendChild(teeCell(a));
    tr.appendChild(el('td', a.version ? 'version' : 'unknown', a.version || 'unknown'));
    tr.appendChild(gpuCell(a));
    var dev = el('td', 'devices');
    Object.keys(a.devices || {}).sort().forEach(function (id) {
      var s = statusClass(a.devices[id]);
      // A mark as well as a colour, so the status reads without colour vision; the word is in the title.
      var d = el('span', 'device ' + s, id + ' ' + MARKS[s]);
      d.title = id + ': ' + s;
      dev.appendChild(d);
    });
    tr.appendChild(dev);
    tr.appendChild(el('td', null, ago(a.lastVerdictAt)));
    tr.appendChild(tokenCell(a));
    tr.appendChild(el('td', null, ago(a.lastSeen)));
    tr.appendChild(eventsCell(a));
    tr.appendChild(el('td', 'problem', a.lastRejection ? a.lastRejection.code + ': ' + a.lastRejection.message : ''));
    tr.addEventListener('click', function () { showDetails(a.id); });
    return tr;
  }
  function note(text) {
    var tr = el('tr', 'empty');
    var td = el('td', null, text);
    td.colSpan = 12;
    tr.appendChild(td);
    return tr;
  }

  function render() {
    var agents = state.agents;
    var view = sorted(agents.filter(matches));
    var pages = Math.max(1, Math.ceil(view.length / PAGE_SIZE));
    state.page = Math.min(Math.max(0, state.page), pages - 1);
    var first = state.page * PAGE_SIZE;
    var shown = view.slice(first, first + PAGE_SIZE);
    var frag = document.createDocumentFragment();
    if (shown.length === 0) frag.appendChild(note(agents.length === 0 ? 'no agents yet' : 'no agent matches the filter'));
    shown.forEach(function (a) { frag.appendChild(row(a)); });
    var body = document.getElementById('agent-rows');
    while (body.firstChild) body.removeChild(body.firstChild);
    body.appendChild(frag);

    document.getElementById('range').textContent = view.length === 0 ? '0 of 0' :
      (first + 1) + '–' + (first + shown.length) + ' of ' + view.length + ' (page ' + (state.page + 1) + ' of ' + pages + ')';
    document.getElementById('first').disabled = document.getElementById('prev').disabled = state.page === 0;
    document.getElementById('next').disabled = document.getElementById('last').disabled = state.page >= pages - 1;

    var counts = { all: agents.length, disconnected: 0, affirming: 0, warning: 0, contraindicated: 0, none: 0 };
    agents.forEach(function (a) {
      counts[statusClass(a.status)]++;
      if (!a.connected) counts.disconnected++;
    });
    var options = document.getElementById('filter').options;
    for (var i = 0; i < options.length; i++) options[i].textContent = options[i].value + ' (' + counts[options[i].value] + ')';
    document.querySelectorAll('#agents th[data-key]').forEach(function (th) {
      th.setAttribute('aria-sort', th.dataset.key !== state.sort ? 'none' : state.dir > 0 ? 'ascending' : 'descending');
    });
    document.getElementById('summary').textContent = agents.length + ' agent(s), ' + (agents.length - counts.disconnected) + ' connected — ' +
      counts.affirming + ' affirming, ' + counts.warning + ' warning, ' + counts.contraindicated + ' contraindicated' +
      (agents.some(function (a) { return a.simulated; }) ? ' — includes SIMULATED evidence' : '');
    if (!state.rendered && agents.length > 0) {
      state.rendered = true;
      // Time from navigation start to the first filled table (read by the headless-browser test).
      document.documentElement.dataset.firstRenderMs = String(Math.round(performance.now()));
    }
  }

  function showDetails(id) {
    fetch('/v1/agents/' + encodeURIComponent(id), { cache: 'no-store' }).then(function (r) {
      // A problem document (e.g. 404 for an agent that has just gone) is not an agent: show nothing.
      return r.ok ? r.json() : Promise.reject({ message: 'HTTP ' + r.status });
    }).then(function (d) {
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
      if (!r.ok) return Promise.reject({ message: 'HTTP ' + r.status });
      return r.json();
    }).then(function (doc) {
      state.agents = Array.isArray(doc.agents) ? doc.agents : [];
      render();
    }).catch(function (e) {
      document.getElementById('summary').textContent = 'cannot reach the controller: ' + (e && e.message);
    });
  }

  document.querySelectorAll('#agents th[data-key] button').forEach(function (b) {
    b.addEventListener('click', function () {
      var key = b.parentNode.dataset.key;
      state.dir = state.sort === key ? -state.dir : 1;
      state.sort = key;
      state.page = 0;
      render();
    });
  });
  document.getElementById('filter').addEventListener('change', function (e) {
    state.filter = e.target.value;
    state.page = 0;
    render();
  });
  document.getElementById('search').addEventListener('input', function (e) {
    state.query = String(e.target.value).trim().toLowerCase();
    state.page = 0;
    render();
  });
  function go(to) { return function () { state.page = to(); render(); }; }
  document.getElementById('first').addEventListener('click', go(function () { return 0; }));
  document.getElementById('prev').addEventListener('click', go(function () { return state.page - 1; }));
  document.getElementById('next').addEventListener('click', go(function () { return state.page + 1; }));
  document.getElementById('last').addEventListener('click', go(function () { return Infinity; }));
  refresh();
  setInterval(refresh, REFRESH_MS);
})();
`;
