/**
 * A small TPM 2.0 client: the handful of commands the Azure vTPM collector needs, over any
 * TpmTransport. No tpm2-tss: commands are marshalled in commands.ts. Errors: TpmError (the TPM
 * refused, with the decoded response code), ParseError (malformed response), DeviceError (I/O).
 */
import { ParseError } from '../../errors.js';
import * as cmd from './commands.js';
import { TpmError } from '../../formats/tpm/response-codes.js';
import { TPM_ALG, TPM_CAP, TPM_PT, TPM_RH, TPM_SU } from '../../formats/tpm/constants.js';
import type { TpmTransport } from './transport.js';
import type { NvPublic, PcrSelection, TpmPublic, TpmScheme } from '../../formats/tpm/structures.js';

/** Fallback NV chunk size when GetCapability does not say (TPM_PT_NV_BUFFER_MAX is 1024 on most TPMs). */
export const DEFAULT_NV_BUFFER_MAX = 1024;

export const ALL_PCRS = Array.from({ length: 24 }, (_, i) => i);

export interface PcrValues {
  hash: number;
  /** PCR index -> value. */
  values: Map<number, Buffer>;
}

export class TpmClient {
  private nvBufferMax: number | undefined;

  constructor(readonly transport: TpmTransport) {}

  async execute<T>(command: cmd.TpmCommand<T>): Promise<T> {
    const response = await this.transport.send(command.bytes);
    return cmd.decodeResponse(command, response);
  }

  /** TPM2_Startup(CLEAR); a TPM that is already started answers TPM_RC_INITIALIZE, which is fine. */
  async startup(): Promise<void> {
    try {
      await this.execute(cmd.startup(TPM_SU.CLEAR));
    } catch (err) {
      if (err instanceof TpmError && err.rcName === 'TPM_RC_INITIALIZE') return;
      throw err;
    }
  }

  async getProperty(property: number): Promise<number | undefined> {
    const cap = await this.execute(cmd.getCapability(TPM_CAP.TPM_PROPERTIES, property, 1));
    const found = cap.properties?.find((p) => p.property === property);
    return found?.value;
  }

  /** Handles in a range (e.g. 0x81000000 persistent, 0x01000000 NV), following moreData. */
  async listHandles(first: number, max = 256): Promise<number[]> {
    const out: number[] = [];
    let next = first;
    const rangeTop = (first & 0xff000000) >>> 0;
    for (let i = 0; i < 64 && out.length < max; i++) {
      const cap = await this.execute(cmd.getCapability(TPM_CAP.HANDLES, next, max - out.length));
      const handles = (cap.handles ?? []).filter((h) => (h & 0xff000000) >>> 0 === rangeTop);
      out.push(...handles);
      if (!cap.moreData || handles.length === 0) break;
      next = handles[handles.length - 1]! + 1;
    }
    return out;
  }

  /** TPM_PT_NV_BUFFER_MAX, cached; 1024 when the TPM does not report it. */
  async nvChunkSize(): Promise<number> {
    if (this.nvBufferMax === undefined) {
      const v = await this.getProperty(TPM_PT.NV_BUFFER_MAX).catch((err) => {
        if (err instanceof TpmError) return undefined;
        throw err;
      });
      this.nvBufferMax = v !== undefined && v > 0 && v <= 4096 ? v : DEFAULT_NV_BUFFER_MAX;
    }
    return this.nvBufferMax;
  }

  async nvReadPublic(nvIndex: number): Promise<NvPublic> {
    const { nvPublic } = await this.execute(cmd.nvReadPublic(nvIndex));
    if (nvPublic.nvIndex !== nvIndex)
      throw new ParseError(`NV_ReadPublic: TPM answered for index 0x${nvPublic.nvIndex.toString(16)}, asked 0x${nvIndex.toString(16)}`);
    return nvPublic;
  }

  /** Whether an NV index is defined (TPM_RC_HANDLE for an absent index). */
  async nvExists(nvIndex: number): Promise<boolean> {
    try {
      await this.nvReadPublic(nvIndex);
      return true;
    } catch (err) {
      if (err instanceof TpmError && err.rcName === 'TPM_RC_HANDLE') return false;
      throw err;
    }
  }

