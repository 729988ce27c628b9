module.exports = {
  displayName: 'platform-redis',
  preset: '../../../jest.preset.js',
  rootDir: '.',
  globalSetup: '../../testing/src/jest/global-setup.js',
  globalTeardown: '../../testing/src/jest/global-teardown.js',
  testTimeout: 120000,
};
