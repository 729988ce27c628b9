import { status } from '@grpc/grpc-js';
import { grpcError, grpcStatusOf } from './errors';

/**
 * Reads of many accounts from another service in batch calls of at most
 * `chunk` ids each, answered in the order asked, that fall back to one call
 * per account once the service answers UNIMPLEMENTED: a release from before
 * its batch call, mid-upgrade. After that answer the batch call is not tried
 * again by this reader.
 */
export class BatchedReads<T extends { readonly accountId: string }> {
  private batchCalls = true;

  constructor(
    private readonly options: {
      /** What is read, for the log line and errors: "device lists". */
      readonly what: string;
      /** The service's own limit on ids in one batch call. */
      readonly chunk: number;
      /** The batch call: one answer per id, in their order. */
      readonly batch: (accountIds: string[]) => Promise<readonly T[]>;
      /** The older one-account call: undefined for an account that does not exist. */
      readonly one: (accountId: string) => Promise<T | undefined>;
      /** Whether a batch answer says the account exists. */
      readonly found: (answer: T) => boolean;
      /** Called once, when the service turns out to have no batch call (to log it). */
      readonly onFallback: () => void;
      /** Counts each call made to the service. */
      readonly onCall?: () => void;
    },
  ) {}

  /** Each account's answer, in their order; undefined where no such account exists. */
  async read(accountIds: readonly string[]): Promise<(T | undefined)[]> {
    const { chunk, batch, found, what } = this.options;
    if (this.batchCalls) {
      const chunks: string[][] = [];
      for (let from = 0; from < accountIds.length; from += chunk) {
        chunks.push(accountIds.slice(from, from + chunk));
      }
      try {
        const answers = await Promise.all(
          chunks.map(async (ids) => {
            this.options.onCall?.();
            const answered = await batch(ids);
            if (answered.length !== ids.length || answered.some((a, i) => a.accountId !== ids[i])) {
              throw grpcError(
                status.INTERNAL,
                `the service answered ${answered.length} ${what} for ${ids.length} accounts, not in their order`,
              );
            }
            return answered.map((answer) => (found(answer) ? answer : undefined));
          }),
        );
        return answers.flat();
      } catch (error) {
        // Upstream errors arrive as RpcExceptions (upstreamError): their code is inside.
        if (grpcStatusOf(error) !== status.UNIMPLEMENTED) throw error;
        this.batchCalls = false;
        this.options.onFallback();
      }
    }
    return Promise.all(
      accountIds.map((accountId) => {
        this.options.onCall?.();
        return this.options.one(accountId);
      }),
    );
  }
}
