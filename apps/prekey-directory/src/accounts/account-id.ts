// The directory's answers to bad ids are the shared ones; the controller imports them from here.
export { requireAccountId as parseAccountId, requireDeviceId as parseDeviceId } from '@sotto/platform/grpc';
