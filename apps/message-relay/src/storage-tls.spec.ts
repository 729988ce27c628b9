import { foreignPki, startTestService } from '@sotto/testing';

// The relay reaches the harness's Kafka and Redis over mutual TLS in every suite (main.spec.ts and
// relay.spec.ts serve through them). Here, what it does when it cannot trust them.
describe('message-relay and its servers’ certificates', () => {
  it('will not start when Redis’s certificate is not from REDIS_TLS_CA, saying so', async () => {
    const { ca } = await foreignPki();
    await expect(startTestService('message-relay', { REDIS_TLS_CA: ca })).rejects.toThrow(
      /cannot connect to Redis at 127\.0\.0\.1:\d+: (self-signed certificate in certificate chain|unable to verify the first certificate)/,
    );
  });

  it('will not start when a broker’s certificate is not from KAFKA_TLS_CA, saying so', async () => {
    const { ca } = await foreignPki();
    await expect(startTestService('message-relay', { KAFKA_TLS_CA: ca })).rejects.toThrow(
      /(self-signed certificate in certificate chain|unable to verify the first certificate)/,
    );
  });
});
