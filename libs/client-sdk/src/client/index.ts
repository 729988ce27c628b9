export {
  SottoClient,
  type ReceivedMessage,
  type ReceiveOptions,
  type TypingIndicator,
  type VaultAttemptReport,
  type LinkPrompt,
} from './sotto-client';
