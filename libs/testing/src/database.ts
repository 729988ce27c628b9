import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { testInfra } from './infra';
import { operatorDatabaseUrl } from './storage';

/**
 * A new, empty database on the harness's PostgreSQL, so test files never see
 * each other's rows; its URL is as services take it (operatorDatabaseUrl
 * makes it one a test connects with).
 */
export async function createTestDatabase(): Promise<string> {
  const name = `test_${randomBytes(6).toString('hex')}`;
  const client = new Client({ connectionString: operatorDatabaseUrl() });
  await client.connect();
  try {
    await client.query(`CREATE DATABASE ${name}`);
  } finally {
    await client.end();
  }
  const url = new URL(testInfra().databaseUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
