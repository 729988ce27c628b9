import { Injectable } from '@nestjs/common';
import { status } from '@grpc/grpc-js';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * Sends on Connect streams, which no per-method gRPC series counts (they
 * are messages of the Connect call): by outcome and duration, as
 * sotto_grpc_server_handled_total and _handling_seconds count Send, and how
 * many the streams hold.
 */
@Injectable()
export class StreamSendMetrics {
  private readonly answers: Counter<'grpc_code'>;
  private readonly seconds: Histogram;
  private held: () => number = () => 0;

  /** The service's registry, which runService serves on /metrics. */
  constructor(registry: Registry) {
    const registers = [registry];
    const current = (): number => this.held();
    this.answers = new Counter({
      name: 'sotto_gateway_stream_sends_total',
      help: 'Sends on Connect streams, by the status code they were answered with (refusals by the call limits included).',
      labelNames: ['grpc_code'],
      registers,
    });
    this.answers.inc({ grpc_code: 'OK' }, 0);
    this.seconds = new Histogram({
      name: 'sotto_gateway_stream_send_seconds',
      help: 'Time from a send read off a Connect stream to its answer.',
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    });
    new Gauge({
      name: 'sotto_gateway_stream_sends_in_flight',
      help: 'Sends held by the Connect streams of this gateway: being sent, or answered and not yet taken by a device that is not reading (at most CONNECT_SEND_MAX_IN_FLIGHT per stream).',
      registers,
      collect() {
        this.set(current());
      },
    });
  }

  /** Where the gauge reads the held sends from when scraped. */
  observe(held: () => number): void {
    this.held = held;
  }

  /** Starts timing a send; the function returned records its answer's code. */
  start(): (code: number) => void {
    const started = process.hrtime.bigint();
    return (code) => {
      this.seconds.observe(Number(process.hrtime.bigint() - started) / 1e9);
      this.answered(code);
    };
  }

  /** Counts an answer; start() does it for the sends it times, the rest (refused unsent) come here. */
  answered(code: number): void {
    this.answers.inc({ grpc_code: status[code] ?? String(code) });
  }
}
