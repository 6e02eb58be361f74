/** `cvm-agent verify snp` in-process: exit codes 0/1/2/3, the --json shape, hex reports, cert tables. */
import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { main } from '../../../agent/cli/main.js';
import type { CliIO } from '../../../agent/cli/command.js';
import { vectorsDir, vector, FC_RUNS } from '../../helpers/paths.js';
import { certificatesFromBytes, classifyCertificates } from '../../../agent/verify/snp/cert-input.js';
import { parseCrl } from '../../../agent/verify/snp/crl.js';
import { parseCertificate } from '../../../agent/formats/x509/certificate.js';
import { CvmError } from '../../../agent/errors.js';
import { makeSimSnpChain, simCrl } from '../../helpers/snp-sim-chain.js';
import { pointOffCurve, spkiOffset, truncatedSpki, unknownKeyAlgorithm } from '../../helpers/damaged-cert.js';

const snp = (f: string) => join(vectorsDir, 'snp', f);
const AT = ['--at', '2025-06-01T00:00:00Z'];

async function run(args: string[]) {
  let stdout = '';
  let stderr = '';
  const io: CliIO = { stdout: { write: (s: string) => (stdout += s) }, stderr: { write: (s: string) => (stderr += s) }, env: {}, cwd: tmp };
  const code = await main(['verify', 'snp', ...args], io);
  return { code, stdout, stderr };
}

