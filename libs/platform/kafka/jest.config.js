module.exports = {
  displayName: 'platform-kafka',
  preset: '../../../jest.preset.js',
  rootDir: '.',
  globalSetup: '../../testing/src/jest/global-setup.js',
  globalTeardown: '../../testing/src/jest/global-teardown.js',
  testTimeout: 120000,
};
