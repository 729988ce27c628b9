export { EnvironmentError, parseEnvironment, formatEnvironmentError } from './environment';
export { hostPort, url, logLevel, positiveInt, commaList, pemFile, HostPort } from './schema';
export { rate, parseRate, formatRate, rateLimitsSwitch, type Rate } from './rate';
