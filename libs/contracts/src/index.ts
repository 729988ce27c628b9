export { PROTO_ROOT, HEALTH_PROTO_PATH, PROTO_LOADER_OPTIONS } from './proto-loader';
export { ServiceContract, CONTRACTS, ContractName, serviceNameOf } from './registry';
export * as envelopesTopic from './topics/envelopes-v1';
export * as multiRecipientTopic from './topics/multi-recipient-v1';
export * as gatewayEvents from './channels/gateway-events-v1';
export * as credentialRevocations from './channels/credential-revocations-v1';
export * as deviceListChanges from './channels/device-list-changes-v1';
export * as unidentifiedAccessChanges from './channels/unidentified-access-changes-v1';
export * as presenceRegistry from './registries/presence-registry-v1';
export { checkHealth, waitForServing, ServingStatus } from './health-client';
export { tlsFailure } from './health-client';
export {
  SERVICE_IDENTITIES,
  ServiceIdentity,
  OPERATOR_IDENTITY,
  PeerIdentity,
  OPERATIONS_SERVICES,
  TOPOLOGY,
  spiffeIdOf,
  mayCall,
  callersOf,
  calleesOf,
  identityFromSubjectAltName,
  topologyDocument,
} from './topology';
export { TlsFiles, TLS_MIN_VERSION, mutualTlsCredentials, caTlsCredentials } from './tls';
export { PRESENCE_MAX_PER_CALL, presenceBatches } from './presence-calls';
export {
  MAILBOX_PAGE_MAX_BYTES,
  RELAY_BATCH_MAX_BYTES,
  RELAY_BATCH_MAX_CALLS,
  mailboxPageWorstCaseBytes,
} from './relay-batches';
export { DEVICE_LIST_SIGNING_CONTEXT, deviceListSigningInput } from './device-list-signing';
export * as linkApprovals from './channels/link-approvals-v1';