  /**
   * Read a whole NV index (or `size` bytes of it) in chunks of TPM_PT_NV_BUFFER_MAX.
   * Default authorization: the owner hierarchy with an empty password, as Azure's index requires.
   */
  async nvRead(nvIndex: number, opts: { authHandle?: number; password?: Uint8Array; size?: number; offset?: number } = {}): Promise<Buffer> {
    const pub = await this.nvReadPublic(nvIndex);
    const offset = opts.offset ?? 0;
    const size = opts.size ?? pub.dataSize - offset;
    if (offset < 0 || size < 0 || offset + size > pub.dataSize) {
      throw new ParseError(`NV_Read: range ${offset}+${size} outside index 0x${nvIndex.toString(16)} of ${pub.dataSize} bytes`);
    }
    const chunk = await this.nvChunkSize();
    const parts: Buffer[] = [];
    for (let done = 0; done < size; ) {
      const n = Math.min(chunk, size - done);
      const data = await this.execute(cmd.nvRead(opts.authHandle ?? TPM_RH.OWNER, nvIndex, n, offset + done, opts.password));
      if (data.length !== n) throw new ParseError(`NV_Read: asked ${n} bytes, TPM returned ${data.length}`);
      parts.push(data);
      done += n;
    }
    return Buffer.concat(parts);
  }

  async nvWrite(nvIndex: number, data: Uint8Array, opts: { authHandle?: number; password?: Uint8Array; offset?: number } = {}): Promise<void> {
    const chunk = await this.nvChunkSize();
    const base = opts.offset ?? 0;
    for (let done = 0; done < data.length || (data.length === 0 && done === 0); ) {
      const part = data.subarray(done, done + chunk);
      await this.execute(cmd.nvWrite(opts.authHandle ?? TPM_RH.OWNER, nvIndex, part, base + done, opts.password));
      done += part.length;
      if (part.length === 0) break;
    }
  }

  async nvDefineSpace(publicInfo: NvPublic, opts: { authHandle?: number; password?: Uint8Array; indexAuth?: Uint8Array } = {}): Promise<void> {
    await this.execute(cmd.nvDefineSpace(opts.authHandle ?? TPM_RH.OWNER, publicInfo, opts.indexAuth, opts.password));
  }

  async nvUndefineSpace(nvIndex: number, opts: { authHandle?: number; password?: Uint8Array } = {}): Promise<void> {
    await this.execute(cmd.nvUndefineSpace(opts.authHandle ?? TPM_RH.OWNER, nvIndex, opts.password));
  }

  async readPublic(handle: number): Promise<cmd.ReadPublicResult> {
    return this.execute(cmd.readPublicCmd(handle));
  }

  /**
   * Read PCRs of one bank. A TPM returns at most 8 digests per PCR_Read (TPML_DIGEST), so ask again
   * for whatever it left out until every requested PCR has a value.
   */
  async pcrRead(hash: number = TPM_ALG.SHA256, pcrs: readonly number[] = ALL_PCRS): Promise<PcrValues> {
    const values = new Map<number, Buffer>();
    let missing = [...pcrs].sort((a, b) => a - b);
    for (let round = 0; missing.length > 0; round++) {
      if (round > 32) throw new ParseError('PCR_Read: TPM keeps returning no PCR values');
      const res = await this.execute(cmd.pcrRead([{ hash, pcrs: missing }]));
      let i = 0;
      for (const sel of res.selection) {
        for (const pcr of sel.pcrs) {
          const digest = res.digests[i++]!;
          if (sel.hash === hash && missing.includes(pcr)) values.set(pcr, digest);
        }
      }
      const before = missing.length;
      missing = missing.filter((p) => !values.has(p));
      if (missing.length === before) throw new ParseError(`PCR_Read: bank 0x${hash.toString(16)} PCRs ${missing.join(',')} not available`);
    }
    return { hash, values };
  }

  /** TPM2_Quote with the signing key's own scheme (or `scheme`), user auth = empty password. */
  async quote(
    signHandle: number,
    qualifyingData: Uint8Array,
    selection: readonly PcrSelection[],
    opts: { scheme?: TpmScheme; password?: Uint8Array } = {},
  ): Promise<cmd.QuoteResult> {
    return this.execute(cmd.quote(signHandle, qualifyingData, selection, opts.scheme, opts.password));
  }

  async createPrimary(hierarchy: number, template: TpmPublic, password?: Uint8Array): Promise<{ handle: number; public: TpmPublic }> {
    return this.execute(cmd.createPrimary(hierarchy, template, password));
  }

  async evictControl(objectHandle: number, persistentHandle: number, opts: { auth?: number; password?: Uint8Array } = {}): Promise<void> {
    await this.execute(cmd.evictControl(opts.auth ?? TPM_RH.OWNER, objectHandle, persistentHandle, opts.password));
  }

  async flushContext(handle: number): Promise<void> {
    await this.execute(cmd.flushContext(handle));
  }

  close(): Promise<void> {
    return this.transport.close();
  }
}
