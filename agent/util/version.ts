/** The agent's version, reported in EAR verifier-id, hello messages and --version. */
export const VERSION = '0.1.0';
