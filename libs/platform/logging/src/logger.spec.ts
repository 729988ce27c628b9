import { Writable } from 'node:stream';
import pino from 'pino';
import { NestPinoLogger } from './logger';

function capture(): { logger: pino.Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      chunks.push(chunk.toString());
      done();
    },
  });
  const logger = pino(
    { base: { service: 'test' }, formatters: { level: (label) => ({ level: label }) } },
    sink,
  );
  return {
    logger,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter(Boolean)
        .map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

describe('NestPinoLogger', () => {
  it('writes Nest log calls as JSON lines with their context', () => {
    const { logger, lines } = capture();
    const nest = new NestPinoLogger(logger);
    nest.log('started', 'NestApplication');
    nest.error('boom', 'Error: boom\n    at x', 'Handler');
    expect(lines()).toEqual([
      expect.objectContaining({ level: 'info', service: 'test', msg: 'started', context: 'NestApplication' }),
      expect.objectContaining({
        level: 'error',
        msg: 'boom',
        context: 'Handler',
        stack: 'Error: boom\n    at x',
      }),
    ]);
  });
});
