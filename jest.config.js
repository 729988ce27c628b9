const { getJestProjectsAsync } = require('@nx/jest');

// Every project's tests in one run; `npm test` starts the shared Kafka,
// Redis and PostgreSQL once for all of them (libs/testing).
module.exports = async () => ({
  projects: await getJestProjectsAsync(),
  // A global option: Jest ignores per-project values when running several
  // projects. Tests that start servers (Kafka, a whole platform) need minutes
  // on a two-core machine.
  testTimeout: 300000,
});
