export { createLogger, Logger, NestPinoLogger } from './logger';
