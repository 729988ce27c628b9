module.exports = {
  displayName: 'prekey-directory',
  preset: '../../jest.preset.js',
  rootDir: '.',
  globalSetup: '../../libs/testing/src/jest/global-setup.js',
  globalTeardown: '../../libs/testing/src/jest/global-teardown.js',
  testTimeout: 120000,
};
