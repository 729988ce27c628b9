module.exports = {
  displayName: 'prekey-directory',
  preset: '../../jest.preset.js',
  rootDir: '.',
  globalSetup: '../../libs/testing/src/jest/global-setup.ts',
  globalTeardown: '../../libs/testing/src/jest/global-teardown.ts',
  testTimeout: 120000,
};
