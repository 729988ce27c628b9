export {
  SottoClient,
  type ReceivedMessage,
  type ReceiveOptions,
  type TypingIndicator,
  type VaultAttemptReport,
} from './sotto-client';
