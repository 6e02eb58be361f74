/**
 * The one memo cache for pure, costly results (parsed certificates, verified chains and RIMs):
 * least-recently-used, bounded both in entries and in bytes (an estimate the caller gives per entry,
 * key included), so hostile input cannot grow memory without limit.
 */
const every = new Set<BoundedCache<unknown>>();

/** Empty every memo cache in the process (benchmarks' cold rows; results never depend on the caches). */
export function clearAllCaches(): void {
  for (const c of every) c.clear();
}

export class BoundedCache<V> {
  readonly #map = new Map<string, { value: V; bytes: number }>();
  #bytes = 0;

  constructor(private readonly limits: { maxEntries: number; maxBytes: number }) {
    every.add(this as BoundedCache<unknown>);
  }

  get size(): number {
    return this.#map.size;
  }

  get(key: string): V | undefined {
    const hit = this.#map.get(key);
    if (!hit) return undefined;
    this.#map.delete(key);
    this.#map.set(key, hit);
    return hit.value;
  }

  /** Stores `value`; `bytes` is its approximate size. A value over the byte limit on its own is not kept. */
  set(key: string, value: V, bytes: number): void {
    this.delete(key);
    const size = bytes + key.length;
    if (size > this.limits.maxBytes) return;
    this.#map.set(key, { value, bytes: size });
    this.#bytes += size;
    while (this.#map.size > this.limits.maxEntries || this.#bytes > this.limits.maxBytes) {
      this.delete(this.#map.keys().next().value!);
    }
  }

  delete(key: string): void {
    const old = this.#map.get(key);
    if (!old) return;
    this.#map.delete(key);
    this.#bytes -= old.bytes;
  }

  clear(): void {
    this.#map.clear();
    this.#bytes = 0;
  }
}
