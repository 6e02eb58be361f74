/**
 * JSON Schemas (draft 2020-12 keywords) for every controller-link message, one per `type` and direction.
 * They are data, interpreted by ./json-schema.ts, and rendered verbatim into docs/protocol.md
 * (a test fails when the document drifts). Members not listed are rejected (additionalProperties:
 * false): protocol evolution goes through version negotiation, not through silently ignored fields.
 * Free-form payloads (inventory, event data, the bundle's inner fields, the EAR) are bounded here by
 * the message size; their owners (parseBundle, the EAR consumer) check them in depth.
 */
import type { Schema } from './json-schema.js';
import { assertSupported } from './json-schema.js';
import { NONCE_HEX_PATTERN } from '../util/nonce-hex.js';

const SCHEMA_URI = 'https://json-schema.org/draft/2020-12/schema';
const ID_BASE = 'urn:cvm-agent:link:v1:';

/** Identifiers chosen by either side (agent id, challenge id, secret name). */
const ident = (max: number): Schema => ({ type: 'string', minLength: 1, maxLength: max, pattern: '^[A-Za-z0-9._:@-]+$' });
const seq: Schema = { type: 'integer', minimum: 1, maximum: Number.MAX_SAFE_INTEGER };
/** RFC 3339 date-time in UTC or with an offset (what Date.prototype.toISOString produces, and more). */
const dateTime: Schema = {
  type: 'string',
  maxLength: 40,
  pattern: '^\\d{4}-\\d{2}-\\d{2}T\\d{2}:\\d{2}:\\d{2}(\\.\\d{1,9})?(Z|[+-]\\d{2}:\\d{2})$',
};
const b64url = '[A-Za-z0-9_-]';
/** Compact JWS (header.payload.signature); the payload may be empty (detached). */
const compactJws = (max: number): Schema => ({ type: 'string', maxLength: max, pattern: `^${b64url}+\\.${b64url}*\\.${b64url}+$` });
/** Compact JWE: five segments; ECDH-ES+A256KW has a non-empty encrypted key. */
const compactJwe: Schema = { type: 'string', maxLength: 256 * 1024, pattern: `^${b64url}+\\.${b64url}+\\.${b64url}+\\.${b64url}+\\.${b64url}+$` };
const freeObject = (description: string, maxProperties = 256): Schema => ({ type: 'object', maxProperties, description });

const protocolVersion: Schema = { type: 'integer', minimum: 1, maximum: 65535 };

const publicJwk = (description: string): Schema => ({
  type: 'object',
  description,
  required: ['kty', 'crv', 'x', 'y'],
  properties: {
    kty: { const: 'EC' },
    crv: { const: 'P-384' },
    x: { type: 'string', minLength: 64, maxLength: 64, pattern: `^${b64url}+$` },
    y: { type: 'string', minLength: 64, maxLength: 64, pattern: `^${b64url}+$` },
    kid: { type: 'string', maxLength: 128 },
    alg: { type: 'string', maxLength: 32 },
    use: { type: 'string', maxLength: 16 },
  },
  additionalProperties: false,
});
const agentKey = publicJwk('The agent key (teePubKey): EC P-384 public JWK; private members are rejected.');

function message(type: string, description: string, properties: Record<string, Schema>, required: string[]): Schema {
  return {
    $schema: SCHEMA_URI,
    $id: `${ID_BASE}${type}`,
    title: type,
    description,
    type: 'object',
    required: ['type', ...required],
    properties: { type: { const: type }, ...properties },
    additionalProperties: false,
  };
}

export const EVENT_KINDS = ['status', 'attestation', 'gpu-ready', 'error', 'dropped'] as const;

/** `error`, the same shape in both directions: a stable code, a message, and the challenge it concerns. */
function errorMessage(description: string): Schema {
  return message(
    'error',
    description,
    {
      code: { type: 'string', minLength: 1, maxLength: 64, pattern: '^[a-z0-9-]+$' },
      message: { type: 'string', maxLength: 4096 },
      challengeId: ident(128),
    },
    ['code', 'message'],
  );
}

