/**
 * The HCL runtime claims: a JSON document the Azure paravisor writes after the SNP report and hashes
 * into REPORT_DATA (az-cvm-vtpm az-snp-vtpm/src/report.rs; trustee az_snp_vtpm verify_report_data). It carries the vTPM keys as JWKs (HCLAkPub, HCLEkPub),
 * the VM configuration and the 64-byte user data. The input is attacker-controlled until the SNP
 * signature and the REPORT_DATA binding are checked, so parsing is strict and bounded, and keys are
 * rebuilt from their public members only.
 */
import { createPublicKey, type KeyObject } from 'node:crypto';
import { ParseError } from '../../errors.js';
import { isJsonObject, ownField, stringField } from '../../util/json-fields.js';

export interface RuntimeKey {
  kid: string;
  kty: string;
  keyOps: string[];
  /** Public key, or undefined when the JWK could not be used (unsupported type or bad material). */
  key: KeyObject | undefined;
  /** Why `key` is undefined. */
  problem?: string;
}

export interface RuntimeClaims {
  keys: RuntimeKey[];
  /** "vm-configuration" as given (plain JSON values); undefined when absent. */
  vmConfiguration: Record<string, unknown> | undefined;
  /** "user-data" decoded from hex (Azure writes 64 bytes as 128 uppercase hex digits); undefined when absent. */
  userData: Buffer | undefined;
  /** The parsed JSON object (for display). */
  json: Record<string, unknown>;
}

/** Bounds on hostile input: the claims come from a 2-4 KiB NV index in practice. */
export const MAX_CLAIMS_BYTES = 64 * 1024;
const MAX_KEYS = 16;
const MAX_USER_DATA_HEX = 128;

function jwkToKey(jwk: Record<string, unknown>): { key: KeyObject | undefined; problem?: string } {
  const kty = ownField(jwk, 'kty');
  const str = (k: string) => stringField(jwk, k, 2048);
  try {
    if (kty === 'RSA') {
      const n = str('n');
      const e = str('e');
      if (!n || !e) return { key: undefined, problem: 'RSA JWK without n or e' };
      return { key: createPublicKey({ key: { kty: 'RSA', n, e }, format: 'jwk' }) };
    }
    if (kty === 'EC') {
      const crv = str('crv');
      const x = str('x');
      const y = str('y');
      if (!crv || !x || !y) return { key: undefined, problem: 'EC JWK without crv, x or y' };
      return { key: createPublicKey({ key: { kty: 'EC', crv, x, y }, format: 'jwk' }) };
    }
    return { key: undefined, problem: `unsupported JWK kty ${JSON.stringify(kty)}` };
  } catch (err) {
    return { key: undefined, problem: `invalid JWK: ${(err as Error).message}` };
  }
}

export function parseRuntimeClaims(bytes: Uint8Array): RuntimeClaims {
  if (bytes.length > MAX_CLAIMS_BYTES) throw new ParseError(`HCL runtime claims: ${bytes.length} bytes exceeds ${MAX_CLAIMS_BYTES}`);
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new ParseError('HCL runtime claims: not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw new ParseError(`HCL runtime claims: not valid JSON (${(err as Error).message})`);
  }
  if (!isJsonObject(json)) throw new ParseError('HCL runtime claims: JSON is not an object');

  const keysValue = ownField(json, 'keys');
  const keys: RuntimeKey[] = [];
  if (keysValue !== undefined) {
    if (!Array.isArray(keysValue)) throw new ParseError('HCL runtime claims: "keys" is not an array');
    if (keysValue.length > MAX_KEYS) throw new ParseError(`HCL runtime claims: ${keysValue.length} keys exceeds ${MAX_KEYS}`);
    for (const entry of keysValue) {
      if (!isJsonObject(entry)) throw new ParseError('HCL runtime claims: a "keys" entry is not an object');
      const kid = ownField(entry, 'kid');
      const kty = ownField(entry, 'kty');
      if (typeof kid !== 'string' || typeof kty !== 'string') throw new ParseError('HCL runtime claims: a key lacks a string "kid" or "kty"');
      const ops = ownField(entry, 'key_ops');
      const keyOps = Array.isArray(ops) ? ops.filter((o): o is string => typeof o === 'string') : [];
      keys.push({ kid, kty, keyOps, ...jwkToKey(entry) });
    }
  }

  const vm = ownField(json, 'vm-configuration');
  if (vm !== undefined && !isJsonObject(vm)) throw new ParseError('HCL runtime claims: "vm-configuration" is not an object');

  const ud = ownField(json, 'user-data');
  let userData: Buffer | undefined;
  if (ud !== undefined) {
    if (typeof ud !== 'string' || ud.length > MAX_USER_DATA_HEX || ud.length % 2 !== 0 || !/^[0-9a-fA-F]*$/.test(ud)) {
      throw new ParseError('HCL runtime claims: "user-data" is not a hex string of at most 64 bytes');
    }
    userData = Buffer.from(ud, 'hex');
  }
  return { keys, vmConfiguration: vm as Record<string, unknown> | undefined, userData, json };
}

/** The key with this kid (e.g. "HCLAkPub"); the first one if a hostile document repeats it. */
export function findKey(claims: RuntimeClaims, kid: string): RuntimeKey | undefined {
  return claims.keys.find((k) => k.kid === kid);
}
