/**
 * The one reader of the YAML (and JSON, which is YAML) files an operator writes: the agent config, the
 * controller config and the policy files. Strict: size-bounded, aliases bounded, duplicate keys
 * rejected, and warnings (unknown tags, ...) treated as errors: nothing in a security daemon's config
 * is ignored silently. Every failure, including the parser's own (deep nesting, an alias bomb), is a
 * one-line ConfigError, never a stack trace.
 */
import { isNode, isScalar, isSeq, LineCounter, parseDocument, visit, type Document, type Scalar } from 'yaml';
import { ConfigError } from '../errors.js';
import { INPUT_LIMITS } from '../util/bounded-read.js';
import { typeName } from './validate.js';

export const MAX_CONFIG_BYTES = INPUT_LIMITS.config.bytes;

/**
 * Aliases a document may expand. Configs and policies have no need for many; the bound is what stops
 * a "billion laughs" document (nested aliases that expand exponentially) from exhausting memory.
 */
export const MAX_YAML_ALIASES = 100;

/**
 * prettyErrors adds a source excerpt below the first line; the first line (with line and column) is
 * enough. Recursion exhausted by deep indentation is reported as what it is.
 */
const oneLine = (s: string) =>
  s
    .split('\n')[0]!
    .trim()
    .replace(/:$/, '')
    .replace(/^Maximum call stack size exceeded/, 'nested too deeply');

/**
 * Nesting the parser is asked to build. The yaml package keeps a stack entry per level, so 1 MiB of
 * "[[[[..." or "- - - ..." would cost hundreds of MB (and overflow the composer's recursion) before any
 * error; no config or policy nests deeper than a handful of levels. Nesting by indentation needs no
 * check: depth d costs about d squared bytes, so the size cap bounds it to about a thousand levels.
 */
export const MAX_YAML_NESTING = 64;

/**
 * A cheap scan of the raw text before parsing, for the two kinds of nesting that cost one or two
 * bytes a level: flow collections ("[", "{") and compact block indicators at the start of a line
 * ("- - - x", "? ? x"). It counts brackets without parsing quotes, so it may over-count a file with
 * dozens of unmatched brackets inside strings: such a file is refused, which is the safe direction.
 */
function checkNesting(text: string, source: string): void {
  let depth = 0;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) {
      if (++depth > MAX_YAML_NESTING) throw new ConfigError(`${source}: nested more than ${MAX_YAML_NESTING} levels deep at line ${line}`);
    } else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
    else if (c === 0x0a) line++;
  }
  const compact = /^[ \t]*(?:[-?:](?:[ \t]+|$))+/gm;
  for (const m of text.matchAll(compact)) {
    if ((m[0].match(/[-?:]/g)?.length ?? 0) > MAX_YAML_NESTING) {
      throw new ConfigError(`${source}: nested more than ${MAX_YAML_NESTING} levels deep at line ${text.slice(0, m.index).split('\n').length}`);
    }
  }
}

/**
 * Duplicate keys, checked in one pass with a set per mapping (the yaml package's own uniqueKeys check
 * compares every pair: 60,000 keys took half a minute). Keys compare as the strings they become in
 * JS, so `1` and `"1"` are duplicates too, and only scalar keys are accepted.
 */
function checkKeys(doc: Document.Parsed, lines: LineCounter, source: string): void {
  const where = (node: { range?: [number, number, number] | null }) => {
    const pos = node.range ? lines.linePos(node.range[0]) : undefined;
    return pos ? ` at line ${pos.line}, column ${pos.col}` : '';
  };
  visit(doc, {
    Map(_, map) {
      const seen = new Set<string>();
      for (const pair of map.items) {
        const key = pair.key;
        if (!isScalar(key))
          throw new ConfigError(`${source}: not valid YAML: a mapping key must be a plain value, not a collection${where(isNode(key) ? key : map)}`);
        const name = key.value === null ? '' : String(key.value);
        if (seen.has(name)) throw new ConfigError(`${source}: not valid YAML: duplicate key "${name}"${where(key)}`);
        seen.add(name);
      }
    },
  });
}