/** agent -> controller */
export const AGENT_SCHEMAS = {
  hello: message(
    'hello',
    'First message after the WebSocket opens. `protocol` offers a range or a list of versions; `resumeFrom` is the first event seq the agent still holds unacknowledged.',
    {
      agentId: ident(256),
      version: { type: 'string', minLength: 1, maxLength: 64, description: 'agent software version' },
      protocol: {
        anyOf: [
          {
            type: 'object',
            required: ['min', 'max'],
            properties: { min: protocolVersion, max: protocolVersion },
            additionalProperties: false,
          },
          { type: 'array', minItems: 1, maxItems: 32, items: protocolVersion },
        ],
      },
      teePubKey: agentKey,
      inventory: freeObject('TEE kind, CPU, GPUs (index, arch, driver), host name: for display and policy selection'),
      capabilities: { type: 'array', maxItems: 64, items: { type: 'string', minLength: 1, maxLength: 64 } },
      resumeFrom: seq,
    },
    ['agentId', 'version', 'protocol', 'teePubKey', 'inventory', 'capabilities', 'resumeFrom'],
  ),
  evidence: message(
    'evidence',
    "Answer to a challenge: the evidence bundle bound to the challenge nonce and the agent id (agent/formats/evidence-bundle.ts), the agent's own EAR, and `proof`: a compact ES384 JWS by the bundle's teePubKey (typ cvm-evidence-proof+jws) over JCS({agentId, challengeId, nonce}) (agent/link/proof.ts).",
    {
      challengeId: ident(128),
      bundle: {
        type: 'object',
        description: 'bundleToJson(EvidenceBundle); parse and check with parseBundle()',
        required: ['version', 'agentId', 'nonce', 'teePubKey', 'simulated', 'cpu', 'gpus'],
        properties: {
          version: { const: 1 },
          agentId: ident(128),
          nonce: { type: 'string', pattern: NONCE_HEX_PATTERN },
          teePubKey: agentKey,
          simulated: { type: 'boolean' },
          cpu: { type: 'object' },
          gpus: { type: 'array', maxItems: 64 },
          switches: { type: 'array', minItems: 1, maxItems: 64, description: 'NVSwitch evidence of a protected-PCIe system; absent when there is none' },
        },
        additionalProperties: false,
      },
      localResult: freeObject('EAR (agent/appraise/ear.ts) as computed by the agent; advisory only'),
      proof: compactJws(4096),
    },
    ['challengeId', 'bundle', 'localResult', 'proof'],
  ),
  event: message(
    'event',
    'A signed event. `seq` is gap-free from 1 per agent; `sig` is a compact ES384 JWS whose payload is JCS({seq, at, kind, data}).',
    {
      seq,
      at: dateTime,
      kind: { enum: EVENT_KINDS },
      data: freeObject('kind-specific; for "dropped": {from, to, count, reason?}'),
      sig: compactJws(16 * 1024 + 2 * 1024 * 1024),
    },
    ['seq', 'at', 'kind', 'data', 'sig'],
  ),
  error: errorMessage('The agent could not serve a request (e.g. a challenge): stable code, human-readable message.'),
} satisfies Record<string, Schema>;

/** controller -> agent */
export const CONTROLLER_SCHEMAS = {
  welcome: message(
    'welcome',
    'Answer to hello: the chosen protocol version, the heartbeat, the attestation interval, optionally the first event seq the controller wants (resend from there), the event window (flow control), and optionally the JWKS of the keys that sign its tokens (the agent trusts it only over wss:// with a pinned CA or SPKI).',
    {
      protocol: protocolVersion,
      heartbeatSec: { type: 'integer', minimum: 1, maximum: 3600 },
      attestIntervalSec: { type: 'integer', minimum: 1, maximum: 7 * 86400 },
      resumeFrom: seq,
      window: { type: 'integer', minimum: 1, maximum: 65535, description: 'flow control: at most this many event messages unacknowledged on the connection' },
      windowBytes: {
        type: 'integer',
        minimum: 1024 * 1024,
        maximum: 1024 * 1024 * 1024,
        description: 'flow control: at most this many bytes of unacknowledged event messages (one event is always allowed)',
      },
      tokenKeys: {
        type: 'object',
        required: ['keys'],
        properties: { keys: { type: 'array', minItems: 1, maxItems: 8, items: publicJwk('A controller token signing key: EC P-384 public JWK (ES384).') } },
        additionalProperties: false,
      },
    },
    ['protocol', 'heartbeatSec'],
  ),
  challenge: message(
    'challenge',
    'Run an attestation cycle bound to `nonce` (lowercase hex, 8..64 bytes) and answer with evidence before `expiresAt`.',
    {
      id: ident(128),
      nonce: { type: 'string', pattern: NONCE_HEX_PATTERN },
      expiresAt: dateTime,
    },
    ['id', 'nonce', 'expiresAt'],
  ),
  attest: message('attest', 'Run an attestation cycle now (results arrive as an "attestation" event).', {}, []),
  verdict: message(
    'verdict',
    "The controller's appraisal of an evidence message: a signed EAR token (ES384; sub = agent id, eat_nonce = the challenge nonce, cnf.jkt = the attested agent key, cvm.secrets = {name: base64url SHA-256 of each JWE}) and the secrets released to this agent, each a compact JWE (ECDH-ES+A256KW, A256GCM) to teePubKey.",
    {
      challengeId: ident(128),
      token: compactJws(256 * 1024),
      secrets: {
        type: 'array',
        maxItems: 64,
        items: {
          type: 'object',
          required: ['name', 'jwe'],
          properties: { name: ident(128), jwe: compactJwe },
          additionalProperties: false,
        },
      },
    },
    ['challengeId', 'token'],
  ),
  ack: message(
    'ack',
    'Every event with seq <= `seq` is stored by the controller; the agent drops them from its outbox. 0 acknowledges nothing.',
    {
      seq: { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER },
    },
    ['seq'],
  ),
  error: errorMessage('The controller refused something (bad evidence, expired challenge): stable code, human-readable message.'),
} satisfies Record<string, Schema>;

for (const s of [...Object.values(AGENT_SCHEMAS), ...Object.values(CONTROLLER_SCHEMAS)]) assertSupported(s);

/** The schemas as the Markdown section of docs/protocol.md (tests compare the file with this). */
export function renderSchemasMarkdown(): string {
  const block = (dir: string, schemas: Record<string, Schema>) =>
    Object.entries(schemas)
      .map(([type, s]) => `### ${dir}: \`${type}\`\n\n\`\`\`json\n${JSON.stringify(s, null, 2)}\n\`\`\`\n`)
      .join('\n');
  return `${block('agent → controller', AGENT_SCHEMAS)}\n${block('controller → agent', CONTROLLER_SCHEMAS)}`;
}
