/**
 * The fleet web page: plain HTML + CSS + vanilla JS, no build step, no external resources. Script
 * (./fleet-script.ts) and style (./fleet-style.ts) are separate same-origin resources so the
 * Content-Security-Policy needs no 'unsafe-inline'. Every agent-supplied string is inserted with
 * textContent, never as HTML.
 */
export { FLEET_CSS } from './fleet-style.js';
export { FLEET_JS } from './fleet-script.js';

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

/** A sortable column header: the script sorts by `key` when its button is clicked. */
const th = (key: string, label: string, title?: string, after = '') =>
  `<th data-key="${key}" aria-sort="${key === 'id' ? 'ascending' : 'none'}"${title ? ` title="${title}"` : ''}><button type="button">${label}</button>${after}</th>`;

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
  <div id="toolbar">
    <label>Status <select id="filter">
      <option value="all">all</option>
      <option value="affirming">affirming</option>
      <option value="warning">warning</option>
      <option value="contraindicated">contraindicated</option>
      <option value="none">none</option>
      <option value="disconnected">disconnected</option>
    </select></label>
    <label>Agent id <input id="search" type="search" placeholder="contains…" autocomplete="off"></label>
    <nav id="pager" aria-label="pages">
      <button type="button" id="first" title="first page">«</button>
      <button type="button" id="prev" title="previous page">‹</button>
      <span id="range">–</span>
      <button type="button" id="next" title="next page">›</button>
      <button type="button" id="last" title="last page">»</button>
    </nav>
  </div>
  <table id="agents">
    <thead>
      <tr>${[
        th('id', 'Agent'),
        th('link', 'Link'),
        th('status', 'Status', 'the last verdict: worst first when ascending'),
        th('tee', 'TEE', 'the TEE kind the last appraised evidence names'),
        th('version', 'Version', 'agent software version from its hello'),
        th('gpus', 'GPUs', 'GPUs in the last appraised evidence, and their ready state as the agent last reported it'),
        '<th>Devices</th>',
        th('verdict', 'Last verdict'),
        th('token', 'Token expires', 'expiry of the EAR token signed with the last verdict'),
        th('seen', 'Last seen'),
        th(
          'events',
          'Events',
          'signed attestation and trust events the agent streamed and the controller verified and stored; gaps are seqs never stored',
          ' <a href="#legend" class="help" aria-label="what events means">?</a>',
        ),
        '<th>Last problem</th>',
      ].join('')}</tr>
    </thead>
    <tbody id="agent-rows"><tr class="empty"><td colspan="12">no agents yet</td></tr></tbody>
  </table>
  <section id="details" hidden>
    <h2 id="details-title"></h2>
    <ul id="details-checks"></ul>
  </section>
  <section id="legend">
    <h2>Legend</h2>
    <dl>
      <dt>Events</dt>
      <dd>Signed events the agent streamed over its link (each attestation cycle, GPU ready-state changes, health
        status changes, errors, and notices of events it dropped) that the controller verified against a key the
        agent attested and stored, numbered by seq from 1. <em>Gaps</em> are ranges of seqs that will never be stored:
        dropped by the agent's bounded outbox, or signed by a key the controller never saw attested. <em>Alarms</em>
        are stream anomalies, such as a different event resent under a stored seq. Click a row's agent for details.</dd>
      <dt>TEE</dt>
      <dd>The TEE kind named by the last evidence the controller appraised (SEV-SNP, or SEV-SNP through Azure's vTPM);
        unknown before any evidence. Trust it only as far as the Status says.</dd>
      <dt>GPUs</dt>
      <dd>How many GPUs the last appraised evidence carries, and whether the GPUs accept work (the NVIDIA
        confidential-computing ready state) as the agent last reported in its event stream; unknown when it never did.</dd>
      <dt>Token expires</dt>
      <dd>When the EAR token signed with the last verdict expires; none before the first verdict.</dd>
      <dt>Status filter</dt>
      <dd>affirming, warning, contraindicated and none select by the last verdict; disconnected selects agents with
        no live link, whatever their last verdict.</dd>
    </dl>
  </section>
</main>
<footer>Refreshes every 3 s from <code>/v1/agents</code>; 50 agents per page. Token signing keys: <a href="/.well-known/jwks.json">/.well-known/jwks.json</a></footer>
</body>
</html>
`;
