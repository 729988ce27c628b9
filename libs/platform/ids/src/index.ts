export {
  formatDeviceCredential,
  isUuid,
  parseAccountId,
  parseDeviceCredential,
  parseDeviceId,
  type AccountId,
  type DeviceCredential,
  type DeviceId,
  type InvalidField,
  type Parsed,
} from './ids';
