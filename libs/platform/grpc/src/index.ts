export { runService, ServiceSpec, serviceEnvSchema, CommonServiceEnv } from './run-service';
export { grpcClientOptions } from './client-options';
export { GrpcExceptionFilter, grpcError, grpcStatusOf, throttled } from './errors';
export { requireAccountId, requireDeviceId, validArgument } from './arguments';
export { GrpcMetricsInterceptor } from './metrics.interceptor';
export { callUpstream, upstreamError } from './upstream';
