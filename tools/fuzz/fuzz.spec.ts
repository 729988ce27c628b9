/**
 * The short fuzz run of `npm test`: a few hundred malformed and hostile
 * requests to every gateway method (`npm run fuzz` sends 10,000 each).
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { gatewayCredentials, startTestPlatform, testInfra, testTls, type Platform } from '@sotto/testing';
import { fuzz, fuzzEnvironment } from './fuzzer';
import { gatewayMethods } from './schema';
import { DEFAULT_MAX_RECEIVE_BYTES } from './wire';

const REQUESTS_PER_METHOD = 300;

describe('the gateway, fuzzed', () => {
  let platform: Platform | undefined;

  beforeAll(async () => {
    platform = await startTestPlatform(fuzzEnvironment());
  });

  afterAll(async () => {
    await platform?.stop();
  });

  it('answers every malformed or hostile request with a status, never INTERNAL or UNKNOWN, and leaves other accounts as they were', async () => {
    if (platform === undefined) throw new Error('the platform did not start');
    const seed = Math.floor(Math.random() * 2 ** 32);
    const report = await fuzz(
      {
        gateway: { address: platform.gateway, credentials: gatewayCredentials(), ca: testTls().ca },
        caPem: readFileSync(testTls().ca),
        processes: platform.services,
      },
      {
        requestsPerMethod: REQUESTS_PER_METHOD,
        concurrency: 8,
        timeLimitMs: 15 * 60_000,
        seed,
        callTimeoutMs: 60_000,
        inputsDir: mkdtempSync(join(testInfra().workDir, 'fuzz-')),
        maxReceiveBytes: DEFAULT_MAX_RECEIVE_BYTES,
        say: () => undefined,
      },
    );

    // The seed is in the comparison, so that a failure can be sent again (npm run fuzz -- --seed).
    expect({ seed, problems: report.problems, failures: report.failures }).toEqual({
      seed,
      problems: [],
      failures: [],
    });
    expect(report.methods.map((method) => [method.method, method.requests])).toEqual(
      gatewayMethods().map((method) => [method.label, REQUESTS_PER_METHOD]),
    );
    // Calls as the fuzz account reached the handlers, not only the guard.
    for (const method of report.methods) {
      expect([method.method, Object.keys(method.codes)]).toEqual([
        method.method,
        expect.arrayContaining(['INVALID_ARGUMENT']),
      ]);
    }
    expect(report.passed).toBe(true);
  });
});
