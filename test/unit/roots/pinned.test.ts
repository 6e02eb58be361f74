/** The embedded-root loader: the DER fingerprint is asserted before anything is trusted or cached. */
import { describe, expect, it } from 'vitest';
import { createHash } from 'node:crypto';
import { CvmError } from '../../../agent/errors.js';
import { lazyPinnedRoot, loadPinnedPem } from '../../../agent/roots/pinned.js';
import { NVIDIA_DEVICE_ROOT_PEM, NVIDIA_DEVICE_ROOT_SHA256, nvidiaDeviceRoot } from '../../../agent/roots/nvidia-device.js';
import { NVIDIA_RIM_ROOT_PEM, nvidiaRimRoot } from '../../../agent/roots/nvidia-rim.js';
import { vector } from '../../helpers/paths.js';

describe('pinned roots', () => {
  it('loads an embed whose DER hashes to the pinned value, byte-identical to the nvtrust file', () => {
    const c = loadPinnedPem(NVIDIA_DEVICE_ROOT_PEM, NVIDIA_DEVICE_ROOT_SHA256, () => new Error('unexpected'));
    expect(c.sha256).toBe(NVIDIA_DEVICE_ROOT_SHA256);
    expect(createHash('sha256').update(c.der).digest('hex')).toBe(NVIDIA_DEVICE_ROOT_SHA256);
    expect(c.x509.subject).toContain('NVIDIA Device Identity CA');
    expect(nvidiaDeviceRoot().der.equals(c.der)).toBe(true);
    expect(nvidiaDeviceRoot()).toBe(nvidiaDeviceRoot()); // parsed once
  });

  it('a fingerprint mismatch throws the caller-built error with the digest it found', () => {
    expect(() => loadPinnedPem(NVIDIA_RIM_ROOT_PEM, '00'.repeat(32), (got) => new Error(`got ${got}`))).toThrow(
      `got ${createHash('sha256').update(nvidiaRimRoot().der).digest('hex')}`,
    );
  });

  it('lazyPinnedRoot fails closed with ERR_PINNED_ROOT on every call and never caches a bad embed', () => {
    const bad = lazyPinnedRoot('test root', NVIDIA_RIM_ROOT_PEM, 'ff'.repeat(32));
    for (let i = 0; i < 2; i++) {
      let err: unknown;
      try {
        bad();
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(CvmError);
      expect((err as CvmError).code).toBe('ERR_PINNED_ROOT');
      expect((err as Error).message).toMatch(/^embedded test root has SHA-256 [0-9a-f]{64}, expected f{64}$/);
    }
  });

  it('the RIM root embed matches the nvtrust verifier_RIM_root.pem vector', () => {
    const file = vector('nvidia/nvtrust/roots/verifier_RIM_root.pem').toString('latin1');
    expect(
      loadPinnedPem(file, createHash('sha256').update(nvidiaRimRoot().der).digest('hex'), () => new Error('differs')).der.equals(nvidiaRimRoot().der),
    ).toBe(true);
  });
});
