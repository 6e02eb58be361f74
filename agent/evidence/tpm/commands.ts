/**
 * TPM 2.0 command marshalling and response parsing (Part 3 "Commands"), pure: each builder returns
 * the command bytes plus a parser for the response parameters. The client (client.ts) only moves
 * bytes. Authorization uses the password pseudo-session TPM_RS_PW (Part 1 §19.8.4).
 */
import { ParseError } from '../../errors.js';
import { TpmReader, TpmWriter } from '../../formats/tpm/marshal.js';
import { TpmError } from '../../formats/tpm/response-codes.js';
import { HEADER_SIZE, MAX_MESSAGE_SIZE, TPM_CC, TPM_RS_PW, TPM_ST, TPM_ALG } from '../../formats/tpm/constants.js';
import {
  readNvPublic,
  writeNvPublic,
  readPcrSelection,
  writePcrSelection,
  writePublic,
  readSignature,
  parsePublic,
  type NvPublic,
  type PcrSelection,
  type TpmPublic,
  type TpmSignature,
  type TpmScheme,
} from '../../formats/tpm/structures.js';

export interface TpmCommand<T> {
  /** Command name without the TPM2_ prefix, for errors. */
  name: string;
  bytes: Buffer;
  /** Number of handles in the response before the parameters. */
  responseHandles: number;
  parse(params: TpmReader, handles: number[]): T;
}

interface CommandSpec {
  code: number;
  handles?: number[];
  /** One password per authorized handle (same order); absent = no sessions. */
  passwords?: Uint8Array[];
  params?: (w: TpmWriter) => void;
}

/** Marshal header, handles, authorization area (TPMS_AUTH_COMMAND per password) and parameters. */
export function marshalCommand(spec: CommandSpec): Buffer {
  const body = new TpmWriter();
  for (const h of spec.handles ?? []) body.u32(h);
  const sessions = spec.passwords !== undefined && spec.passwords.length > 0;
  if (sessions) {
    const auth = new TpmWriter();
    for (const pw of spec.passwords!) {
      // sessionHandle, nonceCaller (empty), sessionAttributes (continueSession), hmac = the password
      auth.u32(TPM_RS_PW).tpm2b(Buffer.alloc(0)).u8(0x01).tpm2b(pw);
    }
    const area = auth.finish();
    body.u32(area.length).bytes(area);
  }
  spec.params?.(body);
  const payload = body.finish();
  return new TpmWriter()
    .u16(sessions ? TPM_ST.SESSIONS : TPM_ST.NO_SESSIONS)
    .u32(HEADER_SIZE + payload.length)
    .u32(spec.code)
    .bytes(payload)
    .finish();
}

export interface ResponseEnvelope {
  rc: number;
  handles: number[];
  params: TpmReader;
}

/**
 * Check a response's header and split it into handles and parameters. Throws TpmError for a
 * non-zero response code and ParseError for malformed framing (size mismatch, bad tag, overruns).
 */
export function parseResponse(bytes: Uint8Array, command: string, responseHandles: number): ResponseEnvelope {
  const r = new TpmReader(bytes, 0, bytes.length, `TPM2_${command} response`);
  const tag = r.u16('tag');
  const size = r.u32('responseSize');
  const rc = r.u32('responseCode');
  if (tag !== TPM_ST.NO_SESSIONS && tag !== TPM_ST.SESSIONS) throw new ParseError(`TPM2_${command} response: bad tag 0x${tag.toString(16)}`, 0);
  if (size !== bytes.length) throw new ParseError(`TPM2_${command} response: header size ${size} but ${bytes.length} bytes received`, 2);
  if (rc !== 0) throw new TpmError(command, rc);
  const handles: number[] = [];
  for (let i = 0; i < responseHandles; i++) handles.push(r.u32('handle'));
  if (tag === TPM_ST.NO_SESSIONS) {
    return { rc, handles, params: new TpmReader(bytes, r.offset, bytes.length, `TPM2_${command} response`) };
  }
  const paramSize = r.u32('parameterSize');
  if (paramSize > r.remaining) throw new ParseError(`TPM2_${command} response: parameterSize ${paramSize} overruns the response`, r.offset - 4);
  const params = new TpmReader(bytes, r.offset, r.offset + paramSize, `TPM2_${command} response`);
  // Authorization area (TPMS_AUTH_RESPONSE per session): validate its framing, nothing to check for passwords.
  const auth = new TpmReader(bytes, r.offset + paramSize, bytes.length, `TPM2_${command} response auth`);
  while (auth.remaining > 0) {
    auth.tpm2b('nonceTPM', 64);
    auth.u8('sessionAttributes');
    auth.tpm2b('hmac', 64);
  }
  return { rc, handles, params };
}

