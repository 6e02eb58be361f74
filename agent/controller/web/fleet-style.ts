/** The fleet page's style sheet (served as /assets/fleet.css, same origin, so the CSP needs no 'unsafe-inline'). */
export const FLEET_CSS = `:root { --ok: #1b7f3b; --warn: #b26a00; --bad: #b3261e; --none: #6b6b6b; --sim: #6a1b9a; font-family: system-ui, sans-serif; }
body { margin: 0; background: #f6f7f9; color: #1d1d1f; }
header, main, footer { padding: 0 24px; }
header { background: #1d2433; color: #fff; padding-top: 12px; padding-bottom: 12px; }
h1 { margin: 0; font-size: 22px; }
h2 { font-size: 16px; }
#summary { margin: 4px 0 0; opacity: .85; }
#toolbar { display: flex; flex-wrap: wrap; gap: 16px; align-items: center; margin-top: 12px; font-size: 14px; }
#toolbar select, #toolbar input { font: inherit; margin-left: 4px; }
#pager { margin-left: auto; display: flex; gap: 4px; align-items: center; }
#pager button { font: inherit; min-width: 28px; }
#range { padding: 0 6px; font-variant-numeric: tabular-nums; }
table { width: 100%; border-collapse: collapse; margin-top: 8px; background: #fff; box-shadow: 0 1px 2px rgba(0,0,0,.1); }
th, td { text-align: left; padding: 6px 8px; border-bottom: 1px solid #e3e5e8; font-size: 13px; vertical-align: top; }
th { background: #eef0f3; font-weight: 600; position: sticky; top: 0; white-space: nowrap; }
th button { font: inherit; background: none; border: 0; padding: 0; cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " ▲"; font-size: 10px; }
th[aria-sort="descending"] button::after { content: " ▼"; font-size: 10px; }
a.help { display: inline-block; width: 14px; height: 14px; line-height: 14px; text-align: center; border-radius: 7px; background: var(--none); color: #fff; font-size: 10px; text-decoration: none; }
tr.agent { cursor: pointer; }
tr.agent:hover { background: #f0f4ff; }
td.agent-id { overflow-wrap: anywhere; min-width: 110px; max-width: 260px; }
td.devices { min-width: 160px; }
.status { display: inline-block; padding: 2px 8px; border-radius: 10px; color: #fff; font-weight: 600; font-size: 12px; text-transform: uppercase; }
.status.affirming { background: var(--ok); }
.status.warning { background: var(--warn); }
.status.contraindicated { background: var(--bad); }
.status.none { background: var(--none); }
.device { display: inline-block; margin: 0 3px 2px 0; padding: 0 4px; white-space: nowrap; border-radius: 4px; font-size: 12px; border: 1px solid; }
.device.affirming { color: var(--ok); border-color: var(--ok); }
.device.warning { color: var(--warn); border-color: var(--warn); }
.device.contraindicated { color: var(--bad); border-color: var(--bad); }
.device.none { color: var(--none); border-color: var(--none); }
.badge-sim { display: inline-block; margin-left: 6px; padding: 1px 6px; border-radius: 4px; background: var(--sim); color: #fff; font-size: 11px; font-weight: 700; letter-spacing: .05em; white-space: nowrap; }
.ready { display: inline-block; margin-left: 6px; padding: 0 5px; border-radius: 4px; font-size: 11px; border: 1px solid; white-space: nowrap; }
.ready.yes { color: var(--ok); border-color: var(--ok); }
.ready.no { color: var(--bad); border-color: var(--bad); }
.ready.unknown, .unknown { color: var(--none); }
.version { overflow-wrap: anywhere; max-width: 140px; }
.expired { color: var(--bad); }
.events .gaps, .events .alarms { display: block; font-size: 11px; color: var(--warn); }
.events .alarms { color: var(--bad); }
.link-up { color: var(--ok); font-weight: 600; }
.link-down { color: var(--none); }
.problem { color: var(--bad); font-size: 12px; max-width: 320px; overflow-wrap: anywhere; }
.empty td { color: var(--none); font-style: italic; }
#details, #legend { background: #fff; margin-top: 16px; padding: 8px 16px; box-shadow: 0 1px 2px rgba(0,0,0,.1); }
#details li.fail { color: var(--bad); }
#details li.warn { color: var(--warn); }
#legend dl { display: grid; grid-template-columns: max-content 1fr; gap: 6px 16px; font-size: 13px; }
#legend dt { font-weight: 600; }
#legend dd { margin: 0; }
footer { margin: 16px 0; font-size: 12px; color: var(--none); }
`;
