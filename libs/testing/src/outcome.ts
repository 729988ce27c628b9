import type { ServiceError } from '@grpc/grpc-js';

/** The error a gRPC call ended with, or undefined if it succeeded: for asserting on refusals. */
export const outcome = (call: Promise<unknown>): Promise<ServiceError | undefined> =>
  call.then(
    () => undefined,
    (error: unknown) => error as ServiceError,
  );
