import { createHash } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type { Redis } from './redis.module';

export type ScriptArgument = string | number | Buffer;

type ScriptCall = (...args: ScriptArgument[]) => Promise<unknown>;
type PipelinedScriptCall = (...args: ScriptArgument[]) => ChainableCommander;

/** Every script made so far: a client defines them all before its first command (see `defineScripts`). */
const everyScript = new Set<RedisScript>();

/**
 * Defines every script made so far on a new client, before it runs anything. Scripts are module
 * constants, made at import. Defined lazily instead, on a first call, a script would be missing from
 * an auto-pipeline made a moment before for the same node: ioredis then throws in the middle of
 * queueing it, and that pipeline's replies no longer match its callers.
 */
export function defineScripts(redis: Redis): void {
  for (const script of everyScript) script.prepare(redis);
}

/**
 * A Lua script called by its SHA1 (EVALSHA), so its body crosses the network
 * once per connection, not with every call: ioredis sends EVAL the first time
 * on each connection (and again after a NOSCRIPT, when Redis restarted or
 * flushed its scripts) and EVALSHA after that, on a server and on every node
 * of a cluster alike. A hot script called with EVAL would ship and hash its
 * whole body per call.
 */
export class RedisScript {
  /** The command it is defined as on a client: one name per script body. */
  private readonly command: string;

  constructor(
    readonly lua: string,
    readonly numberOfKeys: number,
  ) {
    this.command = `sottoScript_${createHash('sha1').update(lua).digest('hex')}`;
    everyScript.add(this);
  }

  private defineOn(redis: Redis): void {
    if (!(this.command in redis)) {
      redis.defineCommand(this.command, { lua: this.lua, numberOfKeys: this.numberOfKeys });
    }
  }

  private check(keys: readonly string[]): void {
    if (keys.length !== this.numberOfKeys) {
      throw new Error(`the script takes ${this.numberOfKeys} keys, given ${keys.length}`);
    }
  }

  /** Runs it; replies as ioredis gives them (bulk strings as strings). */
  run(redis: Redis, keys: readonly string[], args: readonly ScriptArgument[]): Promise<unknown> {
    return this.call(redis, this.command, keys, args);
  }

  /** Runs it; bulk strings in the reply come as Buffers (for binary values). */
  runBuffer(redis: Redis, keys: readonly string[], args: readonly ScriptArgument[]): Promise<unknown> {
    return this.call(redis, `${this.command}Buffer`, keys, args);
  }

  private call(
    redis: Redis,
    command: string,
    keys: readonly string[],
    args: readonly ScriptArgument[],
  ): Promise<unknown> {
    this.check(keys);
    this.defineOn(redis);
    const call = (redis as unknown as Record<string, ScriptCall>)[command];
    if (call === undefined) throw new Error(`the script is not defined on this client`);
    return call.call(redis, ...keys, ...args);
  }

  /**
   * Adds a call to a pipeline of `redis` (made by `redis.pipeline()` after
   * `prepare(redis)`: a pipeline knows the scripts its client had when it was made).
   */
  addTo(pipeline: ChainableCommander, keys: readonly string[], args: readonly ScriptArgument[]): void {
    this.check(keys);
    const call = (pipeline as unknown as Record<string, PipelinedScriptCall | undefined>)[this.command];
    if (call === undefined) throw new Error("the script was not prepared on the pipeline's client");
    call.call(pipeline, ...keys, ...args);
  }

  /** Defines the script on a client, so that its pipelines can carry it. */
  prepare(redis: Redis): void {
    this.defineOn(redis);
  }
}
