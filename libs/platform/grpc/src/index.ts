export { runService, ServiceSpec, serviceEnvSchema, CommonServiceEnv } from './run-service';
export { grpcClientOptions } from './client-options';
export { GrpcExceptionFilter, grpcError, grpcStatusOf } from './errors';
export { GrpcMetricsInterceptor } from './metrics.interceptor';
export { callUpstream, upstreamError } from './upstream';
