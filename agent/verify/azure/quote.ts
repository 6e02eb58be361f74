/**
 * TPM2_Quote verification (pure): the signature over TPMS_ATTEST under the vTPM AK, the
 * qualifying data (extraData) against the expected nonce, and the PCR digest against the PCR
 * values shipped with the evidence (trustee deps/verifier/src/az_snp_vtpm/mod.rs evaluate; TPM 2.0 Part 3 TPM2_Quote).
 */
import { createHash, timingSafeEqual, verify as cryptoVerify, constants, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { fail, pass, warn, type Check } from '../../formats/checks.js';
import { HASH_NAMES, TPM_ALG, TPM_ST } from '../../formats/tpm/constants.js';
import { parseAttest, parseSignature, type TpmSignature, type TpmsAttest } from '../../formats/tpm/structures.js';
import type { QuoteSignature, TpmQuoteEvidence } from '../../formats/azure/evidence-formats.js';

// The quote as shipped is a format shared with the collector; it lives on the formats floor.
export type { QuoteSignature, TpmQuoteEvidence } from '../../formats/azure/evidence-formats.js';

export interface QuoteClaims {
  extraData: string;
  clock: string;
  resetCount: number;
  restartCount: number;
  firmwareVersion: string;
  /** PCR index -> hex value (only when the PCR digest matched, so the values are the quoted ones). */
  pcrs: Record<string, string> | undefined;
}

export interface QuoteExpectations {
  /** Expected TPMS_ATTEST.extraData; undefined = freshness not checked (warning). */
  nonce?: Uint8Array;
  /** What the nonce is, for messages ("the nonce", "SHA-256 of the user data"). */
  nonceLabel?: string;
}

export function describeSignature(sig: TpmSignature): string {
  if (sig.sigAlg === 'null') return 'TPM_ALG_NULL';
  return `${sig.sigAlg.toUpperCase()}/${HASH_NAMES.get(sig.hashAlg) ?? `hash 0x${sig.hashAlg.toString(16)}`}`;
}

/** Verify a signature over `message` under `key`; returns a reason on failure. */
export function verifyQuoteSignature(message: Uint8Array, signature: QuoteSignature, key: KeyObject): { ok: boolean; scheme: string; reason?: string } {
  let sig: TpmSignature;
  if (signature.format === 'raw') {
    if (key.asymmetricKeyType !== 'rsa') return { ok: false, scheme: 'raw', reason: `a bare signature needs an RSA AK, the AK is ${key.asymmetricKeyType}` };
    // Azure's AK is RSA-2048 with RSASSA-PKCS1-v1_5/SHA-256 (az-cvm-vtpm src/vtpm/mod.rs, checked on azure_quote.bin).
    sig = { sigAlg: 'rsassa', hashAlg: TPM_ALG.SHA256, signature: signature.bytes };
  } else {
    try {
      sig = parseSignature(signature.bytes);
    } catch (err) {
      return { ok: false, scheme: 'tpmt', reason: `malformed TPMT_SIGNATURE: ${(err as Error).message}` };
    }
  }
  const scheme = describeSignature(sig);
  if (sig.sigAlg === 'null') return { ok: false, scheme, reason: 'the quote is unsigned (TPM_ALG_NULL)' };
  const hash = HASH_NAMES.get(sig.hashAlg);
  if (!hash) return { ok: false, scheme, reason: `unsupported signature hash 0x${sig.hashAlg.toString(16)}` };
  try {
    if (sig.sigAlg === 'ecdsa') {
      if (key.asymmetricKeyType !== 'ec') return { ok: false, scheme, reason: `ECDSA signature but the AK is ${key.asymmetricKeyType}` };
      const size = Math.ceil(({ prime256v1: 256, secp384r1: 384, secp521r1: 521 }[key.asymmetricKeyDetails?.namedCurve ?? ''] ?? 0) / 8);
      if (size === 0 || sig.r.length > size || sig.s.length > size) return { ok: false, scheme, reason: 'ECDSA signature does not fit the AK curve' };
      const pad = (b: Buffer) => Buffer.concat([Buffer.alloc(size - b.length), b]);
      const ok = cryptoVerify(hash, message, { key, dsaEncoding: 'ieee-p1363' }, Buffer.concat([pad(sig.r), pad(sig.s)]));
      return ok ? { ok, scheme } : { ok, scheme, reason: 'ECDSA signature does not verify under the AK' };
    }
    if (key.asymmetricKeyType !== 'rsa') return { ok: false, scheme, reason: `RSA signature but the AK is ${key.asymmetricKeyType}` };
    const padding = sig.sigAlg === 'rsapss' ? constants.RSA_PKCS1_PSS_PADDING : constants.RSA_PKCS1_PADDING;
    // TPM RSAPSS uses salt = digest size (Part 1 §B.7); accept any salt length on verify as go-tpm does (auto).
    const ok = cryptoVerify(hash, message, { key, padding, saltLength: constants.RSA_PSS_SALTLEN_AUTO }, sig.signature);
    return ok ? { ok, scheme } : { ok, scheme, reason: `${scheme} signature does not verify under the AK` };
  } catch (err) {
    return { ok: false, scheme, reason: `signature could not be checked: ${(err as Error).message}` };
  }
}

const eq = (a: Uint8Array, b: Uint8Array) => a.length === b.length && timingSafeEqual(a, b);

/** Check the PCR values against the quoted digest: SHA-256 over the selected PCRs in order (Part 3 §18.4). */
export function checkPcrDigest(attest: TpmsAttest, pcrs: readonly Buffer[]): Check {
  const name = 'azure.quote.pcr-digest';
  const q = attest.quote;
  if (!q) return fail(name, 'the attestation is not a quote, so it has no PCR digest');
  if (q.pcrSelect.length !== 1 || q.pcrSelect[0]!.hash !== TPM_ALG.SHA256) {
    const banks = q.pcrSelect.map((s) => HASH_NAMES.get(s.hash) ?? `0x${s.hash.toString(16)}`).join(', ') || 'none';
    return fail(name, `the quote selects PCR banks [${banks}]; only a single SHA-256 bank is supported`);
  }
  const selected = q.pcrSelect[0]!.pcrs;
  if (pcrs.length !== selected.length) return fail(name, `the quote selects ${selected.length} PCRs but the evidence carries ${pcrs.length} PCR values`);
  const bad = pcrs.findIndex((p) => p.length !== 32);
  if (bad >= 0) return fail(name, `PCR value #${bad} is ${pcrs[bad]!.length} bytes, not 32 (SHA-256)`);
  const digest = createHash('sha256').update(Buffer.concat(pcrs)).digest();
  if (!eq(digest, q.pcrDigest)) {
    return fail(
      name,
      `SHA-256 over PCRs ${selected.join(',')} is ${digest.toString('hex')} but the quote signed ${q.pcrDigest.toString('hex')}: the PCR values were altered or belong to another quote`,
    );
  }
  return pass(name, `PCR values ${selected[0]}-${selected[selected.length - 1]} match the quoted digest`);
}

export interface QuoteVerification {
  checks: Check[];
  attest: TpmsAttest | undefined;
  claims: QuoteClaims | undefined;
}

/**
 * All quote checks: azure.quote.signature (needs `ak`, from the HCL runtime claims), azure.quote.nonce,
 * azure.quote.pcr-digest. `ak` undefined means the caller could not establish the AK: signature fails.
 */
export function verifyQuote(quote: TpmQuoteEvidence, ak: KeyObject | undefined, akProblem: string | undefined, expect: QuoteExpectations): QuoteVerification {
  let attest: TpmsAttest;
  try {
    attest = parseAttest(quote.message);
    if (attest.type !== TPM_ST.ATTEST_QUOTE) throw new ParseError(`TPMS_ATTEST type 0x${attest.type.toString(16)} is not a quote (0x8018)`);
  } catch (err) {
    return { checks: [fail('azure.quote.parse', `the TPM quote message is malformed: ${(err as Error).message}`)], attest: undefined, claims: undefined };
  }
  const checks: Check[] = [];
  if (!ak) {
    checks.push(fail('azure.quote.signature', `no AK to verify the quote with: ${akProblem ?? 'HCLAkPub missing from the runtime claims'}`));
  } else {
    const v = verifyQuoteSignature(quote.message, quote.signature, ak);
    checks.push(
      v.ok
        ? pass('azure.quote.signature', `quote signature (${v.scheme}) verifies under HCLAkPub, the AK bound into the HCL report`)
        : fail('azure.quote.signature', `${v.reason ?? 'signature invalid'}; the quote was not made by the vTPM AK named in the HCL report`),
    );
  }
  const label = expect.nonceLabel ?? 'the expected nonce';
  if (expect.nonce === undefined) {
    checks.push(
      warn('azure.quote.nonce', `no expected nonce given: the quote's freshness was not checked (extraData ${attest.extraData.toString('hex') || 'empty'})`),
    );
  } else if (eq(attest.extraData, expect.nonce)) {
    checks.push(pass('azure.quote.nonce', `quote extraData equals ${label}`));
  } else {
    checks.push(
      fail(
        'azure.quote.nonce',
        `quote extraData ${attest.extraData.toString('hex') || '(empty)'} != ${label} ${Buffer.from(expect.nonce).toString('hex')}: stale or replayed quote, or wrong nonce`,
      ),
    );
  }
  const pcrCheck = checkPcrDigest(attest, quote.pcrs);
  checks.push(pcrCheck);
  const selected = attest.quote?.pcrSelect[0]?.pcrs ?? [];
  const claims: QuoteClaims = {
    extraData: attest.extraData.toString('hex'),
    clock: attest.clockInfo.clock.toString(),
    resetCount: attest.clockInfo.resetCount,
    restartCount: attest.clockInfo.restartCount,
    firmwareVersion: `0x${attest.firmwareVersion.toString(16)}`,
    pcrs: pcrCheck.ok ? Object.fromEntries(selected.map((p, i) => [String(p), quote.pcrs[i]!.toString('hex')])) : undefined,
  };
  return { checks, attest, claims };
}
