export {
  SottoClient,
  type ReceivedMessage,
  type ReceiveOptions,
  type TypingIndicator,
  type VaultAttemptReport,
  type LinkPrompt,
  type GroupMember,
  type GroupSummary,
} from './sotto-client';
