export { runService, ServiceSpec, serviceEnvSchema, CommonServiceEnv } from './run-service';
export { internalChannelOptions } from './client-options';
export {
  INTERNAL_SERVER_LIMITS,
  PUBLIC_SERVER_LIMITS,
  serverLimitOptions,
  ServerLimits,
} from './server-limits';
export {
  GrpcController,
  GrpcService,
  packageDefinitionOf,
  RequestOf,
  ResponseOf,
  ServiceShape,
} from './contract';
export {
  clientErrorOf,
  ClientError,
  DependencyUnavailableError,
  GrpcExceptionFilter,
  grpcError,
  grpcStatusOf,
} from './errors';
export {
  CALL_ADMISSION,
  CallAdmission,
  Direct,
  DirectCall,
  DirectHandler,
  serveDirectMethods,
} from './direct';
export { REFUSALS, REFUSAL_TRAILER, refuse, RefusalReason, throttled } from './refusals';
export { requireAccountId, requireDeviceId, validArgument } from './arguments';
export { GrpcMetricsInterceptor, GrpcServerMetrics } from './metrics.interceptor';
export { createUpstreamClient, upstreamError, UpstreamClient, UpstreamClients } from './upstream';
export { addressBucket, peerAddress } from './client-address';
export { checkOwnCertificate, serverCredentials, topologyInterceptor, Refusal, ServerTls } from './tls';
export { useServiceIdentity } from './upstream';
export { BatchedReads } from './batched-reads';
export {
  answerEach,
  AnsweredCall,
  callErrorOf,
  errorOfCall,
  MAX_BATCH_CALLS,
  outcomesOf,
} from './batch-outcomes';
