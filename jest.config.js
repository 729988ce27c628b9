const { getJestProjectsAsync } = require('@nx/jest');

// Every project's tests in one run; `npm test` starts the shared Kafka,
// Redis and PostgreSQL once for all of them (libs/testing).
module.exports = async () => ({
  projects: await getJestProjectsAsync(),
});
