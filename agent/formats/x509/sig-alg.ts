/**
 * The one signature-algorithm decoder for certificates, CRLs and their issuers. Decoded, never
 * byte-compared: AMD certificates use two encodings of the same RSASSA-PSS parameters
 * (AMD #57230); NVIDIA device and OCSP certificates use ecdsa-with-SHA384 (RFC 5758 §3.2).
 */
import { children, childrenAtLeast, decodeInteger, decodeOid, expectTag, TAG, type DerNode } from '../../util/der.js';

const OID = {
  rsassaPss: '1.2.840.113549.1.1.10', // RFC 4055 §3.1
  mgf1: '1.2.840.113549.1.1.8',
  sha384: '2.16.840.1.101.3.4.2.2',
  sha384WithRsa: '1.2.840.113549.1.1.12', // RFC 4055 §5
  ecdsaWithSha384: '1.2.840.10045.4.3.3', // RFC 5758 §3.2
} as const;

/**
 * A decoded signature algorithm. 'rsa-pss-sha384' means exactly SHA-384, MGF1-SHA-384, salt 48,
 * trailer 1 (what AMD uses everywhere); any other PSS parameters are 'unsupported'.
 */
export type SigAlg =
  | { kind: 'rsa-pss-sha384' }
  | { kind: 'ecdsa-sha384' }
  | { kind: 'rsa-pkcs1-sha384' }
  | { kind: 'unsupported'; oid: string; reason: string };

export function describeSigAlg(alg: SigAlg): string {
  return alg.kind === 'unsupported' ? `${alg.oid} (${alg.reason})` : alg.kind;
}

function hashOidOf(algId: DerNode): string {
  const [oid] = childrenAtLeast(expectTag(algId, TAG.SEQUENCE, 'AlgorithmIdentifier'), 1, 'AlgorithmIdentifier');
  return decodeOid(oid!);
}

/** Decode an AlgorithmIdentifier (RFC 4055 §3.1 for the RSASSA-PSS-params). */
export function decodeSigAlg(algId: DerNode): SigAlg {
  const parts = childrenAtLeast(expectTag(algId, TAG.SEQUENCE, 'AlgorithmIdentifier'), 1, 'AlgorithmIdentifier');
  const oid = decodeOid(parts[0]!);
  if (oid === OID.ecdsaWithSha384) return parts.length === 1 ? { kind: 'ecdsa-sha384' } : { kind: 'unsupported', oid, reason: 'ECDSA with parameters' };
  if (oid === OID.sha384WithRsa) return { kind: 'rsa-pkcs1-sha384' };
  if (oid !== OID.rsassaPss) return { kind: 'unsupported', oid, reason: 'not RSASSA-PSS/SHA-384' };
  const params = parts[1];
  if (!params || params.tag !== TAG.SEQUENCE) return { kind: 'unsupported', oid, reason: 'RSASSA-PSS without parameters (SHA-1 defaults)' };
  let hash: string | undefined;
  let mgf: string | undefined;
  let mgfHash: string | undefined;
  let salt: bigint | undefined;
  let trailer = 1n;
  for (const p of children(params)) {
    const [inner] = childrenAtLeast(p, 1, 'RSASSA-PSS-params field');
    switch (p.tag) {
      case 0xa0:
        hash = hashOidOf(inner!);
        break;
      case 0xa1: {
        const mg = childrenAtLeast(expectTag(inner!, TAG.SEQUENCE, 'maskGenAlgorithm'), 2, 'maskGenAlgorithm');
        mgf = decodeOid(mg[0]!);
        mgfHash = hashOidOf(mg[1]!);
        break;
      }
      case 0xa2:
        salt = decodeInteger(inner!);
        break;
      case 0xa3:
        trailer = decodeInteger(inner!);
        break;
      default:
        return { kind: 'unsupported', oid, reason: `unknown RSASSA-PSS field 0x${p.tag.toString(16)}` };
    }
  }
  if (hash !== OID.sha384 || mgf !== OID.mgf1 || mgfHash !== OID.sha384 || salt !== 48n || trailer !== 1n) {
    return {
      kind: 'unsupported',
      oid,
      reason: `RSASSA-PSS hash=${hash ?? 'sha1'} mgf=${mgf ?? 'mgf1'}/${mgfHash ?? 'sha1'} salt=${salt ?? 20n} trailer=${trailer}`,
    };
  }
  return { kind: 'rsa-pss-sha384' };
}

export function sameSigAlg(a: SigAlg, b: SigAlg): boolean {
  return a.kind === b.kind && (a.kind !== 'unsupported' || (b.kind === 'unsupported' && a.oid === b.oid && a.reason === b.reason));
}
