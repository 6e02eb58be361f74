/**
 * One driver RIM id derivation. NVIDIA's scheme (C++ SDK nvattest get_driver_rim_id, RIM service ids):
 * Hopper NV_GPU_DRIVER_GH100_<driver>; Blackwell NV_GPU_CC_DRIVER_<CHIP_INFO>_<driver>, and GB100 when
 * the report carries no CHIP_INFO (opaque field 35). The collector/resolver (from the GPU report) and
 * the collateral importer (from a RIM file's product name) must name the same RIM the same way.
 */
import { describe, expect, it } from 'vitest';
import { ParseError } from '../../../../../agent/errors.js';
import { classify } from '../../../../../agent/collateral/classify.js';
import { driverRimId, driverRimIdForProduct } from '../../../../../agent/verify/nvidia/rim/ids.js';
import { vector } from '../../../../helpers/paths.js';

describe('driver RIM id scheme', () => {
  it("Blackwell without CHIP_INFO falls back to GB100, as NVIDIA's SDK does (not an empty chip, not GH100)", () => {
    expect(driverRimId('575.57.08', 'blackwell')).toBe('NV_GPU_CC_DRIVER_GB100_575.57.08');
    expect(driverRimId('575.57.08', 'blackwell', '\0\0')).toBe('NV_GPU_CC_DRIVER_GB100_575.57.08');
  });

  it('Hopper is always GH100 and never the CC_DRIVER form', () => {
    expect(driverRimId('550.90.07', 'hopper', 'GB100')).toBe('NV_GPU_DRIVER_GH100_550.90.07');
  });

  it("the id from a RIM file's product equals the id from the GPU report", () => {
    expect(driverRimIdForProduct('GH100', '550.144.03')).toBe(driverRimId('550.144.03', 'hopper'));
    expect(driverRimIdForProduct('gb100', '595.91.07')).toBe(driverRimId('595.91.07', 'blackwell', 'GB100'));
    expect(driverRimIdForProduct('GB202', '595.91.07')).toBe(driverRimId('595.91.07', 'blackwell', 'GB202'));
  });

  it('a product with no known scheme gets no invented id', () => {
    for (const p of ['GH200', 'AD102', 'H100', '']) expect(() => driverRimIdForProduct(p, '550.90.07')).toThrow(ParseError);
  });

  it('importing the 550.144.03 driver RIM without an id names it by the same scheme', () => {
    const bytes = vector('nvidia/attestation-sdk/rims/NV_GPU_DRIVER_GH100_550.144.03.xml');
    const items = classify(bytes, {});
    const rim = items.find((i) => i.key.kind === 'rim');
    expect(rim?.key).toMatchObject({ kind: 'rim', id: driverRimId('550.144.03', 'hopper') });
  });
});
