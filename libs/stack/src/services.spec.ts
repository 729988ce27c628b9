import { PrivateKey, PublicKey, ServerCertificate } from '@signalapp/libsignal-client';
import { makeSenderCertificateKeys } from './sender-certificate-keys';
import { SERVICE_NAMES, serviceEnv, type ServiceAddresses, type ServiceName } from './services';

const addresses = Object.fromEntries(
  SERVICE_NAMES.map((name, index) => [
    name,
    { grpc: `127.0.0.1:${7400 + index}`, metrics: `127.0.0.1:${9400 + index}` },
  ]),
) as Record<ServiceName, ServiceAddresses>;
const infra = {
  kafkaBrokers: ['127.0.0.1:9092', '127.0.0.1:9093'],
  redisUrl: 'redis://127.0.0.1:6379',
  databaseUrl: 'postgres://sotto@127.0.0.1:5432/sotto',
  hsm: {
    modulePath: '/usr/lib/softhsm/libsofthsm2.so',
    tokenLabel: 'sotto-vault',
    pin: 'local-pin',
    softHsmConf: '/data/softhsm/softhsm2.conf',
  },
  tls: {
    ca: '/tls/ca.crt',
    identities: Object.fromEntries(
      [...SERVICE_NAMES, 'kafka', 'redis', 'postgres', 'operator'].map((name) => [
        name,
        { cert: `/tls/${name}.crt`, key: `/tls/${name}.key` },
      ]),
    ),
  },
};
const senderKeys = makeSenderCertificateKeys();
const TLS = ['GRPC_TLS_CA', 'GRPC_TLS_CERT', 'GRPC_TLS_KEY'];
const STORAGE_TLS = /^(KAFKA|REDIS|DATABASE)_TLS_(CA|CERT|KEY)$|^KAFKA_SECURITY_PROTOCOL$/;

