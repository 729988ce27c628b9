module.exports = {
  displayName: 'testing',
  preset: '../../jest.preset.js',
  rootDir: '.',
  globalSetup: './src/jest/global-setup.ts',
  globalTeardown: './src/jest/global-teardown.ts',
  testTimeout: 120000,
};
