/**
 * The evidence bundle: everything a verifier needs to recompute the binding and check every device,
 * as one JSON document (GET /v1/evidence, POST /v1/attest, the controller link). Binary fields are
 * base64. `parseBundle` treats its input as hostile: size-limited, every field type-checked.
 */
import { ParseError } from '../errors.js';
import { AGENT_ID, type PublicJwk } from './nonce-binding.js';
import { nonceFromHex, WIRE_NONCE } from '../util/nonce-hex.js';
import { jsonReader } from '../util/json-fields.js';
import {
  gpuEntryFromJson,
  gpuEntryToJson,
  switchEntryFromJson,
  switchEntryToJson,
  type GpuBundleEntry,
  type SwitchBundleEntry,
} from './gpu-evidence-record.js';

export type { GpuBundleEntry, SwitchBundleEntry };

export const BUNDLE_VERSION = 1;
export const MAX_BUNDLE_BYTES = 4 * 1024 * 1024;

export interface CpuEvidence {
  /** Evidence format: a bare SNP report (+ VCEK/VLEK), or Azure's HCL report + vTPM quote. */
  kind: 'snp' | 'azure-snp-vtpm';
  /** Where it came from. */
  source: 'sev-guest' | 'configfs-tsm' | 'azure-vtpm' | 'simulated';
  /** SNP: the 1184-byte report. Azure: the HCL report. */
  report: Buffer;
  /** DER certificates (VCEK/VLEK, optionally ASK/ARK) when the platform supplied them. */
  certificates: Buffer[];
  /** Azure: the vTPM quote {message, signature, pcrs}. */
  quote?: { message: Buffer; signature: Buffer; pcrs: Buffer[] };
}

export interface EvidenceBundle {
  version: typeof BUNDLE_VERSION;
  /** The agent id bound into the reports with the nonce and the key (agent/formats/nonce-binding.ts). */
  agentId: string;
  nonce: Buffer;
  teePubKey: PublicJwk;
  simulated: boolean;
  cpu: CpuEvidence;
  gpus: GpuBundleEntry[];
  /** NVSwitch (LS10) evidence of a protected-PCIe system; absent (never empty) when there is none. */
  switches?: SwitchBundleEntry[];
}

const b64 = (b: Uint8Array) => Buffer.from(b).toString('base64');

export function bundleToJson(b: EvidenceBundle): Record<string, unknown> {
  return {
    version: b.version,
    agentId: b.agentId,
    nonce: b.nonce.toString('hex'),
    teePubKey: b.teePubKey,
    simulated: b.simulated,
    cpu: {
      kind: b.cpu.kind,
      source: b.cpu.source,
      report: b64(b.cpu.report),
      certificates: b.cpu.certificates.map(b64),
      ...(b.cpu.quote ? { quote: { message: b64(b.cpu.quote.message), signature: b64(b.cpu.quote.signature), pcrs: b.cpu.quote.pcrs.map(b64) } } : {}),
    },
    gpus: b.gpus.map(gpuEntryToJson),
    ...(b.switches && b.switches.length > 0 ? { switches: b.switches.map(switchEntryToJson) } : {}),
  };
}

function fail(path: string, what: string): never {
  throw new ParseError(`evidence bundle: ${path} ${what}`);
}
const read = jsonReader(fail, {
  object: 'must be an object',
  string: 'must be a string',
  array: (max) => `must be an array of at most ${max}`,
  unexpectedKey: () => 'has an unexpected key',
});
const obj = (v: unknown, path: string): Record<string, unknown> => read.obj(v, path);
const str = (v: unknown, path: string, max = 1 << 22): string => read.str(v, path, max);
const BASE64_TEXT = /^[A-Za-z0-9+/]*={0,2}$/;
function base64(v: unknown, path: string): Buffer {
  const s = str(v, path);
  const bytes = Buffer.from(s, 'base64');
  // Canonical padded base64 (what bundleToJson writes) is the text its bytes encode back to: that
  // implies the pattern, at a quarter of its cost on a GPU report; anything else is judged by the pattern.
  if (bytes.toString('base64') !== s && !BASE64_TEXT.test(s)) fail(path, 'must be base64');
  return bytes;
}
const arr = (v: unknown, path: string, max: number): unknown[] => read.arr(v, path, max);