describe('serviceEnv', () => {
  it('gives each service only the storage it owns, its certificate and the services it calls', () => {
    const keys = Object.fromEntries(
      SERVICE_NAMES.map((name) => [
        name,
        Object.keys(
          serviceEnv(
            name,
            addresses,
            { ...infra, storageTls: ['kafka', 'redis', 'postgres'] },
            '/blobs',
            senderKeys,
          ),
        )
          .filter((key) => !TLS.includes(key) && !STORAGE_TLS.test(key))
          .sort(),
      ]),
    );
    expect(keys).toEqual({
      gateway: [
        'BACKUP_STORE_ADDR',
        'GRPC_ADDR',
        'KEY_VAULT_ADDR',
        'MESSAGE_RELAY_ADDR',
        'METRICS_ADDR',
        'PREKEY_DIRECTORY_ADDR',
        'PRESENCE_ADDR',
        'REDIS_URL',
        'SENDER_CERTIFICATE_SERVER_CERTIFICATE',
        'SENDER_CERTIFICATE_SERVER_KEY',
      ],
      'prekey-directory': ['DATABASE_URL', 'GRPC_ADDR', 'METRICS_ADDR', 'REDIS_URL'],
      'message-relay': [
        'GRPC_ADDR',
        'KAFKA_BROKERS',
        'METRICS_ADDR',
        'PREKEY_DIRECTORY_ADDR',
        'PRESENCE_ADDR',
        'REDIS_URL',
      ],
      presence: ['GRPC_ADDR', 'METRICS_ADDR', 'REDIS_URL'],
      'backup-store': ['BACKUP_BLOB_DIR', 'DATABASE_URL', 'GRPC_ADDR', 'METRICS_ADDR'],
      'key-vault': [
        'DATABASE_URL',
        'GRPC_ADDR',
        'METRICS_ADDR',
        'PKCS11_MODULE',
        'PKCS11_PIN',
        'PKCS11_TOKEN_LABEL',
        'REDIS_URL',
        'SOFTHSM2_CONF',
      ],
    });
  });

  it("gives each service its own certificate and the platform's CA", () => {
    for (const name of SERVICE_NAMES) {
      expect(serviceEnv(name, addresses, infra, '/blobs', senderKeys)).toMatchObject({
        GRPC_TLS_CA: '/tls/ca.crt',
        GRPC_TLS_CERT: `/tls/${name}.crt`,
        GRPC_TLS_KEY: `/tls/${name}.key`,
      });
    }
  });

  it('gives the key-vault its HSM, and SOFTHSM2_CONF only for a SoftHSM2 token', () => {
    expect(serviceEnv('key-vault', addresses, infra, '/blobs', senderKeys)).toMatchObject({
      PKCS11_MODULE: '/usr/lib/softhsm/libsofthsm2.so',
      PKCS11_TOKEN_LABEL: 'sotto-vault',
      PKCS11_PIN: 'local-pin',
      SOFTHSM2_CONF: '/data/softhsm/softhsm2.conf',
    });
    const realHsm = {
      ...infra,
      hsm: { modulePath: '/opt/hsm/lib/libpkcs11.so', tokenLabel: 'prod', pin: 'p' },
    };
    const env = serviceEnv('key-vault', addresses, realHsm, '/blobs', senderKeys);
    expect(env.PKCS11_MODULE).toBe('/opt/hsm/lib/libpkcs11.so');
    expect(env).not.toHaveProperty('SOFTHSM2_CONF');
  });

  it('has no storage TLS variables for servers it did not start with TLS', () => {
    for (const name of SERVICE_NAMES) {
      expect(
        Object.keys(serviceEnv(name, addresses, infra, '/blobs', senderKeys)).filter((key) =>
          STORAGE_TLS.test(key),
        ),
      ).toEqual([]);
    }
  });

  it('gives each service the local CA and its own certificate for the servers that serve TLS', () => {
    const tlsInfra = { ...infra, storageTls: ['kafka', 'redis', 'postgres'] as const };
    const own = (name: string) => ({ ca: '/tls/ca.crt', cert: `/tls/${name}.crt`, key: `/tls/${name}.key` });
    const relay = serviceEnv('message-relay', addresses, tlsInfra, '/blobs', senderKeys);
    expect(relay).toMatchObject({
      KAFKA_SECURITY_PROTOCOL: 'SSL',
      KAFKA_TLS_CA: own('message-relay').ca,
      KAFKA_TLS_CERT: own('message-relay').cert,
      KAFKA_TLS_KEY: own('message-relay').key,
      REDIS_TLS_CA: own('message-relay').ca,
      REDIS_TLS_CERT: own('message-relay').cert,
      REDIS_TLS_KEY: own('message-relay').key,
    });
    expect(relay).not.toHaveProperty('DATABASE_TLS_CA');
    expect(serviceEnv('backup-store', addresses, tlsInfra, '/blobs', senderKeys)).toMatchObject({
      DATABASE_TLS_CA: '/tls/ca.crt',
      DATABASE_TLS_CERT: '/tls/backup-store.crt',
      DATABASE_TLS_KEY: '/tls/backup-store.key',
    });
    // Only the servers it lists: another Redis of the operator's keeps the operator's settings.
    const gateway = serviceEnv(
      'gateway',
      addresses,
      { ...infra, storageTls: ['postgres'] },
      '/blobs',
      senderKeys,
    );
    expect(Object.keys(gateway).filter((key) => STORAGE_TLS.test(key))).toEqual([]);
  });

  it('points callers at the right addresses', () => {
    const relay = serviceEnv('message-relay', addresses, infra, '/blobs', senderKeys);
    expect(relay).toMatchObject({
      GRPC_ADDR: addresses['message-relay'].grpc,
      PREKEY_DIRECTORY_ADDR: addresses['prekey-directory'].grpc,
      PRESENCE_ADDR: addresses.presence.grpc,
      KAFKA_BROKERS: '127.0.0.1:9092,127.0.0.1:9093',
    });
  });

  it("gives the gateway a server certificate its trust root signed and the certificate's key, never the root's", () => {
    const gateway = serviceEnv('gateway', addresses, infra, '/blobs', senderKeys);
    const bytes = (base64: string): Uint8Array<ArrayBuffer> => new Uint8Array(Buffer.from(base64, 'base64'));
    const certificate = ServerCertificate.deserialize(
      bytes(gateway['SENDER_CERTIFICATE_SERVER_CERTIFICATE']),
    );
    const root = PublicKey.deserialize(bytes(senderKeys.trustRoot));
    expect(root.verify(certificate.certificateData(), certificate.signature())).toBe(true);
    const serverKey = PrivateKey.deserialize(bytes(gateway['SENDER_CERTIFICATE_SERVER_KEY']));
    expect(serverKey.getPublicKey().equals(certificate.key())).toBe(true);
    expect(Object.values(gateway)).not.toContain(senderKeys.trustRootPrivateKey);
    for (const name of SERVICE_NAMES.filter((service) => service !== 'gateway')) {
      expect(Object.keys(serviceEnv(name, addresses, infra, '/blobs', senderKeys))).not.toContain(
        'SENDER_CERTIFICATE_SERVER_KEY',
      );
    }
  });
});
