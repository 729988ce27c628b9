/**
 * Direct methods: RPCs served straight on the grpc-js server, outside
 * NestJS's per-call pipeline. NestJS runs every call through RxJS (an
 * Observable per call, per interceptor and per stream, each interceptor bound
 * with AsyncResource.bind), which on the message path cost more CPU than the
 * work and kilobytes per open stream. A direct method runs the same steps as
 * a plain async sequence: the service's CallAdmission (what its guards and
 * interceptors check), the handler, the metrics of GrpcServerMetrics and the
 * error mapping of clientErrorOf. Requests are decoded as for every other
 * method (packageDefinitionOf), and the server's interceptors and limits
 * apply as they do to every call.
 */
import 'reflect-metadata';
import type {
  Metadata,
  sendUnaryData,
  Server,
  ServerDuplexStream,
  ServerUnaryCall,
  UntypedHandleCall,
} from '@grpc/grpc-js';
import type { INestApplicationContext, Type } from '@nestjs/common';
import { ModulesContainer } from '@nestjs/core';
import type { Logger } from '@sotto/platform/logging';
import {
  decodeOrRefuse,
  type MethodShape,
  type RequestOf,
  type ResponseOf,
  type ServiceShape,
} from './contract';
import { clientErrorOf, type ClientError } from './errors';
import { codeName, type GrpcServerMetrics } from './metrics.interceptor';

const DIRECT = Symbol('sotto:direct-grpc-method');

/**
 * Serves this RPC directly on grpc-js (see serveDirectMethods). For unary
 * and bidirectional-stream methods; the controller's class names the method
 * in GrpcController's second argument, which gives it the direct handler's type.
 */
export function Direct(): MethodDecorator {
  return (_target, _key, descriptor) => {
    Reflect.defineMetadata(DIRECT, true, descriptor.value as object);
  };
}

export function isDirect(handler: unknown): boolean {
  return typeof handler === 'function' && Reflect.getMetadata(DIRECT, handler) === true;
}

/**
 * A direct handler. Unary: as a NestJS one, answering with a promise. A
 * bidirectional stream: it gets the call, reads and writes it, and settles
 * its promise when the call is over: resolved, the call ends with OK;
 * rejected, with the error's status. If the client cancels, it must settle
 * too (on the call's 'cancelled'); nothing more is sent then.
 */
export type DirectHandler<M extends MethodShape> = M['requestStream'] extends true
  ? M['responseStream'] extends true
    ? (call: ServerDuplexStream<RequestOf<M>, ResponseOf<M>>, metadata: Metadata) => Promise<void>
    : never
  : M['responseStream'] extends true
    ? never
    : (
        request: RequestOf<M>,
        metadata: Metadata,
        call: ServerUnaryCall<RequestOf<M>, ResponseOf<M>>,
      ) => Promise<ResponseOf<M>>;

/** A call about to be handled directly, as its admission sees it. */
export interface DirectCall {
  /** The controller's method, for what decorates it (the gateway's @Public()). */
  readonly handler: object;
  /** grpc-js's method path ("/sotto.gateway.v1.MessagingService/Send"). */
  readonly path: string;
  /** grpc-js's peer string. */
  readonly peer: string;
  readonly metadata: Metadata;
  /** The decoded request of a unary call; undefined for a stream, none of whose messages is read yet. */
  readonly request: unknown;
}

/**
 * What a service checks before a direct call's handler runs, in place of its
 * NestJS guards and interceptors (the gateway: the device's credential, then
 * its call limits); it refuses by throwing. Provided under CALL_ADMISSION;
 * without one, every direct call is admitted. A stream's messages are not
 * read meanwhile: they wait in HTTP/2 flow control.
 */
export interface CallAdmission {
  admit(call: DirectCall): Promise<void>;
}

export const CALL_ADMISSION = Symbol('CALL_ADMISSION');

interface DirectController {
  readonly definition: ServiceShape;
  readonly methods: readonly string[];
}

// Filled by GrpcService as the controllers' classes are defined.
const directControllers = new Map<Type, DirectController>();

/** Records a controller's direct methods; GrpcService leaves them to serveDirectMethods. */
export function recordDirectMethods(controller: Type, definition: ServiceShape, methods: string[]): void {
  for (const method of methods) {
    const shape = definition[method];
    if (shape !== undefined && shape.requestStream !== shape.responseStream) {
      throw new Error(`${controller.name}.${method}: only unary and bidirectional methods can be @Direct()`);
    }
  }
  if (methods.length > 0) directControllers.set(controller, { definition, methods });
}

interface DirectOptions {
  readonly metrics: GrpcServerMetrics;
  readonly logger: Logger;
}

