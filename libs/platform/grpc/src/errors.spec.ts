import { Metadata, status } from '@grpc/grpc-js';
import type { ArgumentsHost } from '@nestjs/common';
import pino from 'pino';
import { lastValueFrom } from 'rxjs';
import { DependencyUnavailableError, GrpcExceptionFilter, grpcError } from './errors';
import { throttled } from './refusals';

const host = {
  getType: () => 'rpc',
  switchToRpc: () => ({ getContext: () => ({}) }),
} as unknown as ArgumentsHost;

async function caught(
  filter: GrpcExceptionFilter,
  exception: unknown,
): Promise<{ code: number; message: string }> {
  try {
    await lastValueFrom(filter.catch(exception, host));
  } catch (error) {
    return error as { code: number; message: string };
  }
  throw new Error('the filter did not produce an error');
}

describe('GrpcExceptionFilter', () => {
  const lines: string[] = [];
  const logger = pino({ level: 'error' }, { write: (line: string) => void lines.push(line) });
  const filter = new GrpcExceptionFilter(logger);

  it('passes deliberate errors through with their code and message', async () => {
    expect(
      await caught(filter, grpcError(status.INVALID_ARGUMENT, 'username: must be 3 to 32 characters')),
    ).toEqual({
      code: status.INVALID_ARGUMENT,
      message: 'username: must be 3 to 32 characters',
    });
  });

  it('turns anything else into INTERNAL with a correlation id, and logs the details only on the server', async () => {
    const answer = await caught(filter, new Error('password authentication failed for user "sotto"'));
    expect(answer.code).toBe(status.INTERNAL);
    const id = /^internal error \(correlation id ([0-9a-f-]{36})\)$/.exec(answer.message)?.[1];
    expect(id).toBeDefined();
    expect(answer.message).not.toContain('password');
    const logged = lines.map(
      (line) => JSON.parse(line) as { correlationId: string; err: { message: string } },
    );
    expect(logged).toContainEqual(
      expect.objectContaining({
        correlationId: id,
        err: expect.objectContaining({ message: 'password authentication failed for user "sotto"' }),
      }),
    );
  });

  it('answers a dependency that is down with UNAVAILABLE and what is down, never INTERNAL', async () => {
    expect(
      await caught(
        filter,
        new DependencyUnavailableError('rate limits', 'Redis did not answer within 1000 ms'),
      ),
    ).toEqual({
      code: status.UNAVAILABLE,
      message: 'rate limits are unavailable (Redis did not answer within 1000 ms); try again',
    });
  });
});

describe('throttled', () => {
  it('says how long to wait, in seconds for people and in milliseconds for clients', () => {
    const error = throttled('too many tries for this account', 2001).getError() as {
      code: number;
      message: string;
      metadata: Metadata;
    };
    expect(error.code).toBe(status.RESOURCE_EXHAUSTED);
    expect(error.message).toBe('too many tries for this account; retry in 3 s');
    expect(error.metadata.get('retry-after-ms')).toEqual(['2001']);
  });
});
