import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CvmError } from '../../../agent/errors.js';
import {
  CLOSE,
  MAX_MESSAGE_BYTES,
  PROTOCOL,
  PROTOCOL_VERSION,
  decodeMessage,
  encodeMessage,
  negotiateVersion,
  validateMessage,
  type AgentMessage,
  type ControllerMessage,
} from '../../../agent/link/protocol.js';
import { AGENT_SCHEMAS, CONTROLLER_SCHEMAS, renderSchemasMarkdown } from '../../../agent/link/schemas.js';
import { validate } from '../../../agent/link/json-schema.js';
import { backoffCeiling, backoffDelay } from '../../../agent/link/backoff.js';
import { FC_RUNS, repoRoot } from '../../helpers/paths.js';

const jwk = { kty: 'EC', crv: 'P-384', x: 'A'.repeat(64), y: 'B'.repeat(64) };
const jws = 'eyJhbGciOiJFUzM4NCJ9.eyJhIjoxfQ.c2ln';
const jwe = 'eyJhbGciOiJFQ0RILUVTK0EyNTZLVyJ9.a2V5.aXY.Y3Q.dGFn';

const goodAgent: AgentMessage[] = [
  {
    type: 'hello',
    agentId: 'vm-1',
    version: '0.1.0',
    protocol: { min: 1, max: 1 },
    teePubKey: jwk,
    inventory: { tee: 'snp' },
    capabilities: ['events'],
    resumeFrom: 1,
  },
  { type: 'hello', agentId: 'vm-1', version: '0.1.0', protocol: [1, 2], teePubKey: jwk, inventory: {}, capabilities: [], resumeFrom: 42 },
  {
    type: 'evidence',
    challengeId: 'c-1',
    bundle: { version: 1, agentId: 'vm-1', nonce: '00'.repeat(32), teePubKey: jwk, simulated: true, cpu: {}, gpus: [] },
    localResult: { 'ear.status': 'affirming' },
    proof: jws,
  },
  {
    type: 'evidence',
    challengeId: 'c-2',
    bundle: { version: 1, agentId: 'vm-1', nonce: '00'.repeat(32), teePubKey: jwk, simulated: true, cpu: {}, gpus: [], switches: [{ index: 0 }] },
    localResult: {},
    proof: jws,
  },
  { type: 'event', seq: 1, at: '2025-06-01T12:00:00.000Z', kind: 'status', data: { up: true }, sig: jws },
  { type: 'error', code: 'attestation-failed', message: 'no /dev/sev-guest', challengeId: 'c-1' },
];
const goodController: ControllerMessage[] = [
  { type: 'welcome', protocol: 1, heartbeatSec: 30 },
  { type: 'welcome', protocol: 1, heartbeatSec: 30, attestIntervalSec: 600, resumeFrom: 7 },
  { type: 'welcome', protocol: 1, heartbeatSec: 30, tokenKeys: { keys: [{ ...jwk, kid: 'k1', alg: 'ES384', use: 'sig' }] } },
  { type: 'challenge', id: 'c-1', nonce: 'ab'.repeat(32), expiresAt: '2025-06-01T12:05:00Z' },
  { type: 'attest' },
  { type: 'verdict', challengeId: 'c-1', token: jws, secrets: [{ name: 'model-key', jwe }] },
  { type: 'ack', seq: 0 },
  { type: 'error', code: 'bad-evidence', message: 'signature' },
];

describe('link protocol constants', () => {
  it('names the subprotocol and version of docs/protocol.md', () => {
    expect(PROTOCOL).toBe('cvm-agent.v1');
    expect(PROTOCOL_VERSION).toBe(1);
    expect(MAX_MESSAGE_BYTES).toBe(1 << 20);
    expect(CLOSE.VERSION_MISMATCH).toBe(4001);
  });
});