let tmp: string;
beforeAll(() => {
  tmp = mkdtempSync(join(tmpdir(), 'cli-verify-snp-'));
  writeFileSync(join(tmp, 'vlek-policy.yaml'), 'vmpl: [1]\n');
  writeFileSync(join(tmp, 'bad-policy.yaml'), 'vmpls: [1]\n');
  writeFileSync(join(tmp, 'short.bin'), vector('snp/trustee_snp_test-report.bin').subarray(0, 1000));
  writeFileSync(join(tmp, 'garbage.pem'), 'hello');
  writeFileSync(join(tmp, 'hcl-snp.bin'), vector('snp/trustee_az-snp-vtpm_hcl-report.bin').subarray(0x20, 0x20 + 0x4a0));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('cvm-agent verify snp', () => {
  it('--help lists options and exit codes', async () => {
    const r = await run(['--help']);
    expect(r.code).toBe(0);
    for (const s of ['--report', '--cert', '--crl', '--report-data', '--at', '--policy', '--allow-debug', '--json', 'Exit codes', '3  verified with warnings'])
      expect(r.stdout).toContain(s);
  });

  it('exit 3 (warnings only: no CRL) for a real report, readable table', async () => {
    const r = await run(['--report', snp('trustee_snp_test-report.bin'), '--cert', snp('trustee_snp_test-vcek.der'), ...AT]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(3);
    expect(r.stdout).toMatch(/^SEV-SNP attestation: WARNING/);
    expect(r.stdout).toMatch(/✔ snp\.signature\s+ECDSA/);
    expect(r.stdout).toMatch(/⚠ snp\.revocation\s+revocation not checked/);
  });

  it('hex report file (virtee) verifies', async () => {
    const r = await run(['--report', snp('virtee_report_milan.hex'), '--cert', snp('virtee_vcek_milan.der'), ...AT]);
    expect(r.code).toBe(3);
  });

  it('GHCB cert table as --cert (VCEK+ASK+ARK): chain accepted, signature of another chip rejected', async () => {
    const r = await run([
      '--report',
      snp('trustee_snp_test-report.bin'),
      '--cert',
      snp('synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin'),
      ...AT,
      '--json',
    ]);
    const out = JSON.parse(r.stdout);
    const by = Object.fromEntries(out.checks.map((c: { name: string }) => [c.name, c]));
    expect(by['snp.chain.ask'].ok).toBe(true);
    expect(by['snp.chain.ark'].ok).toBe(true);
    expect(by['snp.signature'].ok).toBe(false); // the table's VCEK is another Milan chip's
    expect(r.code).toBe(1);
  });

  it('cert table decoding: all three synthetic tables give VCEK, ASK, ARK', () => {
    for (const f of [
      'synthetic_certtable_gcp_milan_rfc4122.bin',
      'synthetic_certtable_gcp_milan_rfc4122_pagepadded.bin',
      'synthetic_certtable_gcp_milan_mixedendian_guid.bin',
    ]) {
      const roles = classifyCertificates(certificatesFromBytes(vector(`snp/${f}`))).map((c) => c.role);
      expect(roles.sort()).toEqual(['ark', 'ask', 'vcek']);
    }
  });

  it('exit 1 for DEBUG=1 without --allow-debug; --allow-debug accepts it (exit 3)', async () => {
    const debug = await run(['--report', snp('gosevguest_attestation.bin'), '--cert', snp('gosevguest_vcek.der'), ...AT]);
    expect(debug.code).toBe(1);
    expect(debug.stdout).toMatch(/✘ snp\.policy\.debug/);
    const allowed = await run(['--report', snp('gosevguest_attestation.bin'), '--cert', snp('gosevguest_vcek.der'), ...AT, '--allow-debug']);
    expect(allowed.code).toBe(3);
  });

  it('exit 0: affirming (simulator chain via --sim-roots plus a fresh CRL signed by its ARK)', async () => {
    const sim = makeSimSnpChain();
    writeFileSync(join(tmp, 'sim-report.bin'), sim.report);
    writeFileSync(join(tmp, 'sim-vcek.der'), sim.vcek);
    writeFileSync(
      join(tmp, 'sim-roots.pem'),
      [sim.ark, sim.ask].map((d) => `-----BEGIN CERTIFICATE-----\n${d.toString('base64')}\n-----END CERTIFICATE-----\n`).join(''),
    );
    writeFileSync(join(tmp, 'sim.crl'), simCrl(sim));
    const simAt = ['--at', '2026-03-01T00:00:00Z'];
    const ok = await run(['--report', 'sim-report.bin', '--cert', 'sim-vcek.der', '--crl', 'sim.crl', '--sim-roots', 'sim-roots.pem', ...simAt]);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^SEV-SNP attestation: AFFIRMING \(SIMULATED\)/);
    const json = JSON.parse(
      (await run(['--report', 'sim-report.bin', '--cert', 'sim-vcek.der', '--crl', 'sim.crl', '--sim-roots', 'sim-roots.pem', ...simAt, '--json'])).stdout,
    );
    expect(json).toMatchObject({ ok: true, status: 'affirming', simulated: true });
    // without --sim-roots the same evidence is not trusted
    const untrusted = await run(['--report', 'sim-report.bin', '--cert', 'sim-vcek.der', '--crl', 'sim.crl', ...simAt]);
    expect(untrusted.code).toBe(1);
    expect(untrusted.stdout).toMatch(/✘ snp\.chain\.ask/);
  });

  it('VLEK report with a policy file allowing VMPL 1 → exit 3', async () => {
    const r = await run([
      '--report',
      snp('trustee_snp_test-vlek-report.bin'),
      '--cert',
      snp('trustee_snp_test-vlek.der'),
      ...AT,
      '--policy',
      join(tmp, 'vlek-policy.yaml'),
      '--json',
    ]);
    const out = JSON.parse(r.stdout);
    expect(out.status).toBe('warning');
    expect(r.code).toBe(3);
  });

  it('--json prints exactly one object with the documented shape', async () => {
    const r = await run(['--report', join(tmp, 'hcl-snp.bin'), '--cert', snp('trustee_az-snp-vtpm_vcek.pem'), ...AT, '--json', '--report-data', 'ff']);
    const out = JSON.parse(r.stdout);
    expect(Object.keys(out)).toEqual(['ok', 'status', 'simulated', 'report', 'checks', 'input']);
    expect(out.ok).toBe(false);
    expect(out.status).toBe('contraindicated');
    expect(out.simulated).toBe(false);
    expect(out.report.version).toBe(2);
    expect(out.report.reportData).toMatch(/^[0-9a-f]{128}$/);
    for (const c of out.checks) {
      expect(Object.keys(c).sort()).toEqual(c.warning ? ['detail', 'name', 'ok', 'warning'] : ['detail', 'name', 'ok']);
    }
    expect(out.checks.find((c: { name: string }) => c.name === 'snp.report-data').ok).toBe(false);
    expect(r.code).toBe(1);
  });

  it('real Turin v5 with PLATFORM_INFO bit 6 set (0x65) verifies: the bit is informational, named in snp.reserved', async () => {
    const r = await run([
      '--report',
      snp('msteeav_turin_attestation_report.bin'),
      '--cert',
      snp('msteeav_turin_vcek.pem'),
      '--at',
      '2026-03-01T00:00:00Z',
      '--json',
    ]);
    const out = JSON.parse(r.stdout);
    expect(r.code).toBe(3);
    expect(out.status).toBe('warning');
    expect(out.report.platformInfo).toMatchObject({
      raw: '0x0000000000000065',
      smtEnabled: true,
      eccEnabled: true,
      aliasCheckComplete: true,
      undefinedBits: '0x0000000000000040',
    });
    const reserved = out.checks.find((c: { name: string }) => c.name === 'snp.reserved');
    expect(reserved.ok).toBe(true);
    expect(reserved.warning).toBeUndefined();
    expect(reserved.detail).toMatch(/PLATFORM_INFO bit\(s\) 6 set, not defined by SNP ABI rev 1\.58/);
    expect(out.checks.filter((c: { ok: boolean }) => !c.ok)).toEqual([]);
  });

  it('Turin v5 mutated to PLATFORM_INFO 0x67 (synthetic): claims decode, snp.reserved passes, only the signature fails', async () => {
    const b = Buffer.from(vector('snp/msteeav_turin_attestation_report.bin'));
    b.writeBigUInt64LE(0x67n, 0x40);
    writeFileSync(join(tmp, 'turin-0x67.bin'), b);
    const r = await run(['--report', 'turin-0x67.bin', '--cert', snp('msteeav_turin_vcek.pem'), '--at', '2026-03-01T00:00:00Z', '--json']);
    const out = JSON.parse(r.stdout);
    expect(r.code).toBe(1);
    expect(out.report.platformInfo).toMatchObject({ raw: '0x0000000000000067', tsmeEnabled: true, undefinedBits: '0x0000000000000040' });
    expect(out.checks.filter((c: { ok: boolean }) => !c.ok).map((c: { name: string }) => c.name)).toEqual(['snp.signature']);
  });

  it('exit 1: wrong VCEK; VLEK outside validity', async () => {
    expect((await run(['--report', snp('trustee_snp_test-report.bin'), '--cert', snp('azure_certs.pem'), ...AT])).code).toBe(1);
    const vlek = await run([
      '--report',
      snp('trustee_snp_test-vlek-report.bin'),
      '--cert',
      snp('trustee_snp_test-vlek.der'),
      '--at',
      '2026-01-01T00:00:00Z',
      '--policy',
      join(tmp, 'vlek-policy.yaml'),
    ]);
    expect(vlek.code).toBe(1);
    expect(vlek.stdout).toMatch(/✘ snp\.cert\.validity/);
  });

  const usageCases: Array<[string, string[], RegExp]> = [
    ['missing --report', [], /--report FILE is required/],
    ['unknown option', ['--report', 'x', '--bogus'], /bogus/],
    ['unreadable report', ['--report', 'does-not-exist.bin'], /cannot read report/],
    ['truncated report', ['--report', 'short.bin'], /expected a raw 1184-byte report/],
    ['garbage cert file', ['--report', snp('trustee_snp_test-report.bin'), '--cert', 'garbage.pem'], /certificate file/],
    ['bad --at', ['--report', snp('trustee_snp_test-report.bin'), '--at', 'yesterday'], /--at/],
    ['bad --report-data', ['--report', snp('trustee_snp_test-report.bin'), '--report-data', 'xyz'], /report-data/],
    ['bad policy key', ['--report', snp('trustee_snp_test-report.bin'), '--policy', 'bad-policy.yaml'], /"vmpls": unknown key/],
    ['garbage CRL', ['--report', snp('trustee_snp_test-report.bin'), '--crl', 'garbage.pem'], /CRL/],
    ['sim roots file without an ARK', ['--report', snp('trustee_snp_test-report.bin'), '--sim-roots', snp('trustee_snp_test-vcek.der')], /ARK-<product>/],
    ['report is a TDX HCL blob', ['--report', snp('azuretools_snp_hcl_report_ACTUALLY_TDX.bin')], /1184/],
  ];
  for (const [label, args, msg] of usageCases) {
    it(`exit 2: ${label}`, async () => {
      const r = await run(args);
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(msg);
      expect(r.stdout).toBe('');
    });
  }
});

describe('a damaged VCEK is a failed named check, not an abort', () => {
  const vcek = vector('snp/trustee_snp_test-vcek.der');
  const report = snp('trustee_snp_test-report.bin');
  const damaged: Array<[string, Buffer]> = [
    ['EC point off the curve', pointOffCurve(vcek)],
    ['truncated SPKI (lengths re-encoded)', truncatedSpki(vcek, 7)],
    ['unknown key algorithm OID', unknownKeyAlgorithm(vcek)],
  ];
  it.each(damaged)('%s: exit 1, --json names snp.cert.endorsement-key', async (_label, der) => {
    classifyCertificates([der]); // the DER still parses: only the key is broken
    writeFileSync(join(tmp, 'damaged-vcek.der'), der);
    const r = await run(['--report', report, '--cert', 'damaged-vcek.der', ...AT, '--json']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('');
    const out = JSON.parse(r.stdout);
    const key = out.checks.find((c: { name: string }) => c.name === 'snp.cert.endorsement-key');
    expect(key.ok).toBe(false);
    expect(key.detail).toMatch(/VCEK public key is unusable/);
    expect(out.checks.find((c: { name: string }) => c.name === 'snp.signature').ok).toBe(false);
  });

  it('random single-byte corruptions inside the SPKI: once the certificate parses, never exit 2 or 70 (fast-check)', async () => {
    const from = spkiOffset(vcek);
    const len = parseCertificate(vcek).spki.length;
    await fc.assert(
      fc.asyncProperty(fc.nat(len - 1), fc.integer({ min: 1, max: 255 }), async (i, x) => {
        const der = Buffer.from(vcek);
        der[from + i]! ^= x;
        try {
          classifyCertificates([der]);
        } catch (err) {
          if (err instanceof CvmError) return; // did not parse: exit 2 is right
          throw err;
        }
        writeFileSync(join(tmp, 'flipped-vcek.der'), der);
        const r = await run(['--report', report, '--cert', 'flipped-vcek.der', ...AT, '--json']);
        expect(r.code, r.stderr).toBe(1);
        expect(JSON.parse(r.stdout).checks.some((c: { ok: boolean }) => !c.ok)).toBe(true);
      }),
      { numRuns: Math.min(FC_RUNS, 2000) },
    );
  }, 120_000);
});

describe('binary parsers throw only typed errors (fast-check)', () => {
  const typed = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      if (!(err instanceof CvmError)) throw err;
    }
  };
  const vcek = vector('snp/trustee_snp_test-vcek.der');

  it('parseCertificate / certificatesFromBytes on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 300 }), (b) => {
        typed(() => parseCertificate(b));
        typed(() => certificatesFromBytes(b));
        typed(() => parseCrl(b));
      }),
      { numRuns: FC_RUNS },
    );
  });

  it('parseCertificate on mutated real VCEKs', () => {
    fc.assert(
      fc.property(fc.nat(vcek.length - 1), fc.integer({ min: 1, max: 255 }), (i, x) => {
        const b = Buffer.from(vcek);
        b[i]! ^= x;
        typed(() => classifyCertificates([b]));
      }),
      { numRuns: FC_RUNS },
    );
  });
});
