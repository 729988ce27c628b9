export {
  SERVICE_NAMES,
  ServiceName,
  InfraEndpoints,
  HsmEndpoint,
  serviceEnv,
  everyService,
  ServiceAddresses,
  PLATFORM_IDENTITIES,
  operatorTls,
  preparePlatformPki,
} from './services';
export { startServiceProcess, ServiceProcess, ServiceProcessOptions } from './service-process';
export { startPlatform, Platform, PlatformOptions } from './platform';