describe('validateMessage', () => {
  it.each(goodAgent.map((m) => [m.type, m] as const))('accepts a valid agent %s', (_t, m) => {
    expect(validateMessage('agent->controller', m)).toEqual({ ok: true, message: m });
    expect(JSON.parse(encodeMessage('agent->controller', m))).toEqual(m);
  });
  it.each(goodController.map((m) => [m.type, m] as const))('accepts a valid controller %s', (_t, m) => {
    expect(validateMessage('controller->agent', m).ok).toBe(true);
  });

  const bad: Array<[string, 'agent->controller' | 'controller->agent', unknown, RegExp]> = [
    ['array', 'controller->agent', [], /must be a JSON object/],
    ['missing type', 'controller->agent', { seq: 1 }, /\/type/],
    ['string heartbeat', 'controller->agent', { type: 'welcome', protocol: 1, heartbeatSec: '30' }, /heartbeatSec: must be integer/],
    ['fractional seq', 'controller->agent', { type: 'ack', seq: 1.5 }, /seq: must be integer/],
    ['negative seq', 'controller->agent', { type: 'ack', seq: -1 }, /seq: must be >= 0/],
    ['uppercase nonce', 'controller->agent', { type: 'challenge', id: 'c', nonce: 'AB'.repeat(16), expiresAt: '2025-06-01T12:05:00Z' }, /nonce: must match/],
    ['short nonce', 'controller->agent', { type: 'challenge', id: 'c', nonce: 'ab', expiresAt: '2025-06-01T12:05:00Z' }, /nonce: must match/],
    ['bad expiresAt', 'controller->agent', { type: 'challenge', id: 'c', nonce: 'ab'.repeat(16), expiresAt: 'tomorrow' }, /expiresAt/],
    ['extra member', 'controller->agent', { type: 'attest', now: true }, /\/now: unknown member/],
    ['jwe with 3 parts', 'controller->agent', { type: 'verdict', challengeId: 'c', token: jws, secrets: [{ name: 'k', jwe: jws }] }, /jwe: must match/],
    ['secret name with slash', 'controller->agent', { type: 'verdict', challengeId: 'c', token: jws, secrets: [{ name: '../k', jwe }] }, /name: must match/],
    ['private JWK in hello', 'agent->controller', { ...goodAgent[0], teePubKey: { ...jwk, d: 'x' } }, /teePubKey\/d: unknown member/],
    ['protocol offer of strings', 'agent->controller', { ...goodAgent[0], protocol: ['1'] }, /protocol: matches no alternative/],
    ['unknown event kind', 'agent->controller', { ...goodAgent[4], kind: 'reboot' }, /kind: must be one of/],
    ['event seq 0', 'agent->controller', { ...goodAgent[4], seq: 0 }, /seq: must be >= 1/],
    [
      'empty switches (absent when none)',
      'agent->controller',
      { ...goodAgent[2], bundle: { ...(goodAgent[2] as any).bundle, switches: [] } },
      /switches: must have at least 1 items/,
    ],
  ];
  it.each(bad)('rejects %s', (_n, dir, v, re) => {
    const r = validateMessage(dir, v);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error).toMatch(re);
      expect(r.unknown).toBeUndefined();
    }
  });

  it('marks an unknown type as unknown (callers log and ignore), per direction', () => {
    expect(validateMessage('controller->agent', { type: 'reboot' })).toMatchObject({ ok: false, unknown: true, type: 'reboot' });
    // hello is an agent message: from the controller it is unknown, not valid.
    expect(validateMessage('controller->agent', goodAgent[0])).toMatchObject({ ok: false, unknown: true });
    expect(validateMessage('agent->controller', { type: '__proto__' })).toMatchObject({ ok: false, unknown: true });
    expect(validateMessage('agent->controller', { type: 'toString' })).toMatchObject({ ok: false, unknown: true });
  });

  it('encodeMessage refuses to put an invalid message on the wire', () => {
    expect(() => encodeMessage('controller->agent', { type: 'ack', seq: -4 })).toThrow(CvmError);
  });
});

describe('decodeMessage', () => {
  it('decodes strings, Buffers, fragments and ArrayBuffers', () => {
    const text = JSON.stringify(goodController[2]);
    const buf = Buffer.from(text);
    for (const raw of [text, buf, [buf.subarray(0, 5), buf.subarray(5)], buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.length)]) {
      expect(decodeMessage(raw as never, 'controller->agent')).toEqual({ ok: true, message: goodController[2] });
    }
  });
  it('rejects oversized, non-JSON and invalid UTF-8 input without throwing', () => {
    const big = JSON.stringify({ type: 'error', code: 'x', message: 'a'.repeat(MAX_MESSAGE_BYTES) });
    expect(decodeMessage(big, 'controller->agent')).toMatchObject({ ok: false, error: expect.stringMatching(/larger than/) });
    expect(decodeMessage(Buffer.from(big), 'controller->agent')).toMatchObject({ ok: false, error: expect.stringMatching(/larger than/) });
    expect(decodeMessage('{"type":', 'controller->agent')).toMatchObject({ ok: false, error: expect.stringMatching(/not JSON/) });
    expect(decodeMessage(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]), 'controller->agent')).toMatchObject({ ok: false, error: expect.stringMatching(/undecodable/) });
    // Multi-byte characters count as bytes, not characters.
    const wide = JSON.stringify({ type: 'error', code: 'x', message: '€'.repeat(400_000) });
    expect(wide.length).toBeLessThan(MAX_MESSAGE_BYTES);
    expect(decodeMessage(wide, 'controller->agent')).toMatchObject({ ok: false, error: expect.stringMatching(/larger than/) });
  });

  it('never throws on arbitrary strings (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 300 }), fc.constantFrom('agent->controller', 'controller->agent'), (s, dir) => {
        const r = decodeMessage(s, dir as 'agent->controller');
        expect(typeof r.ok).toBe('boolean');
      }),
      { numRuns: FC_RUNS },
    );
  });
  it('never throws on arbitrary bytes (property)', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        expect(typeof decodeMessage(Buffer.from(b), 'controller->agent').ok).toBe('boolean');
      }),
      { numRuns: FC_RUNS },
    );
  });
  it('never throws on arbitrary JSON shaped like messages (property)', () => {
    const types = fc.constantFrom('hello', 'welcome', 'challenge', 'attest', 'verdict', 'ack', 'error', 'event', 'evidence', 'x');
    const doc = fc
      .record({ type: types }, { requiredKeys: [] })
      .chain((base) =>
        fc
          .dictionary(
            fc.constantFrom('seq', 'id', 'nonce', 'expiresAt', 'protocol', 'heartbeatSec', 'secrets', 'token', 'challengeId', 'data', 'kind', 'teePubKey'),
            fc.jsonValue({ maxDepth: 3 }),
            { maxKeys: 6 },
          )
          .map((extra) => ({ ...extra, ...base })),
      );
    fc.assert(
      fc.property(doc, fc.constantFrom('agent->controller', 'controller->agent'), (d, dir) => {
        const r = decodeMessage(JSON.stringify(d), dir as 'controller->agent');
        if (r.ok) expect(validateMessage(dir as 'controller->agent', r.message).ok).toBe(true);
      }),
      { numRuns: FC_RUNS },
    );
  });
  it('handles deeply nested JSON without throwing', () => {
    const deep = `{"type":"error","code":"x","message":"m","challengeId":${'['.repeat(50_000)}${']'.repeat(50_000)}}`;
    expect(decodeMessage(deep, 'controller->agent').ok).toBe(false);
  });
});

