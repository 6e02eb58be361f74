/**
 * X.509 v3 extensions (RFC 5280 §4.1.2.9, §4.2): OID -> criticality and extnValue bytes (the OCTET
 * STRING contents), and the basicConstraints cA flag. Custom extensions (AMD's TCB and product
 * OIDs, NVIDIA's FWID) are read from here because node:crypto's X509Certificate does not expose them.
 */
import { ParseError } from '../../errors.js';
import { children, childrenAtLeast, decodeOid, expectTag, parseDer, TAG, valueOf, type DerNode } from '../../util/der.js';

export type Extensions = Map<string, { critical: boolean; value: Uint8Array }>;

/** The extensions of a TBSCertificate node ([3] EXPLICIT Extensions); a duplicate OID is an error. */
export function extensionsOfTbs(tbs: DerNode): Extensions {
  const out: Extensions = new Map();
  for (const field of children(expectTag(tbs, TAG.SEQUENCE, 'TBSCertificate'))) {
    if (field.tag !== 0xa3) continue;
    const [extSeq] = childrenAtLeast(field, 1, 'extensions');
    for (const ext of children(expectTag(extSeq!, TAG.SEQUENCE, 'Extensions'))) {
      const parts = childrenAtLeast(ext, 2, 'Extension');
      const oid = decodeOid(parts[0]!);
      let critical = false;
      let valueNode = parts[1]!;
      if (valueNode.tag === TAG.BOOLEAN) {
        critical = valueOf(valueNode)[0] !== 0;
        valueNode = parts[2] ?? valueNode;
      }
      expectTag(valueNode, TAG.OCTET_STRING, 'extnValue');
      if (out.has(oid)) throw new ParseError(`DER: duplicate extension ${oid}`, ext.start);
      out.set(oid, { critical, value: valueOf(valueNode) });
    }
  }
  return out;
}

/**
 * The extensions of a DER certificate without decoding anything else.
 * Certificate ::= SEQUENCE { tbsCertificate, signatureAlgorithm, signature }
 */
export function certificateExtensions(certDer: Uint8Array): Extensions {
  const cert = parseDer(certDer);
  const [tbs] = childrenAtLeast(expectTag(cert, TAG.SEQUENCE, 'Certificate'), 3, 'Certificate');
  return extensionsOfTbs(tbs!);
}

/** basicConstraints (2.5.29.19) cA flag; an absent extension means not a CA. */
export function basicConstraintsCa(ext: Extensions): boolean {
  const bc = ext.get('2.5.29.19');
  if (!bc) return false;
  const seq = expectTag(parseDer(bc.value), TAG.SEQUENCE, 'BasicConstraints');
  const first = children(seq)[0];
  return first !== undefined && first.tag === TAG.BOOLEAN && valueOf(first)[0] !== 0;
}
