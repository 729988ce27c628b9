import type { INestMicroservice, LoggerService, Type } from '@nestjs/common';
import { NestApplicationContextOptions } from '@nestjs/common/interfaces/nest-application-context-options.interface';
import { NestFactory } from '@nestjs/core';
import { Transport, type GrpcOptions } from '@nestjs/microservices';
import type { ServerInterceptor } from '@grpc/grpc-js';
import { refuseUndecodableRequests } from './contract';

/**
 * A NestJS microservice on the gRPC transport. NestJS declares its
 * application options (the logger among them) as a class, so they are given
 * as an instance of that class carrying the transport's options too, not as
 * an object literal that merely has its shape. Its server answers a request
 * that does not decode with INVALID_ARGUMENT (see packageDefinitionOf).
 */
export function createGrpcMicroservice(
  rootModule: Type,
  logger: LoggerService | false,
  options: GrpcOptions['options'],
): Promise<INestMicroservice> {
  const interceptors = (options.channelOptions?.['interceptors'] ?? []) as ServerInterceptor[];
  const transport: GrpcOptions = {
    transport: Transport.GRPC,
    options: {
      ...options,
      // grpc-js's server options: interceptors run before NestJS sees the call.
      channelOptions: {
        ...options.channelOptions,
        interceptors: [refuseUndecodableRequests, ...interceptors],
      },
    },
  };
  return NestFactory.createMicroservice<GrpcOptions>(
    rootModule,
    Object.assign(new NestApplicationContextOptions(), { logger }, transport),
  );
}
