import { RequestQueue, repairRequestQueue, type KafkajsRequestQueue } from './request-queue';

const quiet = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

function queue(maxInFlightRequests: number | null): KafkajsRequestQueue {
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
function push(into: KafkajsRequestQueue, correlationId: number): Promise<number> {
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
});
