/**
 * Values grouped by key, for keys that nearly always have one value (a
 * device's delivery streams, an account's cached credentials). A lone value
 * is kept as it is and a Set made only once a key has two: a gateway holding
 * tens of thousands of streams would otherwise keep a Set, with its hash
 * table, for each of them.
 */
export class Groups<K, V extends object | string> {
  private readonly byKey = new Map<K, V | Set<V>>();

  add(key: K, value: V): void {
    const current = this.byKey.get(key);
    if (current === undefined) this.byKey.set(key, value);
    else if (current instanceof Set) current.add(value);
    else if (current !== value) this.byKey.set(key, new Set([current, value]));
  }

  delete(key: K, value: V): void {
    const current = this.byKey.get(key);
    if (current === value) {
      this.byKey.delete(key);
    } else if (current instanceof Set) {
      current.delete(value);
      const [only, ...others] = current;
      if (only !== undefined && others.length === 0) this.byKey.set(key, only);
    }
  }

  /** The key's values, as a copy: the caller may delete while it goes through them. */
  get(key: K): V[] {
    const current = this.byKey.get(key);
    if (current === undefined) return [];
    return current instanceof Set ? [...current] : [current];
  }

  clear(): void {
    this.byKey.clear();
  }
}
