/**
 * NVIDIA RIM service (nvtrust cc_admin_utils.py fetch_rim_file; attestation-sdk rim.h): `GET {base}/v1/rim/<id>` returns JSON whose `rim`
 * field is base64 of the RIM XML; optional `Authorization: Bearer <service key>`. A 404 is the common
 * "RIM not published yet" case (e.g. nvtrust#66, #151) and says so.
 */
import { ParseError } from '../../errors.js';
import { checkRimId } from '../keys.js';
import type { Fetched } from '../store.js';
import { CollateralFetchError, httpRequest, joinUrl, type HttpOptions } from './http.js';

export const RIM_SERVICE_BASE_URL = 'https://rim.attestation.nvidia.com';

export interface RimServiceOptions extends HttpOptions {
  baseUrl?: string;
  serviceKey?: string;
}

/** Returns the RIM XML bytes (decoded from the JSON) for `id`. */
export async function fetchRim(id: string, opts: RimServiceOptions = {}): Promise<Fetched> {
  const rimId = checkRimId(id);
  const url = joinUrl(opts.baseUrl ?? RIM_SERVICE_BASE_URL, `/v1/rim/${encodeURIComponent(rimId)}`);
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (opts.serviceKey) headers.Authorization = `Bearer ${opts.serviceKey}`;
  let res;
  try {
    res = await httpRequest({ url, what: `RIM ${rimId}`, headers }, { maxBytes: 2 * 1024 * 1024, ...opts });
  } catch (err) {
    if (err instanceof CollateralFetchError && err.reason === 'not-found') {
      throw new CollateralFetchError(
        'not-found',
        url,
        `RIM ${rimId} is not published by the RIM service at ${url} (HTTP 404), a known lag for new drivers and VBIOS versions; obtain the RIM file and import it with "cvm-agent collateral import FILE"`,
        404,
        { cause: err },
      );
    }
    throw err;
  }
  let v: unknown;
  try {
    v = JSON.parse(res.body.toString('utf8'));
  } catch (err) {
    throw new ParseError(`RIM service answer for ${rimId} is not JSON: ${(err as Error).message}`);
  }
  const rim = (v as { rim?: unknown } | null)?.rim;
  if (typeof rim !== 'string') throw new ParseError(`RIM service answer for ${rimId} has no "rim" string`);
  const b64 = rim.replace(/\s+/g, '');
  if (b64.length === 0 || b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64))
    throw new ParseError(`RIM service answer for ${rimId}: "rim" is not base64`);
  return { bytes: Buffer.from(b64, 'base64'), source: url, hint: { rimId } };
}
