/**
 * OCSP responses (RFC 6960 BasicOCSPResponse, ECDSA P-384 / SHA-384) built in software, so simulated
 * GPUs have their device chain's revocation really checked instead of skipped. Signed by each
 * certificate's issuer (the simulated CAs); trusted only where the simulated roots are.
 */
import { createHash, sign, type KeyObject } from 'node:crypto';
import { bitString, explicit, generalizedTime, integer, nullValue, octetString, oid, sequence, tlv } from '../util/der-writer.js';
import { parsePemChain } from '../verify/nvidia/device-chain.js';
import type { Certificate } from '../formats/x509/certificate.js';
import type { SimGpuIdentity } from './gpu-sim.js';
import type { SimPpcieSystem } from './switch-sim.js';

const HASH_OIDS = { sha1: '1.3.14.3.2.26', sha384: '2.16.840.1.101.3.4.2.2' } as const;
const HOUR = 3600_000;

export interface OcspResponseSpec {
  cert: Certificate;
  issuer: Certificate;
  signerKey: KeyObject;
  /** DER Name of the responder (byName ResponderID). */
  responderName: Uint8Array;
  status?: 'good' | 'revoked' | 'unknown';
  /** CRLReason for revoked (e.g. 6 = certificateHold). */
  reason?: number;
  /** When the certificate was revoked (default: 10 h before thisUpdate). */
  revokedAt?: Date;
  thisUpdate: Date;
  /** null = no nextUpdate. */
  nextUpdate: Date | null;
  hash?: keyof typeof HASH_OIDS;
  /** Responder certificates to embed (delegated responders). */
  certs?: Buffer[];
}

export function buildOcspResponse(s: OcspResponseSpec): Buffer {
  const h = s.hash ?? 'sha1';
  const certId = sequence(
    sequence(oid(HASH_OIDS[h]), nullValue()),
    octetString(createHash(h).update(s.issuer.subjectDer).digest()),
    octetString(createHash(h).update(s.issuer.publicKeyBits).digest()),
    integer(s.cert.serial),
  );
  const status = s.status ?? 'good';
  const revokedAt = s.revokedAt ?? new Date(s.thisUpdate.getTime() - 10 * HOUR);
  const certStatus =
    status === 'good'
      ? tlv(0x80, Buffer.alloc(0))
      : status === 'unknown'
        ? tlv(0x82, Buffer.alloc(0))
        : tlv(0xa1, Buffer.concat([generalizedTime(revokedAt), ...(s.reason === undefined ? [] : [explicit(0, tlv(0x0a, Buffer.from([s.reason])))])]));
  const single = sequence(certId, certStatus, generalizedTime(s.thisUpdate), ...(s.nextUpdate ? [explicit(0, generalizedTime(s.nextUpdate))] : []));
  const tbs = sequence(explicit(1, s.responderName), generalizedTime(s.thisUpdate), sequence(single));
  const sig = sign('sha384', tbs, s.signerKey);
  const basic = sequence(tbs, sequence(oid('1.2.840.10045.4.3.3')), bitString(sig), ...(s.certs ? [explicit(0, sequence(...s.certs))] : []));
  return sequence(tlv(0x0a, Buffer.from([0])), explicit(0, sequence(oid('1.3.6.1.5.5.7.48.1.1'), octetString(basic))));
}

/**
 * "good" responses for the checked certificates of every simulated GPU chain and, with `system`, every
 * simulated NVSwitch chain (positions 1..n-2, as the verifier checks them), valid from an hour before
 * `at` for a day.
 */
export function simulatedOcspResponses(id: SimGpuIdentity, at: Date, system?: SimPpcieSystem): Buffer[] {
  const out = new Map<string, Buffer>();
  // Each chain with the private keys of its certificates, leaf first (the keys of positions 2.. sign the answers).
  const chains = [
    ...id.gpus.map((gpu) => ({ pem: gpu.chainPem, keys: [gpu.leaf.key, gpu.brom.key, id.ica.key, id.identity.key, id.root.key] })),
    ...(system?.switches ?? []).map((sw) => ({ pem: sw.chainPem, keys: [sw.leaf.key, sw.brom.key, system!.ica.key, id.identity.key, id.root.key] })),
  ];
  for (const { pem, keys } of chains) {
    const chain = parsePemChain(pem);
    for (let i = 1; i < chain.length - 1; i++) {
      const cert = chain[i]!;
      const issuer = chain[i + 1]!;
      const key = `${Buffer.from(issuer.subjectDer).toString('hex')}:${cert.serial}`;
      if (out.has(key)) continue;
      out.set(
        key,
        buildOcspResponse({
          cert,
          issuer,
          signerKey: keys[i + 1]!,
          responderName: issuer.subjectDer,
          thisUpdate: new Date(at.getTime() - HOUR),
          nextUpdate: new Date(at.getTime() + 24 * HOUR),
        }),
      );
    }
  }
  return [...out.values()];
}
