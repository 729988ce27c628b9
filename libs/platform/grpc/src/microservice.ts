import type { INestMicroservice, LoggerService, Type } from '@nestjs/common';
import { NestApplicationContextOptions } from '@nestjs/common/interfaces/nest-application-context-options.interface';
import { NestFactory } from '@nestjs/core';
import { ServerGrpc, type CustomStrategy, type GrpcOptions } from '@nestjs/microservices';
import { Server, ServerCredentials, type ChannelOptions, type ServerInterceptor } from '@grpc/grpc-js';
import { refuseUndecodableRequests } from './contract';

type ServerOptions = GrpcOptions['options'];

/** Run on the server once NestJS has registered its handlers, before it takes connections. */
export type BeforeListening = (server: Server) => void | Promise<void>;

/**
 * NestJS's gRPC server, taking connections only once every method has its
 * handler. NestJS binds the port first and registers the handlers after,
 * and the direct methods (serveDirectMethods) come after those; grpc-js
 * serves from the moment it binds, so a call in between was answered
 * UNIMPLEMENTED, which no client retries. Here the server binds last: until
 * then a client cannot connect, and its channel says UNAVAILABLE (or waits,
 * with waitForReady), which clients retry.
 */
class ServerGrpcListeningLast extends ServerGrpc {
  constructor(
    private readonly serverOptions: ServerOptions,
    private readonly beforeListening: BeforeListening,
  ) {
    super(serverOptions);
  }

  /** The server, not bound yet, with the channel options NestJS would give it. */
  override createClient(): Promise<Server> {
    const options = this.serverOptions;
    const channelOptions: ChannelOptions = {
      ...options.channelOptions,
      ...(options.maxSendMessageLength === undefined
        ? {}
        : { 'grpc.max_send_message_length': options.maxSendMessageLength }),
      ...(options.maxReceiveMessageLength === undefined
        ? {}
        : { 'grpc.max_receive_message_length': options.maxReceiveMessageLength }),
      ...(options.maxMetadataSize === undefined ? {} : { 'grpc.max_metadata_size': options.maxMetadataSize }),
      ...this.getKeepaliveOptions(),
    };
    return Promise.resolve(new Server(channelOptions));
  }

  override async listen(callback: (error?: unknown) => void): Promise<void> {
    try {
      const server = await this.createClient();
      this.grpcClient = server;
      // NestJS's handlers (and, through onLoadPackageDefinition, health and reflection).
      await this.bindEvents();
      await this.beforeListening(server);
      const credentials =
        (this.serverOptions.credentials as ServerCredentials | undefined) ??
        ServerCredentials.createInsecure();
      await new Promise<number>((resolve, reject) =>
        server.bindAsync(this.url, credentials, (error, port) => (error ? reject(error) : resolve(port))),
      );
      callback();
    } catch (error) {
      callback(error);
    }
  }
}

/**
 * A NestJS microservice on the gRPC transport. NestJS declares its
 * application options (the logger among them) as a class, so they are given
 * as an instance of that class carrying the transport's options too, not as
 * an object literal that merely has its shape. Its server answers a request
 * that does not decode with INVALID_ARGUMENT (see packageDefinitionOf), and
 * takes connections only once `beforeListening` (serveDirectMethods, for a
 * service with direct methods) has run: no call ever meets a method without
 * its handler.
 */
export function createGrpcMicroservice(
  rootModule: Type,
  logger: LoggerService | false,
  options: ServerOptions,
  beforeListening: BeforeListening = () => undefined,
): Promise<INestMicroservice> {
  const interceptors = (options.channelOptions?.['interceptors'] ?? []) as ServerInterceptor[];
  const serverOptions: ServerOptions = {
    ...options,
    // grpc-js's server options: interceptors run before NestJS sees the call.
    channelOptions: {
      ...options.channelOptions,
      interceptors: [refuseUndecodableRequests, ...interceptors],
    },
  };
  const transport: CustomStrategy = { strategy: new ServerGrpcListeningLast(serverOptions, beforeListening) };
  return NestFactory.createMicroservice<CustomStrategy>(
    rootModule,
    Object.assign(new NestApplicationContextOptions(), { logger }, transport),
  );
}