export function parseBundle(input: string | Buffer | unknown): EvidenceBundle {
  let doc: unknown = input;
  if (typeof input === 'string' || Buffer.isBuffer(input)) {
    if (input.length > MAX_BUNDLE_BYTES) throw new ParseError(`evidence bundle larger than ${MAX_BUNDLE_BYTES} bytes`);
    try {
      doc = JSON.parse(input.toString());
    } catch (err) {
      throw new ParseError(`evidence bundle is not valid JSON: ${(err as Error).message}`);
    }
  }
  const o = obj(doc, '(top)');
  if (o.version !== BUNDLE_VERSION) fail('version', `must be ${BUNDLE_VERSION}`);
  const agentId = str(o.agentId, 'agentId', 128);
  if (!AGENT_ID.test(agentId)) fail('agentId', 'must be 1..128 of letters, digits, ".", "_", ":", "@", "-"');
  const nonceHex = str(o.nonce, 'nonce', 256);
  if (!nonceFromHex(nonceHex, { ...WIRE_NONCE, lowercase: true })) fail('nonce', 'must be 8..64 bytes of lowercase hex');
  const jwk = obj(o.teePubKey, 'teePubKey');
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-384' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string') fail('teePubKey', 'must be an EC P-384 public JWK');
  if ('d' in jwk) fail('teePubKey', 'must not contain private key material');
  if (typeof o.simulated !== 'boolean') fail('simulated', 'must be a boolean');
  const c = obj(o.cpu, 'cpu');
  if (c.kind !== 'snp' && c.kind !== 'azure-snp-vtpm') fail('cpu.kind', 'must be "snp" or "azure-snp-vtpm"');
  if (!['sev-guest', 'configfs-tsm', 'azure-vtpm', 'simulated'].includes(c.source as string)) fail('cpu.source', 'is not a known source');
  const cpu: CpuEvidence = {
    kind: c.kind,
    source: c.source as CpuEvidence['source'],
    report: base64(c.report, 'cpu.report'),
    certificates: arr(c.certificates ?? [], 'cpu.certificates', 8).map((x, i) => base64(x, `cpu.certificates[${i}]`)),
  };
  if (c.quote !== undefined) {
    const q = obj(c.quote, 'cpu.quote');
    cpu.quote = {
      message: base64(q.message, 'cpu.quote.message'),
      signature: base64(q.signature, 'cpu.quote.signature'),
      pcrs: arr(q.pcrs, 'cpu.quote.pcrs', 24).map((x, i) => base64(x, `cpu.quote.pcrs[${i}]`)),
    };
  }
  const gpus = arr(o.gpus, 'gpus', 64).map((g, i) => gpuEntryFromJson(g, i, { fail, obj, str, base64 }));
  const indices = gpus.map((g) => g.index);
  if (new Set(indices).size !== indices.length) fail('gpus', 'has duplicate indices');
  const switches = o.switches === undefined ? [] : arr(o.switches, 'switches', 64).map((s, i) => switchEntryFromJson(s, i, { fail, obj, str, base64 }));
  if (new Set(switches.map((s) => s.index)).size !== switches.length) fail('switches', 'has duplicate indices');
  return {
    version: BUNDLE_VERSION,
    agentId,
    nonce: Buffer.from(nonceHex, 'hex'),
    teePubKey: jwk as PublicJwk,
    simulated: o.simulated,
    cpu,
    gpus: gpus.sort((a, b) => a.index - b.index),
    ...(switches.length > 0 ? { switches: switches.sort((a, b) => a.index - b.index) } : {}),
  };
}