/** Parse YAML text to a Document (not yet converted to JS); throws ConfigError. */
export function parseYamlDocument(text: string, source: string, options: { keepSourceTokens?: boolean } = {}): Document.Parsed {
  if (Buffer.byteLength(text, 'utf8') > MAX_CONFIG_BYTES) throw new ConfigError(`${source}: larger than the 1 MiB limit`);
  checkNesting(text, source);
  const lines = new LineCounter();
  let doc: Document.Parsed;
  try {
    doc = parseDocument(text, { prettyErrors: true, logLevel: 'silent', uniqueKeys: false, strict: true, lineCounter: lines, ...options });
    const problems = [...doc.errors, ...doc.warnings];
    if (problems.length > 0) throw problems[0];
  } catch (err) {
    throw new ConfigError(`${source}: not valid YAML: ${oneLine((err as Error).message)}`, { cause: err });
  }
  // A %YAML 1.1 directive would switch to YAML 1.1 rules (yes/no booleans, "<<" merge keys).
  if (doc.directives?.yaml.explicit && doc.directives.yaml.version !== '1.2')
    throw new ConfigError(`${source}: YAML ${doc.directives.yaml.version} directive not accepted: files are YAML 1.2`);
  checkKeys(doc, lines, source);
  return doc;
}

/** A parsed Document to plain JS, with aliases bounded; throws ConfigError. */
export function yamlDocumentToJs(doc: Document.Parsed, source: string): unknown {
  try {
    return doc.toJS({ maxAliasCount: MAX_YAML_ALIASES });
  } catch (err) {
    const msg =
      err instanceof ReferenceError && /alias/i.test(err.message)
        ? `too many YAML aliases (more than ${MAX_YAML_ALIASES} expansions)`
        : oneLine((err as Error).message);
    throw new ConfigError(`${source}: not valid YAML: ${msg}`, { cause: err });
  }
}

export function readYaml(text: string, source: string): unknown {
  return yamlDocumentToJs(parseYamlDocument(text, source), source);
}

/**
 * An explicitly configured file that must hold a mapping (a policy): an empty or comment-only
 * document, null, a scalar or a list is a ConfigError, never "no settings". `{}` is the explicit
 * way to ask for every default.
 */
export function requireMapping(doc: Document.Parsed, value: unknown, source: string): Record<string, unknown> {
  if (doc.contents === null)
    throw new ConfigError(`${source}: empty (only comments or whitespace): a policy must be a mapping of keys; write {} to mean every default`);
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new ConfigError(`${source}: must be a mapping of keys, got ${typeName(value)}`);
  return value as Record<string, unknown>;
}

/**
 * YAML resolves unquoted digests like 0xab.. or 0123.. to numbers (losing digits): take a plain
 * scalar as its source text so an unquoted digest means what it says.
 */
function keepAsText(scalar: Scalar): void {
  if (typeof scalar.value !== 'string' && typeof scalar.source === 'string') scalar.value = scalar.source;
}

/**
 * A file that must hold a mapping (a policy) to plain JS: bounded like every document here, and
 * anything but a mapping is a ConfigError (requireMapping). Scalars under a key in `textKeys`, alone
 * or in a list, are taken as their source text (keepAsText), at any depth.
 */
export function readYamlMapping(text: string, source: string, opts: { textKeys?: ReadonlySet<string> } = {}): Record<string, unknown> {
  const textKeys = opts.textKeys;
  const doc = parseYamlDocument(text, source, textKeys ? { keepSourceTokens: true } : {});
  if (textKeys) {
    visit(doc, {
      Pair(_, pair) {
        if (!isScalar(pair.key) || !textKeys.has(String(pair.key.value))) return;
        if (isScalar(pair.value)) keepAsText(pair.value);
        else if (isSeq(pair.value)) for (const item of pair.value.items) if (isScalar(item)) keepAsText(item);
      },
    });
  }
  return requireMapping(doc, yamlDocumentToJs(doc, source), source);
}
