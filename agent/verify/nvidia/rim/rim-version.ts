/**
 * RIM version match (nvtrust verifier/rim/__init__.py; attestation-sdk src/gpu/verify.cpp): Meta@colloquialVersion must equal
 * the driver version (opaque field 3) or the formatted VBIOS version (opaque field 6) of the report.
 * nvtrust only warns but then requires it in check_status(); the C++ SDK makes it a hard error, and so
 * do we. VBIOS versions compare case-insensitively (nvtrust lower-cases both sides).
 */
import { fail, pass, type Check } from '../../../formats/checks.js';
import type { Rim } from './rim-types.js';

export function checkRimVersion(rim: Rim, kind: 'driver' | 'vbios', reportVersion: string): Check {
  const name = `rim.${kind}.version`;
  const norm = (v: string) => (kind === 'vbios' ? v.trim().toUpperCase() : v.trim());
  return norm(rim.colloquialVersion) === norm(reportVersion)
    ? pass(name, `${kind} RIM version ${rim.colloquialVersion} matches the report`)
    : fail(name, `${kind} RIM is for version ${rim.colloquialVersion} but the report says ${reportVersion}: fetch the RIM for ${reportVersion}`);
}
