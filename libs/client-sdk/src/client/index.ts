export { SottoClient, type ReceivedMessage, type ReceiveOptions, type TypingIndicator } from './sotto-client';
