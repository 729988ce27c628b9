import { CONTRACTS } from '@sotto/contracts';
import { describeServiceBoot, startTestService } from '@sotto/testing';

describeServiceBoot('gateway', CONTRACTS.gateway, { variable: 'REDIS_URL', value: 'localhost:6379' });

describe('gateway start-up with GATEWAY_HEAP_GROWING_PERCENT', () => {
  // startTestService resolves once the gateway answers SERVING, and rejects with its log if it exits.
  it('sets the heap growth before it serves, and serves', async () => {
    const started = startTestService('gateway', { GATEWAY_HEAP_GROWING_PERCENT: '25' });
    await expect(started).resolves.toHaveProperty('grpc');
    await (await started).stop();
  });
});
