/** The one memo cache: least recently used, bounded in entries and in bytes. */
import { describe, expect, it } from 'vitest';
import { BoundedCache } from '../../../agent/util/bounded-cache.js';

describe('BoundedCache', () => {
  it('evicts the least recently used entry past the entry limit', () => {
    const c = new BoundedCache<number>({ maxEntries: 2, maxBytes: 1000 });
    c.set('a', 1, 1);
    c.set('b', 2, 1);
    expect(c.get('a')).toBe(1); // a is now the most recent
    c.set('c', 3, 1);
    expect(c.get('b')).toBeUndefined();
    expect(c.get('a')).toBe(1);
    expect(c.get('c')).toBe(3);
  });

  it('holds at most maxBytes (keys counted), and never an entry larger than that', () => {
    const c = new BoundedCache<string>({ maxEntries: 100, maxBytes: 100 });
    for (let i = 0; i < 50; i++) c.set(`k${i}`, 'v', 20);
    expect(c.size).toBeLessThanOrEqual(100 / 22);
    expect(c.get('k49')).toBe('v');
    c.set('huge', 'v', 101);
    expect(c.get('huge')).toBeUndefined();
  });

  it('replacing a key does not count it twice', () => {
    const c = new BoundedCache<number>({ maxEntries: 10, maxBytes: 30 });
    c.set('a', 1, 10);
    c.set('b', 2, 10);
    c.set('a', 3, 10);
    expect(c.get('b')).toBe(2);
    expect(c.get('a')).toBe(3);
  });
});