/**
 * Registers the direct methods of this application's controllers on its
 * gRPC server, in place of what NestJS registered for them (nothing: an
 * UNIMPLEMENTED placeholder). Call it before the server takes connections
 * (createGrpcMicroservice's beforeListening), so that no call meets the
 * placeholder. It looks through the application's modules rather than asking
 * for each class, which would abort the process for one the application lacks.
 */
export function serveDirectMethods(
  app: INestApplicationContext,
  server: Server,
  options: DirectOptions,
): void {
  const modules = [...app.get(ModulesContainer).values()];
  const admission = modules
    .map((module) => module.providers.get(CALL_ADMISSION)?.instance as CallAdmission | undefined)
    .find((instance) => instance !== undefined);
  for (const module of modules) {
    for (const wrapper of module.controllers.values()) {
      const controller = wrapper.metatype as Type | null;
      const direct = controller === null ? undefined : directControllers.get(controller);
      if (controller === null || direct === undefined) continue;
      serveController(controller, wrapper.instance, direct, server, admission, options);
    }
  }
}

function serveController(
  controller: Type,
  instance: object,
  { definition, methods }: DirectController,
  server: Server,
  admission: CallAdmission | undefined,
  options: DirectOptions,
): void {
  for (const method of methods) {
    const shape = definition[method];
    if (shape === undefined) continue;
    const served = new DirectMethod(
      `${controller.name}.${method}`,
      (instance as Record<string, unknown>)[method] as (...args: unknown[]) => Promise<unknown>,
      instance,
      admission,
      options,
    );
    // GrpcController types the handler's answers as the method's response messages.
    const serialize = shape.responseSerialize as (message: unknown) => Buffer;
    server.unregister(shape.path);
    server.register(
      shape.path,
      shape.requestStream ? served.bidi : served.unary,
      serialize,
      decodeOrRefuse(shape.requestDeserialize),
      shape.requestStream ? 'bidi' : 'unary',
    );
  }
}

/** The status grpc-js sends for a client error. */
function statusOf(error: ClientError): { code: number; details: string; metadata?: Metadata } {
  return error.metadata === undefined
    ? { code: error.code, details: error.message }
    : { code: error.code, details: error.message, metadata: error.metadata };
}

class DirectMethod {
  constructor(
    /** The metrics' method label, "<Controller>.<method>" as for the calls NestJS runs. */
    private readonly label: string,
    private readonly handler: (...args: unknown[]) => Promise<unknown>,
    private readonly instance: object,
    private readonly admission: CallAdmission | undefined,
    private readonly options: DirectOptions,
  ) {}

  readonly unary: UntypedHandleCall = (
    call: ServerUnaryCall<unknown, unknown>,
    callback: sendUnaryData<unknown>,
  ): void => {
    void this.answer(call, callback);
  };

  readonly bidi: UntypedHandleCall = (call: ServerDuplexStream<unknown, unknown>): void => {
    void this.run(call);
  };

  private async admitted(
    call: ServerUnaryCall<unknown, unknown> | ServerDuplexStream<unknown, unknown>,
    request: unknown,
  ): Promise<ClientError | undefined> {
    if (this.admission === undefined) return undefined;
    try {
      await this.admission.admit({
        handler: this.handler,
        path: call.getPath(),
        peer: call.getPeer(),
        metadata: call.metadata,
        request,
      });
      return undefined;
    } catch (error) {
      return clientErrorOf(error, this.options.logger, this.label);
    }
  }

  private async answer(
    call: ServerUnaryCall<unknown, unknown>,
    callback: sendUnaryData<unknown>,
  ): Promise<void> {
    const refused = await this.admitted(call, call.request);
    if (refused !== undefined) {
      callback(statusOf(refused));
      return;
    }
    const ended = this.options.metrics.start(this.label);
    let response: unknown;
    try {
      response = await this.handler.call(this.instance, call.request, call.metadata, call);
    } catch (error) {
      ended(codeName(error));
      callback(statusOf(clientErrorOf(error, this.options.logger, this.label)));
      return;
    }
    ended('OK');
    callback(null, response);
  }

  private async run(call: ServerDuplexStream<unknown, unknown>): Promise<void> {
    const refused = await this.admitted(call, undefined);
    if (refused !== undefined) {
      call.emit('error', statusOf(refused));
      return;
    }
    // The client left while it was admitted: nobody to serve.
    if (call.cancelled) return;
    const ended = this.options.metrics.start(this.label);
    try {
      await this.handler.call(this.instance, call, call.metadata);
    } catch (error) {
      if (call.cancelled) return;
      ended(codeName(error));
      // grpc-js's streams answer an 'error' event with its status.
      call.emit('error', statusOf(clientErrorOf(error, this.options.logger, this.label)));
      return;
    }
    // A cancelled stream is not counted, as NestJS counts it neither.
    if (call.cancelled) return;
    ended('OK');
    call.end();
  }
}
