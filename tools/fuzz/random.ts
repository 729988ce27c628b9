/**
 * A seeded pseudo-random generator (sfc32): the same seed makes the same
 * run of inputs, so a fuzz run can be repeated. Not for secrets.
 */
export class Random {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: number) {
    this.a = 0x9e3779b9;
    this.b = 0x243f6a88;
    this.c = 0xb7e15162;
    this.d = seed >>> 0;
    for (let i = 0; i < 15; i++) this.uint32();
  }

  /** A uniformly distributed 32-bit unsigned integer. */
  uint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0;
    this.d = (this.d + 1) | 0;
    this.a = this.b ^ (this.b >>> 9);
    this.b = (this.c + (this.c << 3)) | 0;
    this.c = (this.c << 21) | (this.c >>> 11);
    this.c = (this.c + t) | 0;
    return t >>> 0;
  }

  /** In [0, 1). */
  next(): number {
    return this.uint32() / 4294967296;
  }

  /** An integer in [0, n). */
  below(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** An integer in [min, max], both included. */
  between(min: number, max: number): number {
    return min + this.below(max - min + 1);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('pick from nothing');
    return items[this.below(items.length)];
  }

  /** One of `choices`, each as likely as its weight. */
  weighted<T>(choices: readonly (readonly [T, number])[]): T {
    const total = choices.reduce((sum, [, weight]) => sum + weight, 0);
    let point = this.next() * total;
    for (const [value, weight] of choices) {
      point -= weight;
      if (point < 0) return value;
    }
    const last = choices[choices.length - 1];
    if (last === undefined) throw new Error('weighted pick from nothing');
    return last[0];
  }

  /**
   * `length` random bytes; past 64 KiB, a random 64 KiB pattern repeated
   * (as hostile to a parser, and much cheaper to make).
   */
  bytes(length: number): Buffer {
    const pattern = Buffer.allocUnsafe(Math.min(length, 65536));
    for (let i = 0; i < pattern.length; i += 4) {
      const word = this.uint32();
      for (let j = 0; j < 4 && i + j < pattern.length; j++) pattern[i + j] = (word >>> (8 * j)) & 0xff;
    }
    if (pattern.length === length) return pattern;
    const out = Buffer.allocUnsafe(length);
    for (let offset = 0; offset < length; offset += pattern.length) pattern.copy(out, offset);
    return out;
  }

  /** A length that is usually small and sometimes large: 0..max with a long tail. */
  length(max: number): number {
    const scale = this.pick([8, 64, 512, 4096, max]);
    return this.below(Math.min(scale, max) + 1);
  }
}
