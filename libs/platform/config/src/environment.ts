import { z } from 'zod';

export interface EnvironmentProblem {
  readonly variable: string;
  readonly message: string;
}

/** The environment failed validation; the message names every bad variable. */
export class EnvironmentError extends Error {
  constructor(readonly problems: readonly EnvironmentProblem[]) {
    super(formatEnvironmentError(problems));
    this.name = 'EnvironmentError';
  }
}

export function formatEnvironmentError(problems: readonly EnvironmentProblem[]): string {
  const lines = problems.map(({ variable, message }) => `  ${variable}: ${message}`);
  return `invalid environment:\n${lines.join('\n')}`;
}

/**
 * Validates the process environment against a service's schema. Values are
 * never echoed back: URLs and secrets may hold credentials.
 */
export function parseEnvironment<S extends z.ZodType>(
  schema: S,
  env: Record<string, string | undefined> = process.env,
): z.output<S> {
  // Empty strings mean "unset", as they do in Kubernetes manifests and shells.
  const cleaned = Object.fromEntries(Object.entries(env).filter(([, value]) => value !== ''));
  const result = schema.safeParse(cleaned);
  if (result.success) return result.data;

  const problems = new Map<string, string>();
  for (const issue of result.error.issues) {
    const variable = String(issue.path[0] ?? '(environment)');
    if (problems.has(variable)) continue;
    problems.set(variable, cleaned[variable] === undefined ? 'is required' : issue.message);
  }
  throw new EnvironmentError([...problems].map(([variable, message]) => ({ variable, message })));
}
