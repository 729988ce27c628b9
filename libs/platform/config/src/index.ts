export {
  EnvironmentError,
  parseEnvironment,
  formatEnvironmentError,
  type EnvironmentProblem,
} from './environment';
export { hostPort, url, logLevel, positiveInt, nonNegativeInt, commaList, pemFile, HostPort } from './schema';
export { checkClientTls, clientTlsShape, clientTlsVariables, type ClientTlsVariables } from './client-tls';
export { rate, parseRate, formatRate, rateLimitsSwitch, type Rate } from './rate';
