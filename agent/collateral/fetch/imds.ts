/**
 * Azure IMDS THIM certification endpoint (Azure cvm-guest-attestation.md; az-cvm-vtpm az-snp-vtpm/src/imds.rs): on Azure CVMs the host caches the
 * VCEK and ASK/ARK; `GET http://169.254.169.254/metadata/THIM/amd/certification` with `Metadata: true`
 * returns JSON {vcekCert: PEM, certificateChain: PEM (ASK+ARK), tcbm}. classify() understands the body.
 */
import { ParseError } from '../../errors.js';
import type { Fetched } from '../store.js';
import { httpRequest, joinUrl, type HttpOptions } from './http.js';

export const IMDS_BASE_URL = 'http://169.254.169.254';
export const IMDS_CERTIFICATION_PATH = '/metadata/THIM/amd/certification';

export interface ImdsOptions extends HttpOptions {
  baseUrl?: string;
}

export interface ImdsCertification {
  vcekCert: string;
  certificateChain: string;
  tcbm?: string;
}

export function parseImdsCertification(body: Uint8Array): ImdsCertification {
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(body).toString('utf8'));
  } catch (err) {
    throw new ParseError(`IMDS certification: invalid JSON: ${(err as Error).message}`);
  }
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  if (typeof o.vcekCert !== 'string' || typeof o.certificateChain !== 'string')
    throw new ParseError('IMDS certification: JSON lacks vcekCert/certificateChain strings');
  return { vcekCert: o.vcekCert, certificateChain: o.certificateChain, ...(typeof o.tcbm === 'string' ? { tcbm: o.tcbm } : {}) };
}

/** Fetch the IMDS certification JSON (checked for shape; the store classifies VCEK, ASK and ARK from it). */
export async function fetchImdsCertification(opts: ImdsOptions = {}): Promise<Fetched> {
  const url = joinUrl(opts.baseUrl ?? IMDS_BASE_URL, IMDS_CERTIFICATION_PATH);
  // IMDS is link-local and quick; a short default deadline keeps non-Azure machines from waiting.
  const res = await httpRequest(
    { url, what: 'Azure IMDS VCEK certification', headers: { Metadata: 'true' } },
    { timeoutMs: 5_000, maxBytes: 256 * 1024, ...opts },
  );
  parseImdsCertification(res.body);
  return { bytes: res.body, source: url };
}
