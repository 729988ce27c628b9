module.exports = {
  displayName: 'client-sdk-e2e',
  preset: '../../jest.preset.js',
  rootDir: '.',
  globalSetup: '../testing/src/jest/global-setup.js',
  globalTeardown: '../testing/src/jest/global-teardown.js',
  testTimeout: 180000,
};