describe('version negotiation', () => {
  it('picks the highest common version from a range or a list', () => {
    expect(negotiateVersion({ min: 1, max: 1 })).toBe(1);
    expect(negotiateVersion([1, 2, 3], { min: 1, max: 2 })).toBe(2);
    expect(negotiateVersion({ min: 2, max: 5 }, [1, 3, 4, 9])).toBe(4);
    expect(negotiateVersion({ min: 2, max: 3 }, { min: 1, max: 1 })).toBeUndefined();
    expect(negotiateVersion([], { min: 1, max: 1 })).toBeUndefined();
  });
});

describe('schemas', () => {
  it('every schema is a draft 2020-12 object with a const type', () => {
    for (const [t, s] of [...Object.entries(AGENT_SCHEMAS), ...Object.entries(CONTROLLER_SCHEMAS)]) {
      expect(s.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
      expect(s.properties?.type).toEqual({ const: t });
      expect(s.additionalProperties).toBe(false);
    }
  });
  it('docs/protocol.md carries the current schemas verbatim', () => {
    const doc = readFileSync(join(repoRoot, 'docs', 'protocol.md'), 'utf8');
    const m = /<!-- schemas:begin -->\n([\s\S]*)<!-- schemas:end -->/.exec(doc);
    expect(m, 'schema markers in docs/protocol.md').not.toBeNull();
    expect(m![1]).toBe(renderSchemasMarkdown());
  });
  it('the interpreter reports JSON pointers with escaped members', () => {
    expect(validate({ type: 'object', additionalProperties: false }, { 'a/b~c': 1 })).toBe('/a~1b~0c: unknown member');
  });
});

describe('backoff', () => {
  it('full jitter stays within [0, min(cap, base*2^attempt)) for any attempt and random (property)', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: -5, max: 5000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        (attempt, r, baseMs, capMs) => {
          const d = backoffDelay(attempt, { baseMs, capMs }, () => r);
          const ceiling = Math.min(capMs, baseMs * 2 ** Math.max(0, attempt));
          expect(Number.isInteger(d)).toBe(true);
          expect(d).toBeGreaterThanOrEqual(0);
          expect(d).toBeLessThan(ceiling);
          expect(d).toBeLessThanOrEqual(capMs);
        },
      ),
      { numRuns: FC_RUNS },
    );
  });
  it('grows exponentially up to the cap and survives a broken random source', () => {
    expect([0, 1, 2, 3, 10, 100, 1e9].map((a) => backoffCeiling(a, { baseMs: 1000, capMs: 60_000 }))).toEqual([1000, 2000, 4000, 8000, 60_000, 60_000, 60_000]);
    expect(backoffDelay(3, { baseMs: 1000, capMs: 60_000 }, () => 0.999999)).toBe(7999);
    expect(backoffDelay(3, { baseMs: 1000, capMs: 60_000 }, () => Number.NaN)).toBe(4000);
    expect(backoffDelay(3, { baseMs: 1000, capMs: 60_000 }, () => 7)).toBe(4000);
  });
});
