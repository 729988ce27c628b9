import type { INestMicroservice, LoggerService, Type } from '@nestjs/common';
import { NestApplicationContextOptions } from '@nestjs/common/interfaces/nest-application-context-options.interface';
import { NestFactory } from '@nestjs/core';
import { Transport, type GrpcOptions } from '@nestjs/microservices';

/**
 * A NestJS microservice on the gRPC transport. NestJS declares its
 * application options (the logger among them) as a class, so they are given
 * as an instance of that class carrying the transport's options too, not as
 * an object literal that merely has its shape.
 */
export function createGrpcMicroservice(
  rootModule: Type,
  logger: LoggerService | false,
  options: GrpcOptions['options'],
): Promise<INestMicroservice> {
  const transport: GrpcOptions = { transport: Transport.GRPC, options };
  return NestFactory.createMicroservice<GrpcOptions>(
    rootModule,
    Object.assign(new NestApplicationContextOptions(), { logger }, transport),
  );
}
