export {
  SERVICE_NAMES,
  ServiceName,
  InfraEndpoints,
  HsmEndpoint,
  serviceEnv,
  ServiceAddresses,
} from './services';
export { startServiceProcess, ServiceProcess, ServiceProcessOptions } from './service-process';
export { startPlatform, Platform, PlatformOptions } from './platform';
