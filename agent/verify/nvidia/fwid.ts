/**
 * FWID of the GPU AK leaf certificate (nvtrust cc_admin_utils.py extract_fwid):
 * - Hopper: extension 2.23.133.5.4.1 (TCG DICE TcbInfo OID, NVIDIA's own layout)
 *   SEQ { INTEGER 1, SubjectPublicKeyInfo, SEQ { OID sha384, OCTET STRING(48) } }; the FWID is the digest.
 * - Blackwell: extension 2.23.133.5.4.1.1 carrying a DICE TcbInfo; FWID = fwids[0].digest
 *   (DiceTcbInfo ::= SEQUENCE { ..., fwids [6] IMPLICIT SEQUENCE OF FWID, ... }, FWID ::= SEQ { hashAlg OID, digest OCTET STRING }).
 * Pure; malformed extensions raise ParseError.
 */
import { ParseError } from '../../errors.js';
import { children, decodeOid, expectTag, parseDer, TAG, valueOf, type DerNode } from '../../util/der.js';

export const OID_HOPPER_FWID = '2.23.133.5.4.1';
export const OID_BLACKWELL_TCBINFO = '2.23.133.5.4.1.1';
export const OID_SHA384 = '2.16.840.1.101.3.4.2.2';

/** A SEQ { OID, OCTET STRING } pair, i.e. an FWID. */
function asFwid(node: DerNode): Uint8Array | undefined {
  if (node.tag !== TAG.SEQUENCE) return undefined;
  const c = children(node);
  if (c.length !== 2 || c[0]!.tag !== TAG.OID || c[1]!.tag !== TAG.OCTET_STRING) return undefined;
  decodeOid(c[0]!); // validates the OID encoding
  return valueOf(c[1]!);
}

/** Hopper layout: the last element of the top-level SEQUENCE is the FWID pair. */
export function hopperFwid(extValue: Uint8Array): Uint8Array {
  const seq = expectTag(parseDer(extValue), TAG.SEQUENCE, 'FWID extension');
  const items = children(seq);
  const last = items[items.length - 1];
  const fwid = last ? asFwid(last) : undefined;
  if (!fwid) throw new ParseError('FWID extension: no { hashAlg, digest } element at the end');
  return fwid;
}

/** Blackwell DICE TcbInfo: first FWID of the [6] fwids list. */
export function diceTcbInfoFwid(extValue: Uint8Array): Uint8Array {
  const seq = expectTag(parseDer(extValue), TAG.SEQUENCE, 'DiceTcbInfo');
  for (const field of children(seq)) {
    if (field.tag !== 0xa6) continue; // [6] IMPLICIT SEQUENCE OF FWID (constructed)
    const first = children(field)[0];
    const fwid = first ? asFwid(first) : undefined;
    if (!fwid) throw new ParseError('DiceTcbInfo: fwids[0] is not { hashAlg, digest }');
    return fwid;
  }
  throw new ParseError('DiceTcbInfo: no fwids');
}

/** The leaf's FWID, or undefined when neither extension is present. */
export function leafFwid(extensions: Map<string, { value: Uint8Array }>): { fwid: Uint8Array; source: string } | undefined {
  const bw = extensions.get(OID_BLACKWELL_TCBINFO);
  if (bw) return { fwid: diceTcbInfoFwid(bw.value), source: OID_BLACKWELL_TCBINFO };
  const hp = extensions.get(OID_HOPPER_FWID);
  if (hp) return { fwid: hopperFwid(hp.value), source: OID_HOPPER_FWID };
  return undefined;
}
