/** The named check of a verification result: fails the test, listing the names present, when it is missing. */
import type { Check } from '../../agent/formats/checks.js';

export function findCheck(from: readonly Check[] | { readonly checks: readonly Check[] }, name: string): Check {
  const checks = 'checks' in from ? from.checks : from;
  const c = checks.find((x) => x.name === name);
  if (!c) throw new Error(`no check ${name} in ${checks.map((x) => x.name).join(', ')}`);
  return c;
}
