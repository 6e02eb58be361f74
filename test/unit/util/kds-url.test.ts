/** The one KDS URL builder produces the AMD KDS forms (VCEK/KDS interface spec, pub. 57230). */
import { describe, expect, it } from 'vitest';
import { KDS_BASE_URL, kdsCertChainPath, kdsCrlPath, kdsUrl, kdsVcekPath } from '../../../agent/util/kds-url.js';
import { certChainPath, crlPath, vcekPath } from '../../../agent/collateral/fetch/kds.js';

describe('KDS URLs', () => {
  it('cert_chain and crl for both chains, as absolute URLs', () => {
    expect(kdsUrl(kdsCertChainPath('Milan', 'vcek'))).toBe('https://kdsintf.amd.com/vcek/v1/Milan/cert_chain');
    expect(kdsUrl(kdsCertChainPath('Genoa', 'vlek'))).toBe('https://kdsintf.amd.com/vlek/v1/Genoa/cert_chain');
    expect(kdsUrl(kdsCrlPath('Milan', 'vcek'))).toBe('https://kdsintf.amd.com/vcek/v1/Milan/crl');
    expect(kdsUrl(kdsCrlPath('Turin', 'vlek'))).toBe('https://kdsintf.amd.com/vlek/v1/Turin/crl');
    expect(KDS_BASE_URL).toBe('https://kdsintf.amd.com');
  });

  it('the fetcher uses the same builder and still checks the product', () => {
    expect(certChainPath('Milan', 'vlek')).toBe(kdsCertChainPath('Milan', 'vlek'));
    expect(crlPath('Genoa', 'vcek')).toBe(kdsCrlPath('Genoa', 'vcek'));
    expect(() => crlPath('Milan/../x' as never, 'vcek')).toThrow();
  });

  it('VCEK: 64-byte hwID for Milan, 8 bytes and fmcSPL first for Turin', () => {
    const chip = Buffer.alloc(64, 0xab);
    const tcb = { bootloader: 3, tee: 0, snp: 8, microcode: 115 };
    expect(kdsVcekPath('Milan', chip, tcb)).toBe(`/vcek/v1/Milan/${'ab'.repeat(64)}?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`);
    expect(kdsVcekPath('Turin', chip, { ...tcb, fmc: 1 })).toBe(`/vcek/v1/Turin/${'ab'.repeat(8)}?fmcSPL=1&blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115`);
    expect(vcekPath('Milan', chip, tcb)).toBe(kdsVcekPath('Milan', chip, tcb));
    expect(() => kdsVcekPath('Milan', chip.subarray(0, 8), tcb)).toThrow(/64-byte hwID/);
    expect(() => kdsVcekPath('Milan', chip, { ...tcb, snp: 256 })).toThrow(/not a byte/);
  });
});
