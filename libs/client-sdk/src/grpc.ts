import { Metadata, type CallOptions, type ClientUnaryCall, type ServiceError } from '@grpc/grpc-js';

/** The full-signature overload every generated grpc-js unary method has. */
export type UnaryMethod<Request, Response> = (
  request: Request,
  metadata: Metadata,
  options: Partial<CallOptions>,
  callback: (error: ServiceError | null, response: Response) => void,
) => ClientUnaryCall;

/** Calls a unary method and settles with its answer or its gRPC error (code, details, metadata). */
export function unary<Request, Response>(
  method: UnaryMethod<Request, Response>,
  request: Request,
  options: { metadata?: Metadata; deadlineMs?: number } = {},
): Promise<Response> {
  return new Promise((resolve, reject) => {
    method(
      request,
      options.metadata ?? new Metadata(),
      options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs },
      (error, response) => (error ? reject(error) : resolve(response)),
    );
  });
}
