/**
 * Secrets the controller released to this attested VM: compact JWEs (alg ECDH-ES+A256KW, enc A256GCM)
 * encrypted to teePubKey, decrypted with the agent key into memory only. The SecretStore never writes
 * to disk and never shows values in logs: JSON.stringify, util.inspect and String() print names only.
 */
import { inspect } from 'node:util';
import { compactDecrypt } from 'jose';
import { CvmError } from '../errors.js';
import type { AgentKey } from './agent-key.js';
import type { SecretEnvelope } from './protocol.js';

export const SECRET_JWE_ALG = 'ECDH-ES+A256KW';
export const SECRET_JWE_ENC = 'A256GCM';
export const MAX_SECRET_BYTES = 64 * 1024;

export class SecretStore {
  readonly #values = new Map<string, { value: Uint8Array; receivedAt: Date; challengeId?: string }>();

  set(name: string, value: Uint8Array, meta: { receivedAt?: Date; challengeId?: string } = {}): void {
    this.#values.get(name)?.value.fill(0);
    const entry: { value: Uint8Array; receivedAt: Date; challengeId?: string } = { value: Uint8Array.from(value), receivedAt: meta.receivedAt ?? new Date() };
    if (meta.challengeId !== undefined) entry.challengeId = meta.challengeId;
    this.#values.set(name, entry);
  }

  /** A copy of the secret (callers may zero it when done), or undefined. */
  get(name: string): Uint8Array | undefined {
    const e = this.#values.get(name);
    return e ? Uint8Array.from(e.value) : undefined;
  }

  has(name: string): boolean {
    return this.#values.has(name);
  }

  names(): string[] {
    return [...this.#values.keys()].sort();
  }

  delete(name: string): boolean {
    const e = this.#values.get(name);
    e?.value.fill(0);
    return this.#values.delete(name);
  }

  /** Zero and forget everything (e.g. when attestation turns contraindicated). */
  clear(): void {
    for (const e of this.#values.values()) e.value.fill(0);
    this.#values.clear();
  }

  get size(): number {
    return this.#values.size;
  }

  toJSON(): { secrets: string[]; values: '[REDACTED]' } {
    return { secrets: this.names(), values: '[REDACTED]' };
  }

  toString(): string {
    return `SecretStore(${this.names().join(', ')}) [values REDACTED]`;
  }

  [inspect.custom](): string {
    return this.toString();
  }
}

/** Decrypt one envelope with the agent key; the JWE header must use exactly the pinned algorithms. */
export async function decryptSecret(envelope: SecretEnvelope, key: AgentKey): Promise<Uint8Array> {
  try {
    const { plaintext } = await compactDecrypt(envelope.jwe, key.agreementKey, {
      keyManagementAlgorithms: [SECRET_JWE_ALG],
      contentEncryptionAlgorithms: [SECRET_JWE_ENC],
    });
    if (plaintext.length > MAX_SECRET_BYTES) throw new CvmError('ERR_SECRET', `secret "${envelope.name}" is larger than ${MAX_SECRET_BYTES} bytes`);
    return plaintext;
  } catch (err) {
    if (err instanceof CvmError) throw err;
    // The jose message names the failed step (header, key unwrap, tag) without any secret material.
    throw new CvmError('ERR_SECRET', `secret "${envelope.name}" could not be decrypted: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Decrypt every envelope; all or nothing (a half-applied release would be confusing), then store.
 * Returns the stored names.
 */
export async function storeSecrets(
  envelopes: readonly SecretEnvelope[],
  key: AgentKey,
  store: SecretStore,
  meta: { challengeId?: string; at?: Date } = {},
): Promise<string[]> {
  const plain = await Promise.all(envelopes.map(async (e) => [e.name, await decryptSecret(e, key)] as const));
  for (const [name, value] of plain) {
    const m: { receivedAt?: Date; challengeId?: string } = {};
    if (meta.at) m.receivedAt = meta.at;
    if (meta.challengeId !== undefined) m.challengeId = meta.challengeId;
    store.set(name, value, m);
    value.fill(0);
  }
  return plain.map(([n]) => n);
}
