import { Test } from '@nestjs/testing';
import { ReadinessModule } from '@sotto/platform/health';
import { identityFiles, testInfra } from '@sotto/testing';
import { KafkaModule } from './kafka.module';
import { repairRequestQueue } from './request-queue';

// kafkajs's own RequestQueue, the class the repair changes (it has no types).
// eslint-disable-next-line @typescript-eslint/no-require-imports
const RequestQueue = require('kafkajs/src/network/requestQueue') as new (options: object) => Queue;

interface Queue {
  pending: unknown[];
  inflight: Map<number, unknown>;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
  push(request: object): void;
  maybeThrottle(ms: number): void;
  fulfillRequest(response: { correlationId: number; payload: Buffer; size: number }): void;
  destroy(): void;
}

const quiet = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

function queue(maxInFlightRequests: number | null): Queue {
  return new RequestQueue({
    maxInFlightRequests,
    requestTimeout: 30_000,
    enforceRequestTimeout: false,
    clientId: 'request-queue-test',
    broker: 'localhost:9092',
    logger: quiet,
  });
}

/** Pushes a request with `correlationId`; resolves when the queue hands it to the socket. */
function push(into: Queue, correlationId: number): Promise<number> {
  return new Promise((sent) => {
    into.push({
      entry: {
        correlationId,
        apiKey: 0,
        apiName: 'Produce',
        apiVersion: 7,
        resolve: () => undefined,
        reject: () => undefined,
      },
      expectResponse: true,
      sendRequest: () => sent(Date.now()),
    });
  });
}

describe('repairRequestQueue', () => {
  beforeAll(() => repairRequestQueue());

  it('leaves no timer armed once nothing waits', async () => {
    const requests = queue(null);
    try {
      await push(requests, 1);
      requests.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
      // kafkajs 2.2.4 re-arms a 1 ms check here, and again after each, for as long as the connection lives.
      expect(requests.throttleCheckTimeoutId).toBeNull();
      expect(requests.inflight.size).toBe(0);
    } finally {
      requests.destroy();
    }
  });

  it('still sends a request that waited on the in-flight limit as soon as the one before is answered', async () => {
    const requests = queue(1);
    try {
      await push(requests, 1);
      let secondSent = false;
      const second = push(requests, 2).then(() => (secondSent = true));
      expect(requests.pending).toHaveLength(1);
      expect(secondSent).toBe(false);
      requests.fulfillRequest({ correlationId: 1, payload: Buffer.alloc(0), size: 0 });
      await second;
      expect(requests.pending).toHaveLength(0);
    } finally {
      requests.destroy();
    }
  });

  it('holds requests while the broker throttles the client, and sends them once the throttle ends', async () => {
    const requests = queue(null);
    try {
      const throttledAt = Date.now();
      requests.maybeThrottle(80);
      const sentAt = await Promise.all([push(requests, 1), push(requests, 2)]);
      for (const at of sentAt) expect(at - throttledAt).toBeGreaterThanOrEqual(75);
      expect(requests.pending).toHaveLength(0);
      expect(requests.throttleCheckTimeoutId).toBeNull();
    } finally {
      requests.destroy();
    }
  });

  it('keeps an idle client connected to a real broker from checking its queues every millisecond', async () => {
    const moduleRef = await Test.createTestingModule({
      imports: [
        ReadinessModule,
        KafkaModule.forRoot({
          brokers: testInfra().kafkaBrokers,
          tls: identityFiles('message-relay'),
          clientId: 'request-queue-test',
        }),
      ],
    }).compile();
    moduleRef.enableShutdownHooks();
    const checks = jest.spyOn(RequestQueue.prototype, 'checkPendingRequests');
    try {
      // The admin client is connected (the module waits for it) and has nothing to ask.
      await new Promise((resolve) => setTimeout(resolve, 200));
      checks.mockClear();
      await new Promise((resolve) => setTimeout(resolve, 500));
      // Unrepaired, each connection checks about once a millisecond: hundreds in this half second.
      expect(checks.mock.calls.length).toBeLessThan(10);
    } finally {
      checks.mockRestore();
      await moduleRef.close();
    }
  });
});
