/**
 * CPU evidence sources: each turns 64 bytes of REPORT_DATA into CpuEvidence. They collect only;
 * they never verify (docs/architecture.md layers). Certificates come from the host's GHCB cert table when it
 * has one; otherwise the verifier takes the VCEK from collateral.
 */
import { existsSync } from 'node:fs';
import { parseCertTable } from '../formats/snp-abi/index.js';
import { SnpDeviceCollector } from '../evidence/snp-device.js';
import { ConfigfsTsmCollector } from '../evidence/configfs-tsm.js';
import type { CpuEvidence } from '../formats/evidence-bundle.js';
import { isAllZero } from '../util/bytes.js';
import { TpmClient } from '../evidence/tpm/tpm-client.js';
import { DeviceTransport } from '../evidence/tpm/transport.js';
import { collectAzureVtpmEvidence } from '../evidence/azure-vtpm.js';
import type { AzureVtpmEvidence } from '../formats/azure/evidence-formats.js';

export interface CpuSource {
  readonly source: CpuEvidence['source'];
  readonly simulated: boolean;
  collect(reportData: Buffer): Promise<CpuEvidence>;
}

/** VCEK/VLEK (and ASK/ARK) DER from a cert table; an empty or all-zero table means "none supplied". */
export function certsFromTable(table: Buffer | undefined): Buffer[] {
  if (!table || table.length === 0 || isAllZero(table)) return [];
  return parseCertTable(table)
    .filter((e) => e.kind === 'vcek' || e.kind === 'vlek' || e.kind === 'ask' || e.kind === 'asvk' || e.kind === 'ark')
    .map((e) => Buffer.from(e.data));
}

export class SevGuestSource implements CpuSource {
  readonly source = 'sev-guest' as const;
  readonly simulated = false;
  readonly #collector: SnpDeviceCollector;
  constructor(devicePath: string) {
    this.#collector = new SnpDeviceCollector({ devicePath });
  }
  async collect(reportData: Buffer): Promise<CpuEvidence> {
    const { report, certTable } = await this.#collector.getExtReport(reportData, 0);
    return { kind: 'snp', source: this.source, report, certificates: certsFromTable(certTable) };
  }
}

export class TsmSource implements CpuSource {
  readonly source = 'configfs-tsm' as const;
  readonly simulated = false;
  readonly #collector: ConfigfsTsmCollector;
  constructor(root: string) {
    this.#collector = new ConfigfsTsmCollector({ root });
  }
  async collect(reportData: Buffer): Promise<CpuEvidence> {
    const r = await this.#collector.getReport(reportData, { withCerts: true });
    return { kind: 'snp', source: this.source, report: r.report, certificates: certsFromTable(r.certTable) };
  }
}

/**
 * Azure CVM (paravisor): the 64 bytes go into the HCL user data (NV 0x01400002) and SHA-256 of them into
 * the vTPM quote's qualifying data; the HCL report binds the AK that signs the quote (docs/architecture.md "One attestation cycle").
 */
export class AzureVtpmSource implements CpuSource {
  readonly source = 'azure-vtpm' as const;
  readonly simulated: boolean;
  constructor(
    private readonly openClient: () => Promise<TpmClient>,
    opts: { simulated?: boolean } = {},
  ) {
    this.simulated = opts.simulated ?? false;
  }
  static forDevice(path: string): AzureVtpmSource {
    return new AzureVtpmSource(async () => new TpmClient(await DeviceTransport.open(path)));
  }
  async collect(reportData: Buffer): Promise<CpuEvidence> {
    const client = await this.openClient();
    try {
      return cpuEvidenceOfAzure(await collectAzureVtpmEvidence(client, { binding: reportData }));
    } finally {
      await client.transport.close?.();
    }
  }
}

/** The collector's bytes as the bundle carries them: the HCL report is `cpu.report`, the quote as it is. */
export function cpuEvidenceOfAzure(e: AzureVtpmEvidence): CpuEvidence {
  return { kind: 'azure-snp-vtpm', source: 'azure-vtpm', report: e.hclReport, certificates: [], quote: e.quote };
}

/** `tee: auto`: the SEV-SNP guest device, else configfs-tsm; undefined when neither exists. */
export function detectCpuSource(paths: { sevGuest: string; tsmRoot: string }): CpuSource | undefined {
  if (existsSync(paths.sevGuest)) return new SevGuestSource(paths.sevGuest);
  if (existsSync(paths.tsmRoot)) return new TsmSource(paths.tsmRoot);
  return undefined;
}
