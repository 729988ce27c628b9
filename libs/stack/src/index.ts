export {
  SERVICE_NAMES,
  ServiceName,
  InfraEndpoints,
  localInfraEndpoints,
  HsmEndpoint,
  serviceEnv,
  everyService,
  ServiceAddresses,
  PLATFORM_IDENTITIES,
  operatorTls,
  postgresUrlWithTls,
  preparePlatformPki,
} from './services';
export { startServiceProcess, ServiceProcess, ServiceProcessOptions } from './service-process';
export { startPlatform, Platform, PlatformOptions } from './platform';
export { startScratchPlatform, ScratchPlatform, ScratchPlatformOptions } from './scratch-platform';
export {
  makeSenderCertificateKeys,
  senderCertificateVariables,
  SenderCertificateKeys,
} from './sender-certificate-keys';
