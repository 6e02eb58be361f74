/**
 * The one HTTP path every collateral fetcher uses (global fetch / undici): an overall deadline
 * (AbortSignal.timeout) covering all attempts, bounded retries with exponential backoff and full
 * jitter on network errors and 5xx, 429 honouring Retry-After (KDS rate-limits,
 * go-sev-guest#69), a response size limit enforced while streaming, and typed errors that say what failed
 * and what to do instead.
 */
import { CollateralError, CollateralFetchError, type FetchFailure } from '../../errors.js';

export interface HttpOptions {
  /** Deadline for the whole request including retries and waits (ms). Default 10 s (nvtrust config.py uses 10 s for RIM/OCSP). */
  timeoutMs?: number;
  /** Extra attempts after the first. Default 3. */
  retries?: number;
  /** Backoff base and cap (ms): attempt n waits random(0, min(cap, base·2^n)). Defaults 500 / 8000. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Longest Retry-After we agree to wait (ms); a longer one fails at once. Default 30 s. */
  maxRetryAfterMs?: number;
  /** Response size limit (bytes). Default 1 MiB. */
  maxBytes?: number;
  /** Caller cancellation, combined with the deadline. */
  signal?: AbortSignal;
}

export { CollateralFetchError, type FetchFailure };

export interface HttpRequest {
  url: string;
  /** What is being fetched, for messages ("VCEK for Milan"). */
  what: string;
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  body?: Uint8Array;
}

export interface HttpResponse {
  status: number;
  headers: Headers;
  body: Buffer;
  /** Attempts made (1 = no retry). */
  attempts: number;
}

const IMPORT_HINT = 'or obtain the file elsewhere and import it with "cvm-agent collateral import FILE"';

/** Retry-After: delta-seconds or an HTTP-date (RFC 9110 §10.2.3). */
export function parseRetryAfter(value: string | null, now = Date.now()): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^[0-9]{1,9}$/.test(v)) return Number(v) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

async function readLimited(res: Response, max: number, req: HttpRequest): Promise<Buffer> {
  const declared = res.headers.get('content-length');
  if (declared !== null && Number(declared) > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new CollateralFetchError(
      'too-large',
      req.url,
      `${req.what}: response of ${declared} bytes from ${req.url} exceeds the ${max}-byte limit`,
      res.status,
    );
  }
  if (!res.body) return Buffer.alloc(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      throw new CollateralFetchError('too-large', req.url, `${req.what}: response from ${req.url} exceeds the ${max}-byte limit`, res.status);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks);
}

const isAbort = (err: unknown): boolean => err instanceof Error && (err.name === 'AbortError' || err.name === 'TimeoutError');

/**
 * Perform one logical request. Returns only 2xx responses; everything else is a CollateralFetchError
 * (404: not-found; 429 past the deadline or the Retry-After cap: rate-limited; other 4xx: http).
 */
export async function httpRequest(req: HttpRequest, opts: HttpOptions = {}): Promise<HttpResponse> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const retries = Math.max(0, Math.floor(opts.retries ?? 3));
  const base = opts.backoffBaseMs ?? 500;
  const cap = opts.backoffMaxMs ?? 8_000;
  const maxRetryAfter = opts.maxRetryAfterMs ?? 30_000;
  const maxBytes = opts.maxBytes ?? 1024 * 1024;
  const started = Date.now();
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = opts.signal ? AbortSignal.any([deadline, opts.signal]) : deadline;
  const remaining = () => timeoutMs - (Date.now() - started);
  const timeoutError = (cause?: unknown) =>
    opts.signal?.aborted
      ? new CollateralFetchError('network', req.url, `${req.what}: request to ${req.url} was cancelled`, undefined, { cause })
      : new CollateralFetchError(
          'timeout',
          req.url,
          `${req.what}: no complete answer from ${req.url} within ${timeoutMs} ms; check network access to it, ${IMPORT_HINT}`,
          undefined,
          { cause },
        );

  let lastProblem = '';
  for (let attempt = 0; ; attempt++) {
    let res: Response;
    try {
      res = await fetch(req.url, {
        method: req.method ?? 'GET',
        headers: req.headers,
        ...(req.body ? { body: req.body } : {}),
        signal,
        redirect: 'follow',
      });
    } catch (err) {
      if (isAbort(err) || signal.aborted) throw timeoutError(err);
      lastProblem = `network error: ${(err as Error).message}${(err as { cause?: { code?: string } }).cause?.code ? ` (${(err as { cause: { code: string } }).cause.code})` : ''}`;
      if (attempt >= retries)
        throw new CollateralFetchError(
          'network',
          req.url,
          `${req.what}: ${lastProblem} from ${req.url} after ${attempt + 1} attempt(s); ${IMPORT_HINT}`,
          undefined,
          { cause: err },
        );
      await backoff(attempt);
      continue;
    }

    if (res.status >= 200 && res.status < 300) {
      try {
        return { status: res.status, headers: res.headers, body: await readLimited(res, maxBytes, req), attempts: attempt + 1 };
      } catch (err) {
        if (err instanceof CollateralFetchError) throw err;
        if (isAbort(err) || signal.aborted) throw timeoutError(err);
        throw new CollateralFetchError('network', req.url, `${req.what}: reading the response from ${req.url} failed: ${(err as Error).message}`, res.status, {
          cause: err,
        });
      }
    }
    await res.body?.cancel().catch(() => undefined);

    if (res.status === 404) {
      throw new CollateralFetchError('not-found', req.url, `${req.what}: not found at ${req.url} (HTTP 404); check the identifiers, ${IMPORT_HINT}`, 404);
    }
    if (res.status === 429) {
      const wait = parseRetryAfter(res.headers.get('retry-after'));
      const waitMs = wait ?? backoffDelay(attempt);
      const tooLong = waitMs > maxRetryAfter || waitMs >= remaining();
      if (attempt >= retries || tooLong) {
        const after = wait !== undefined ? `; the server asks to retry after ${Math.ceil(wait / 1000)} s` : '';
        throw new CollateralFetchError('rate-limited', req.url, `${req.what}: rate-limited by ${req.url} (HTTP 429)${after}; retry later, ${IMPORT_HINT}`, 429);
      }
      await sleep(waitMs, signal).catch((err: unknown) => {
        throw timeoutError(err);
      });
      continue;
    }
    if (res.status >= 500 && attempt < retries) {
      lastProblem = `HTTP ${res.status}`;
      await backoff(attempt);
      continue;
    }
    throw new CollateralFetchError(
      'http',
      req.url,
      `${req.what}: ${req.url} answered HTTP ${res.status} ${res.statusText}`.trimEnd() + `; ${IMPORT_HINT}`,
      res.status,
    );
  }

  function backoffDelay(attempt: number): number {
    return Math.floor(Math.random() * Math.min(cap, base * 2 ** attempt));
  }
  async function backoff(attempt: number): Promise<void> {
    const ms = backoffDelay(attempt);
    if (ms >= remaining()) throw timeoutError();
    await sleep(ms, signal).catch((err: unknown) => {
      throw timeoutError(err);
    });
  }
}

/** Join a base URL and a path without losing the base's own path (tests point bases at loopback). */
export function joinUrl(base: string, path: string): string {
  const u = new URL(base);
  if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new CollateralError(`collateral base URL must be http(s): ${base}`);
  return `${u.origin}${u.pathname.replace(/\/+$/, '')}/${path.replace(/^\/+/, '')}`;
}
