export { prepareLocalPki, spiffeUri, type LocalPki, type TlsIdentityFiles } from './local-pki';
