/**
 * Headless Chromium (Debian package `chromium`) driven over the DevTools protocol with the `ws`
 * client the project already depends on: no browser download, no playwright. One page per
 * browser; enough of CDP to navigate, evaluate, click like a user and take a screenshot.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { findTool } from './tools.js';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import WebSocket from 'ws';

/** The browser on PATH (Debian: chromium), as test/helpers/tools.ts finds tools. */
export const CHROMIUM = ['chromium', 'chromium-browser', 'google-chrome'].map((b) => findTool(b)).find((p) => p !== undefined);

interface CdpMessage {
  id?: number;
  method?: string;
  params?: Record<string, unknown>;
  result?: Record<string, unknown>;
  error?: { message: string };
  sessionId?: string;
}

export interface LogEntry {
  source: string;
  level: string;
  text: string;
}

export class HeadlessPage {
  /** Console/log errors and uncaught exceptions seen on the page (CSP violations land here). */
  readonly problems: LogEntry[] = [];
  /** JavaScript dialogs the page tried to open (an injected alert() would show up here). */
  readonly dialogs: string[] = [];
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (r: Record<string, unknown>) => void; reject: (e: Error) => void }>();
  private sessionId = '';

  private constructor(
    private readonly proc: ChildProcess,
    private readonly ws: WebSocket,
    private readonly profile: string,
  ) {
    ws.on('message', (data) => this.onMessage(JSON.parse(data.toString()) as CdpMessage));
  }

  /** Start Chromium with a fresh profile and open one page of `width` x `height` CSS pixels. */
  static async open(width: number, height: number): Promise<HeadlessPage> {
    if (!CHROMIUM) throw new Error('chromium is not installed (apt-get install -y chromium)');
    const profile = mkdtempSync(join(tmpdir(), 'chromium-profile-'));
    // No sandbox (root in CI containers), no GPU, no network beyond what the page asks of loopback.
    const proc = spawn(
      CHROMIUM,
      [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-extensions',
        '--no-first-run',
        '--no-default-browser-check',
        '--disable-dev-shm-usage',
        `--user-data-dir=${profile}`,
        '--remote-debugging-port=0',
        'about:blank',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const url = await new Promise<string>((resolve, reject) => {
      let err = '';
      const t = setTimeout(() => reject(new Error(`chromium printed no DevTools address within 60 s: ${err.slice(-2000)}`)), 60_000);
      proc.stderr!.on('data', (d: Buffer) => {
        err += d.toString();
        const m = /DevTools listening on (ws:\/\/\S+)/.exec(err);
        if (m) {
          clearTimeout(t);
          resolve(m[1]!);
        }
      });
      proc.once('exit', (code) => {
        clearTimeout(t);
        reject(new Error(`chromium exited (${code}): ${err.slice(-2000)}`));
      });
    });
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 256 * 1024 * 1024 });
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const page = new HeadlessPage(proc, ws, profile);
    const { targetId } = await page.send('Target.createTarget', { url: 'about:blank' });
    const { sessionId } = await page.send('Target.attachToTarget', { targetId, flatten: true });
    page.sessionId = sessionId as string;
    for (const domain of ['Page', 'Runtime', 'Log']) await page.send(`${domain}.enable`);
    await page.send('Emulation.setDeviceMetricsOverride', { width, height, deviceScaleFactor: 1, mobile: false });
    return page;
  }

  private onMessage(m: CdpMessage): void {
    if (m.id !== undefined) {
      const p = this.pending.get(m.id);
      this.pending.delete(m.id);
      if (m.error) p?.reject(new Error(m.error.message));
      else p?.resolve(m.result ?? {});
      return;
    }
    const params = m.params ?? {};
    if (m.method === 'Log.entryAdded') {
      const e = params.entry as LogEntry;
      if (e.level === 'error' || e.source === 'security' || e.source === 'violation') this.problems.push(e);
    } else if (m.method === 'Runtime.exceptionThrown') {
      this.problems.push({ source: 'exception', level: 'error', text: JSON.stringify(params.exceptionDetails) });
    } else if (m.method === 'Runtime.consoleAPICalled' && params.type === 'error') {
      this.problems.push({ source: 'console', level: 'error', text: JSON.stringify(params.args) });
    } else if (m.method === 'Page.javascriptDialogOpening') {
      this.dialogs.push(String(params.message));
      void this.send('Page.handleJavaScriptDialog', { accept: false });
    }
  }

  /** One DevTools command (to the page's session unless it is a Target.* call). */
  send(method: string, params: Record<string, unknown> = {}): Promise<Record<string, any>> {
    const id = this.nextId++;
    const msg: CdpMessage = { id, method, params, ...(this.sessionId && !/^(Target|Browser)\./.test(method) ? { sessionId: this.sessionId } : {}) };
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ws.send(JSON.stringify(msg));
    });
  }

  async navigate(url: string): Promise<void> {
    const r = await this.send('Page.navigate', { url });
    if (r.errorText) throw new Error(`navigation to ${url} failed: ${r.errorText}`);
  }

  /** The value of a JavaScript expression in the page (awaited when it is a promise). */
  async eval<T = unknown>(expression: string): Promise<T> {
    const r = await this.send('Runtime.evaluate', { expression, returnByValue: true, awaitPromise: true });
    if (r.exceptionDetails) throw new Error(`page threw: ${JSON.stringify(r.exceptionDetails)}`);
    return r.result.value as T;
  }

  /** Poll `expression` until it is truthy; its value. A throw (e.g. a document mid-navigation) is "not yet". */
  async waitFor<T = unknown>(expression: string, timeoutMs = 30_000): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    let last = '';
    for (;;) {
      const v = await this.eval<T>(expression).catch((err: Error) => {
        last = err.message;
        return undefined;
      });
      if (v) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${expression}${last ? ` (last: ${last})` : ''}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** A real mouse click (pressed and released) in the middle of the element `selector` matches. */
  async click(selector: string): Promise<void> {
    const box = await this.eval<{ x: number; y: number } | null>(
      `(() => { const e = document.querySelector(${JSON.stringify(selector)}); if (!e) return null; e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect(); return { x: r.x + r.width / 2, y: r.y + r.height / 2 }; })()`,
    );
    if (!box) throw new Error(`nothing matches ${selector}`);
    for (const type of ['mousePressed', 'mouseReleased']) {
      await this.send('Input.dispatchMouseEvent', { type, x: box.x, y: box.y, button: 'left', clickCount: 1 });
    }
  }

  /** A PNG of the viewport. */
  async screenshot(): Promise<Buffer> {
    const r = await this.send('Page.captureScreenshot', { format: 'png' });
    return Buffer.from(r.data as string, 'base64');
  }

  async close(): Promise<void> {
    const exited = this.proc.exitCode === null ? new Promise((r) => this.proc.once('exit', r)) : Promise.resolve();
    // Browser.close lets Chromium stop its helper processes and finish writing the profile.
    await Promise.race([this.send('Browser.close').catch(() => undefined), new Promise((r) => setTimeout(r, 5000))]);
    this.ws.close();
    await Promise.race([exited, new Promise((r) => setTimeout(r, 10_000))]);
    if (this.proc.exitCode === null) this.proc.kill('SIGKILL');
    rmSync(this.profile, { recursive: true, force: true, maxRetries: 10, retryDelay: 100 });
  }
}