/** Parse a full response with the command's parser, requiring every parameter byte to be consumed. */
export function decodeResponse<T>(cmd: TpmCommand<T>, bytes: Uint8Array): T {
  if (bytes.length > MAX_MESSAGE_SIZE) throw new ParseError(`TPM2_${cmd.name} response: ${bytes.length} bytes exceeds ${MAX_MESSAGE_SIZE}`);
  const { handles, params } = parseResponse(bytes, cmd.name, cmd.responseHandles);
  const out = cmd.parse(params, handles);
  params.expectEnd(`TPM2_${cmd.name} parameters`);
  return out;
}

const EMPTY = new Uint8Array(0);

// ---------------------------------------------------------------------------------------------

export function startup(startupType: number): TpmCommand<void> {
  return { name: 'Startup', responseHandles: 0, bytes: marshalCommand({ code: TPM_CC.Startup, params: (w) => w.u16(startupType) }), parse: () => undefined };
}

export interface Capability {
  moreData: boolean;
  capability: number;
  properties?: { property: number; value: number }[];
  handles?: number[];
}

/** Upper bound on list entries we accept in one GetCapability answer. */
const MAX_CAP_ENTRIES = 1024;

export function getCapability(capability: number, property: number, propertyCount: number): TpmCommand<Capability> {
  return {
    name: 'GetCapability',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.GetCapability, params: (w) => w.u32(capability).u32(property).u32(propertyCount) }),
    parse(r) {
      const moreData = r.u8('moreData') !== 0;
      const cap = r.u32('capability');
      const out: Capability = { moreData, capability: cap };
      const count = () => {
        const n = r.u32('count');
        if (n > MAX_CAP_ENTRIES) throw new ParseError(`GetCapability: ${n} entries exceeds ${MAX_CAP_ENTRIES}`, r.offset - 4);
        return n;
      };
      if (cap === 0x00000006) {
        // TPM_CAP_TPM_PROPERTIES: TPML_TAGGED_TPM_PROPERTY
        const n = count();
        out.properties = [];
        for (let i = 0; i < n; i++) out.properties.push({ property: r.u32('property'), value: r.u32('value') });
      } else if (cap === 0x00000001) {
        // TPM_CAP_HANDLES: TPML_HANDLE
        const n = count();
        out.handles = [];
        for (let i = 0; i < n; i++) out.handles.push(r.u32('handle'));
      } else {
        throw new ParseError(`GetCapability: capability 0x${cap.toString(16)} is not supported by this client`);
      }
      return out;
    },
  };
}

export function nvReadPublic(nvIndex: number): TpmCommand<{ nvPublic: NvPublic; name: Buffer }> {
  return {
    name: 'NV_ReadPublic',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.NV_ReadPublic, handles: [nvIndex] }),
    parse(r) {
      const pub = r.sized('TPM2B_NV_PUBLIC');
      const nvPublic = readNvPublic(pub);
      pub.expectEnd('TPMS_NV_PUBLIC');
      return { nvPublic, name: r.tpm2b('nvName', 2 + 64) };
    },
  };
}

export function nvRead(authHandle: number, nvIndex: number, size: number, offset: number, password: Uint8Array = EMPTY): TpmCommand<Buffer> {
  return {
    name: 'NV_Read',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.NV_Read, handles: [authHandle, nvIndex], passwords: [password], params: (w) => w.u16(size).u16(offset) }),
    parse: (r) => r.tpm2b('TPM2B_MAX_NV_BUFFER', size),
  };
}

export function nvWrite(authHandle: number, nvIndex: number, data: Uint8Array, offset: number, password: Uint8Array = EMPTY): TpmCommand<void> {
  return {
    name: 'NV_Write',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.NV_Write, handles: [authHandle, nvIndex], passwords: [password], params: (w) => w.tpm2b(data).u16(offset) }),
    parse: () => undefined,
  };
}

export function nvDefineSpace(authHandle: number, publicInfo: NvPublic, indexAuth: Uint8Array = EMPTY, password: Uint8Array = EMPTY): TpmCommand<void> {
  return {
    name: 'NV_DefineSpace',
    responseHandles: 0,
    bytes: marshalCommand({
      code: TPM_CC.NV_DefineSpace,
      handles: [authHandle],
      passwords: [password],
      params: (w) => w.tpm2b(indexAuth).sized((s) => writeNvPublic(s, publicInfo)),
    }),
    parse: () => undefined,
  };
}

export function nvUndefineSpace(authHandle: number, nvIndex: number, password: Uint8Array = EMPTY): TpmCommand<void> {
  return {
    name: 'NV_UndefineSpace',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.NV_UndefineSpace, handles: [authHandle, nvIndex], passwords: [password] }),
    parse: () => undefined,
  };
}

export interface ReadPublicResult {
  public: TpmPublic;
  /** The TPMT_PUBLIC bytes as the TPM returned them. */
  publicArea: Buffer;
  name: Buffer;
  qualifiedName: Buffer;
}

