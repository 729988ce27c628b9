export { parseServerAddress, serverStatus, ServerStatus, DEFAULT_SERVER } from './server';
export {
  generateDeviceKeys,
  generateOneTimeKeys,
  generateSignedEcKey,
  generateSignedKyberKey,
  publicDeviceKeys,
  GeneratedDeviceKeys,
} from './keys';
export { unary, UnaryMethod } from './grpc';
