/**
 * The one nonce-from-hex parser. Every surface that takes a nonce as hex (local API, link challenge,
 * evidence bundle, GPU evidence JSON, CLI flags) states its rules here instead of writing its own
 * regular expression; the caller words its own error (HTTP problem, UsageError, named check), so this
 * only answers "the bytes, or undefined".
 */

/** Nonces on the link, the local API and in the evidence bundle: 8..64 bytes (docs/protocol.md). */
export const NONCE_MIN_BYTES = 8;
export const NONCE_MAX_BYTES = 64;

/** JSON Schema pattern of a link/bundle nonce: lowercase hex, 8..64 bytes (the wire form we emit). */
export const NONCE_HEX_PATTERN = `^([0-9a-f]{2}){${NONCE_MIN_BYTES},${NONCE_MAX_BYTES}}$`;

export interface NonceHexRules {
  minBytes: number;
  maxBytes: number;
  /** Only a-f digits (the canonical wire form); otherwise A-F too. */
  lowercase?: boolean;
  /** Allow a leading "0x" ('lower') or "0x"/"0X" ('any-case'). */
  prefix?: 'lower' | 'any-case';
  /** Ignore surrounding white space (command-line values). */
  trim?: boolean;
}

/** Link challenges, local API, bundle: lowercase or mixed-case hex of 8..64 bytes, nothing else. */
export const WIRE_NONCE: NonceHexRules = { minBytes: NONCE_MIN_BYTES, maxBytes: NONCE_MAX_BYTES };
/** A GPU attestation nonce is exactly 32 bytes (NVML_CC_GPU_CEC_NONCE_SIZE). */
export const GPU_NONCE_BYTES = 32;

/** The nonce bytes when `text` satisfies `rules`, else undefined. Never throws. */
export function nonceFromHex(text: unknown, rules: NonceHexRules): Buffer | undefined {
  if (typeof text !== 'string') return undefined;
  // Bound the work before any regular expression runs on hostile input.
  if (text.length > rules.maxBytes * 2 + 2 && !rules.trim) return undefined;
  let s = rules.trim ? text.trim() : text;
  if (rules.prefix === 'lower' && s.startsWith('0x')) s = s.slice(2);
  else if (rules.prefix === 'any-case' && /^0x/i.test(s)) s = s.slice(2);
  if (s.length % 2 !== 0 || s.length < rules.minBytes * 2 || s.length > rules.maxBytes * 2) return undefined;
  if (!(rules.lowercase ? /^[0-9a-f]*$/ : /^[0-9a-fA-F]*$/).test(s)) return undefined;
  return Buffer.from(s, 'hex');
}