export function readPublicCmd(objectHandle: number): TpmCommand<ReadPublicResult> {
  return {
    name: 'ReadPublic',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.ReadPublic, handles: [objectHandle] }),
    parse(r) {
      const publicArea = r.tpm2b('TPM2B_PUBLIC');
      return { public: parsePublic(publicArea), publicArea, name: r.tpm2b('name', 66), qualifiedName: r.tpm2b('qualifiedName', 66) };
    },
  };
}

export interface PcrReadResult {
  updateCounter: number;
  selection: PcrSelection[];
  digests: Buffer[];
}

export function pcrRead(selection: readonly PcrSelection[]): TpmCommand<PcrReadResult> {
  return {
    name: 'PCR_Read',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.PCR_Read, params: (w) => writePcrSelection(w, selection) }),
    parse(r) {
      const updateCounter = r.u32('pcrUpdateCounter');
      const sel = readPcrSelection(r);
      const n = r.u32('TPML_DIGEST.count');
      if (n > 8) throw new ParseError(`PCR_Read: TPML_DIGEST count ${n} exceeds 8`, r.offset - 4); // Part 2 §10.9.2
      const digests: Buffer[] = [];
      for (let i = 0; i < n; i++) digests.push(r.tpm2b('TPM2B_DIGEST', 64));
      const selected = sel.reduce((a, s) => a + s.pcrs.length, 0);
      if (selected !== n) throw new ParseError(`PCR_Read: ${selected} PCRs selected but ${n} digests returned`);
      return { updateCounter, selection: sel, digests };
    },
  };
}

export interface QuoteResult {
  /** TPMS_ATTEST bytes: exactly what the signature covers. */
  quoted: Buffer;
  signature: TpmSignature;
  /** The TPMT_SIGNATURE as the TPM marshalled it (what evidence ships; no re-marshalling). */
  signatureBytes: Buffer;
}

/** TPMT_SIG_SCHEME: NULL = use the key's own scheme (the usual case for a restricted AK). */
export function quote(
  signHandle: number,
  qualifyingData: Uint8Array,
  selection: readonly PcrSelection[],
  scheme: TpmScheme = { scheme: TPM_ALG.NULL },
  password: Uint8Array = EMPTY,
): TpmCommand<QuoteResult> {
  return {
    name: 'Quote',
    responseHandles: 0,
    bytes: marshalCommand({
      code: TPM_CC.Quote,
      handles: [signHandle],
      passwords: [password],
      params: (w) => {
        w.tpm2b(qualifyingData).u16(scheme.scheme);
        if (scheme.scheme !== TPM_ALG.NULL) w.u16(scheme.hashAlg ?? TPM_ALG.SHA256);
        writePcrSelection(w, selection);
      },
    }),
    parse(r) {
      const quoted = r.tpm2b('TPM2B_ATTEST');
      const start = r.offset;
      const signature = readSignature(r);
      return { quoted, signature, signatureBytes: Buffer.from(r.buf.subarray(start, r.offset)) };
    },
  };
}

export function createPrimary(hierarchy: number, template: TpmPublic, password: Uint8Array = EMPTY): TpmCommand<{ handle: number; public: TpmPublic }> {
  return {
    name: 'CreatePrimary',
    responseHandles: 1,
    bytes: marshalCommand({
      code: TPM_CC.CreatePrimary,
      handles: [hierarchy],
      passwords: [password],
      params: (w) => {
        w.sized((s) => s.tpm2b(EMPTY).tpm2b(EMPTY)); // TPM2B_SENSITIVE_CREATE: userAuth, data
        w.sized((s) => writePublic(s, template)); // TPM2B_PUBLIC
        w.tpm2b(EMPTY); // outsideInfo
        w.u32(0); // creationPCR: empty TPML_PCR_SELECTION
      },
    }),
    parse(r, handles) {
      const pub = parsePublic(r.tpm2b('TPM2B_PUBLIC'));
      // creationData, creationHash, creationTicket, name: framing-checked, not used
      r.tpm2b('TPM2B_CREATION_DATA');
      r.tpm2b('creationHash', 64);
      r.u16('creationTicket.tag');
      r.u32('creationTicket.hierarchy');
      r.tpm2b('creationTicket.digest', 64);
      r.tpm2b('name', 66);
      return { handle: handles[0]!, public: pub };
    },
  };
}

export function evictControl(auth: number, objectHandle: number, persistentHandle: number, password: Uint8Array = EMPTY): TpmCommand<void> {
  return {
    name: 'EvictControl',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.EvictControl, handles: [auth, objectHandle], passwords: [password], params: (w) => w.u32(persistentHandle) }),
    parse: () => undefined,
  };
}

export function flushContext(handle: number): TpmCommand<void> {
  return {
    name: 'FlushContext',
    responseHandles: 0,
    bytes: marshalCommand({ code: TPM_CC.FlushContext, params: (w) => w.u32(handle) }),
    parse: () => undefined,
  };
}
