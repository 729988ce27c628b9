export { parseServerAddress, serverStatus, ServerStatus, DEFAULT_SERVER } from './server';
export {
  LAST_RESORT_KYBER_ID,
  generateDeviceKeys,
  generateOneTimeKeys,
  generateSignedEcKey,
  generateSignedKyberKey,
  publicDeviceKeys,
  GeneratedDeviceKeys,
} from './keys';
export { unary, UnaryMethod } from './grpc';
export { opaqueSendRequest, sendRequest } from './send-request';
export { StreamSender, serviceErrorOf } from './stream-sender';
export {
  SottoClient,
  LinkPrompt,
  ReceivedMessage,
  ReceiveOptions,
  TypingIndicator,
  VaultAttemptReport,
  GroupMember,
  GroupSummary,
} from './client';
export { authorizationMetadata, DeviceCredentials } from './client/authorization';
export { preKeyBundle } from './client/sessions';
export { GhostDeviceError, SottoError, ThrottledError, UntrustedIdentityError } from './errors';
export {
  gatewayCredentials,
  gatewayTrust,
  GatewayTrust,
  GatewayTrustOptions,
  senderCertificateTrustRoot,
} from './gateway-trust';
export { Profile, HistoryEntry, Notice } from './profile';
export * from './backup';
export {
  uploadBackupFile,
  downloadBackupFile,
  BUSY_WAIT_LIMIT_MS,
  BusyWait,
  TransferProgress,
} from './backup-transfer';
export {
  deriveUnidentifiedAccessKey,
  PROFILE_KEY_BYTES,
  UNIDENTIFIED_ACCESS_KEY_BYTES,
} from './unidentified-access';
export { protectRecoveryKey, recoverWithPassword } from './vault-client';
export {
  DeviceList,
  deviceListChanges,
  nextDeviceList,
  signDeviceList,
  verifyDeviceList,
} from './device-list';
export {
  GroupState,
  SignedGroupState,
  DEFAULT_MAX_GROUP_MEMBERS,
  groupStateSigningInput,
  signGroupState,
} from './group-state';
export { LinkCode, decodeLinkCode, encodeLinkCode, linkFingerprint } from './link-code';
