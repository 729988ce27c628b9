export {
  SottoClient,
  type ReceivedMessage,
  type TypingIndicator,
  type VaultAttemptReport,
} from './sotto-client';
