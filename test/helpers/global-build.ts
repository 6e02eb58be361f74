/** Vitest globalSetup: builds dist/ and the child-process fixtures once per run (test/helpers/built.ts). */
import { rmSync } from 'node:fs';
import { buildDist } from '../../tools/build-dist.js';
import { buildFixtures, builtDir } from './built.js';

export default async function setup(): Promise<void> {
  rmSync(builtDir, { recursive: true, force: true });
  await Promise.all([buildDist(), buildFixtures()]);
}
