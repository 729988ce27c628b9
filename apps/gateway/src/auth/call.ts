/** What handlers, guards and interceptors read off grpc-js's call object (the third handler argument). */

interface Pausable {
  pause(): unknown;
  resume(): unknown;
}

function isPausable(call: unknown): call is Pausable {
  return (
    typeof call === 'object' &&
    call !== null &&
    typeof (call as Partial<Pausable>).pause === 'function' &&
    typeof (call as Partial<Pausable>).resume === 'function'
  );
}

function stringMethod(call: unknown, name: 'getPeer' | 'getPath'): string {
  const method =
    typeof call === 'object' && call !== null ? (call as Record<string, unknown>)[name] : undefined;
  return typeof method === 'function' ? String(method.call(call)) : '';
}

/** grpc-js's peer string of a call ("1.2.3.4:5678"), or "" if the argument is not a call. */
export function peerOf(call: unknown): string {
  return stringMethod(call, 'getPeer');
}

/** The call's method ("/sotto.gateway.v1.AccountService/Register"), or "" if the argument is not a call. */
export function pathOf(call: unknown): string {
  return stringMethod(call, 'getPath');
}

/**
 * Runs `work` with a client stream paused, so what the caller sends
 * meanwhile waits in the transport's flow control, not in memory (nor is
 * lost before the handler listens). Other calls just run it.
 */
export async function whilePaused<T>(call: unknown, work: () => Promise<T>): Promise<T> {
  const stream = isPausable(call) ? call : undefined;
  stream?.pause();
  try {
    return await work();
  } finally {
    stream?.resume();
  }
}
