export { prepareLocalPki, spiffeUri, type LocalPki, type TlsIdentityFiles } from './local-pki';
export { clientTlsOptions, type ClientTlsFiles } from './client-tls';
