// CommonJS, not jest.config.ts: on Node 20 Jest can only load a .ts config through ts-node,
// which the workspace does not install.
module.exports = {
  displayName: 'local-infra',
  preset: '../../jest.preset.js',
  rootDir: '.',
  // Real Kafka/PostgreSQL/Redis processes are started and restarted; Kafka alone can take a minute.
  testTimeout: 180000,
};
