export { SottoClient, type ReceivedMessage, type TypingIndicator } from './sotto-client';
