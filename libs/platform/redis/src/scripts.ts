import { createHash } from 'node:crypto';
import type { ChainableCommander } from 'ioredis';
import type { Redis } from './redis.module';

export type ScriptArgument = string | number | Buffer;

type ScriptCall = (...args: ScriptArgument[]) => Promise<unknown>;
type PipelinedScriptCall = (...args: ScriptArgument[]) => ChainableCommander;

/** Every script made so far: `defineScripts` defines them all on a client for its pipelines. */
const everyScript = new Set<RedisScript>();

/**
 * Defines every script made so far on a client, so that pipelines made from it afterwards
 * (`redis.pipeline()`) can carry them (see `addTo`). Scripts are module constants, made at import.
 * `run` needs none of this: it works on any client, prepared or not.
 */
export function defineScripts(redis: Redis): void {
  for (const script of everyScript) script.prepare(redis);
}

/** The reply of a server that does not hold a script (restarted, flushed, or never sent it). */
function isNoScript(error: unknown): boolean {
  return error instanceof Error && error.message.startsWith('NOSCRIPT');
}

/**
 * A Lua script called by its SHA1 (EVALSHA), so its body crosses the network
 * once per server, not with every call: a server that does not hold it yet
 * (first use, a restart, SCRIPT FLUSH, a failover) answers NOSCRIPT, and the
 * call is sent once more as EVAL, which also leaves the script with it. A hot
 * script called with EVAL would ship and hash its whole body per call.
 *
 * `run` sends EVALSHA and EVAL as the plain commands every ioredis client and
 * pipeline has, not as a command defined on the client (defineCommand): a
 * client with auto-pipelining queues a command into a pipeline it made earlier
 * in the same turn of the event loop, and a pipeline made before a definition
 * lacks it. ioredis then throws in the middle of queueing the call, and every
 * later reply of that pipeline goes to the wrong caller.
 */
export class RedisScript {
  private readonly sha: string;
  /** The command it is defined as on a client, for pipelines: one name per script body. */
  private readonly command: string;

  constructor(
    readonly lua: string,
    readonly numberOfKeys: number,
  ) {
    this.sha = createHash('sha1').update(lua).digest('hex');
    this.command = `sottoScript_${this.sha}`;
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
    return this.call(redis, 'evalsha', 'eval', keys, args);
  }

  /** Runs it; bulk strings in the reply come as Buffers (for binary values). */
  runBuffer(redis: Redis, keys: readonly string[], args: readonly ScriptArgument[]): Promise<unknown> {
    return this.call(redis, 'evalshaBuffer', 'evalBuffer', keys, args);
  }

  private call(
    redis: Redis,
    bySha: 'evalsha' | 'evalshaBuffer',
    byBody: 'eval' | 'evalBuffer',
    keys: readonly string[],
    args: readonly ScriptArgument[],
  ): Promise<unknown> {
    this.check(keys);
    // ioredis has a Buffer-replying variant of every command; its types name only some of them.
    const client = redis as unknown as Record<typeof bySha | typeof byBody, ScriptCall>;
    return client[bySha](this.sha, this.numberOfKeys, ...keys, ...args).catch((error: unknown) => {
      if (!isNoScript(error)) throw error;
      return client[byBody](this.lua, this.numberOfKeys, ...keys, ...args);
    });
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
