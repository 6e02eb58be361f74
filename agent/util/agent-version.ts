import { packageVersion } from './package-version.js';

/** The agent's version (package.json), reported in EAR verifier-id, hello messages and --version. */
export const VERSION = packageVersion();
