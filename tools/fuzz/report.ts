/** The fuzzer's report: per method, how many requests got each status code; and what failed. */
import { status } from '@grpc/grpc-js';
import { CLIENT_REFUSED } from './transport';

/** Answers that mean the server failed rather than refused: each one fails the run. */
export const FAILING_CODES: ReadonlySet<number> = new Set([status.INTERNAL, status.UNKNOWN]);

export function codeName(code: number): string {
  if (code === CLIENT_REFUSED) return 'CLIENT_REFUSED';
  return status[code] ?? `CODE_${code}`;
}

export interface MethodReport {
  readonly method: string;
  readonly requests: number;
  /** Requests by the status code they got, by name. */
  readonly codes: Readonly<Record<string, number>>;
  /** The same, per kind of input (see CallKind), for finding where a code came from. */
  readonly byKind: Readonly<Record<string, Readonly<Record<string, number>>>>;
}

/** One INTERNAL or UNKNOWN answer, and the file its input was saved to. */
export interface Failure {
  readonly method: string;
  readonly request: number;
  readonly kind: string;
  readonly code: string;
  readonly details: string;
  /** Undefined past the number of inputs saved per method. */
  readonly input?: string;
}

/** Lines a process logged at error level or worse during the run: not a failure, a lead. */
export interface LoggedErrors {
  readonly count: number;
  /** The first few distinct messages. */
  readonly samples: readonly string[];
}

export interface FuzzReport {
  readonly passed: boolean;
  readonly seconds: number;
  readonly seed: number;
  readonly requestsPerMethod: number;
  readonly concurrency: number;
  readonly methods: readonly MethodReport[];
  readonly failures: readonly Failure[];
  readonly processes: { readonly watched: readonly string[]; readonly exits: readonly string[] };
  readonly victim: {
    readonly problems: readonly string[];
    readonly oneTimePreKeysHandedOut: { readonly ec: number; readonly kyber: number };
  };
  readonly conversation: string;
  readonly replacedFuzzAccounts: number;
  /** By process name; only those that logged any. */
  readonly loggedErrors: Readonly<Record<string, LoggedErrors>>;
  /** Every pass criterion not met, in words; empty when `passed`. */
  readonly problems: readonly string[];
}

/** Status codes in the order of their numbers, those of the fuzzer's own refusals last. */
function codeOrder(name: string): number {
  const code = (status as unknown as Record<string, number | undefined>)[name];
  return code ?? 1000;
}

/** The per-method table: one column per status code seen anywhere, and a total row. */
export function formatTable(methods: readonly MethodReport[]): string {
  const names = [...new Set(methods.flatMap((method) => Object.keys(method.codes)))].sort(
    (a, b) => codeOrder(a) - codeOrder(b) || a.localeCompare(b),
  );
  const total: MethodReport = {
    method: 'total',
    requests: methods.reduce((sum, method) => sum + method.requests, 0),
    codes: Object.fromEntries(
      names.map((name) => [name, methods.reduce((sum, method) => sum + (method.codes[name] ?? 0), 0)]),
    ),
    byKind: {},
  };
  const header = ['method', 'requests', ...names];
  const rows = [...methods, total].map((method) => [
    method.method,
    String(method.requests),
    ...names.map((name) => String(method.codes[name] ?? 0)),
  ]);
  const widths = header.map((title, column) =>
    Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)),
  );
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[column] ?? 0) : cell.padStart(widths[column] ?? 0),
      )
      .join('  ')
      .trimEnd();
  const rule = widths.map((width) => '-'.repeat(width)).join('  ');
  return [line(header), rule, ...rows.slice(0, -1).map(line), rule, line(rows[rows.length - 1] ?? [])].join(
    '\n',
  );
}

/** The whole report for people: the table, then what was checked and what failed. */
export function formatReport(report: FuzzReport): string {
  const lines = [
    formatTable(report.methods),
    '',
    `${report.methods.length} methods, ${report.requestsPerMethod} requests each, ${report.concurrency} at a time, seed ${report.seed}, ${report.seconds.toFixed(1)} s`,
    `processes: ${report.processes.watched.length === 0 ? 'not watched (--server)' : `${report.processes.watched.join(', ')}: ${report.processes.exits.length === 0 ? 'none exited' : report.processes.exits.join('; ')}`}`,
    `victim: ${report.victim.problems.length === 0 ? 'envelopes, prekeys and backups unchanged' : report.victim.problems.join('; ')} (one-time prekeys handed out to the fuzzer: ${report.victim.oneTimePreKeysHandedOut.ec} EC, ${report.victim.oneTimePreKeysHandedOut.kyber} Kyber)`,
    `conversation afterwards: ${report.conversation}`,
  ];
  const logged = Object.entries(report.loggedErrors);
  lines.push(
    `errors logged by the services: ${logged.length === 0 ? 'none' : logged.map(([name, { count }]) => `${name} ${count}`).join(', ')}`,
  );
  for (const [name, { samples }] of logged) {
    for (const sample of samples) lines.push(`  ${name}: ${sample}`);
  }
  if (report.replacedFuzzAccounts > 0)
    lines.push(`fuzz account replaced ${report.replacedFuzzAccounts} times`);
  for (const failure of report.failures.slice(0, 50)) {
    lines.push(
      `FAILED ${failure.method} #${failure.request} (${failure.kind}): ${failure.code} ${failure.details}${failure.input ? ` — input saved to ${failure.input}` : ''}`,
    );
  }
  if (report.failures.length > 50)
    lines.push(`… and ${report.failures.length - 50} more INTERNAL/UNKNOWN answers`);
  lines.push(report.passed ? 'PASSED' : `FAILED: ${report.problems.join('; ')}`);
  return lines.join('\n');
}
