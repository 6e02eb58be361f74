/**
 * fast-check properties: the TPM response parsers, TPMS_ATTEST, TPMT_SIGNATURE and TPMT_PUBLIC never
 * throw anything but the project's typed errors (ParseError / TpmError), whatever the bytes.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { FC_RUNS, vector } from '../../../helpers/paths.js';
import { onlyTypedErrors } from '../../../helpers/props.js';
import * as cmd from '../../../../agent/evidence/tpm/commands.js';
import { TpmWriter } from '../../../../agent/formats/tpm/marshal.js';
import { parseAttest, parsePublic, parseSignature } from '../../../../agent/formats/tpm/structures.js';
import { TPM_ALG, TPM_RH, TPM_ST } from '../../../../agent/formats/tpm/constants.js';

const commands: cmd.TpmCommand<unknown>[] = [
  cmd.getCapability(6, 0x12c, 1),
  cmd.getCapability(1, 0x81000000, 8),
  cmd.nvReadPublic(0x01400001),
  cmd.nvRead(TPM_RH.OWNER, 0x01400001, 1024, 0),
  cmd.readPublicCmd(0x81000003),
  cmd.pcrRead([{ hash: TPM_ALG.SHA256, pcrs: [0, 1, 2] }]),
  cmd.quote(0x81000003, Buffer.alloc(32), [{ hash: TPM_ALG.SHA256, pcrs: [0] }]),
  cmd.createPrimary(TPM_RH.OWNER, {
    type: 'rsa',
    nameAlg: TPM_ALG.SHA256,
    objectAttributes: 0,
    authPolicy: Buffer.alloc(0),
    symmetric: { algorithm: TPM_ALG.NULL },
    scheme: { scheme: TPM_ALG.NULL },
    keyBits: 2048,
    exponent: 0,
    modulus: Buffer.alloc(0),
  }),
];

/** A response with a well-formed header (so parsing reaches the body) and an arbitrary body. */
const framed = fc
  .tuple(fc.constantFrom(TPM_ST.NO_SESSIONS, TPM_ST.SESSIONS), fc.constantFrom(0, 0, 0, 0x18b, 0x14a), fc.uint8Array({ maxLength: 600 }))
  .map(([tag, rc, body]) =>
    Buffer.concat([
      new TpmWriter()
        .u16(tag)
        .u32(10 + body.length)
        .u32(rc)
        .finish(),
      body,
    ]),
  );

const quoteMessage = Buffer.from(JSON.parse(vector('snp/trustee_az-snp-vtpm_evidence-v1.json').toString()).tpm_quote.message, 'hex');

describe('TPM parsers never throw untyped errors', () => {
  it('decodeResponse on arbitrary bytes, every command', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 700 }), fc.nat(commands.length - 1), (bytes, i) => onlyTypedErrors(() => cmd.decodeResponse(commands[i]!, bytes))),
      { numRuns: FC_RUNS },
    );
  });
  it('decodeResponse on well-framed responses with arbitrary bodies, every command', () => {
    fc.assert(
      fc.property(framed, fc.nat(commands.length - 1), (bytes, i) => onlyTypedErrors(() => cmd.decodeResponse(commands[i]!, bytes))),
      { numRuns: FC_RUNS },
    );
  });
  it('parseAttest on arbitrary bytes and on mutations of a real quote', () => {
    const mutated = fc.tuple(fc.nat(quoteMessage.length - 1), fc.integer({ min: 0, max: 255 }), fc.nat(quoteMessage.length)).map(([at, v, cut]) => {
      const b = Buffer.from(quoteMessage);
      b[at] = v;
      return b.subarray(0, cut);
    });
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), mutated), (bytes) => onlyTypedErrors(() => parseAttest(bytes))),
      { numRuns: FC_RUNS },
    );
  });
  it('a real quote survives the property harness (parses)', () => {
    expect(parseAttest(quoteMessage).extraData.toString()).toBe('challenge');
  });
  it('parseSignature and parsePublic on arbitrary bytes (with plausible type prefixes)', () => {
    const prefixed = fc
      .tuple(fc.constantFrom(0x0001, 0x0023, 0x0014, 0x0016, 0x0018, 0x0010, 0x0008), fc.uint8Array({ maxLength: 400 }))
      .map(([t, rest]) => Buffer.concat([new TpmWriter().u16(t).finish(), rest]));
    fc.assert(
      fc.property(
        fc.oneof(fc.uint8Array({ maxLength: 400 }), prefixed),
        (bytes) => onlyTypedErrors(() => parseSignature(bytes)) && onlyTypedErrors(() => parsePublic(bytes)),
      ),
      { numRuns: FC_RUNS },
    );
  });
});
