export { SERVICE_NAMES, ServiceName, InfraEndpoints, serviceEnv, ServiceAddresses } from './services';
export { startServiceProcess, ServiceProcess, ServiceProcessOptions } from './service-process';
export { startPlatform, Platform, PlatformOptions } from './platform';
