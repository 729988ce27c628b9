// The vault's answers to bad ids are the shared ones; the controller imports them from here.
export { requireAccountId as parseAccountId } from '@sotto/platform/grpc';
