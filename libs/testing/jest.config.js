module.exports = {
  displayName: 'testing',
  preset: '../../jest.preset.js',
  rootDir: '.',
  globalSetup: './src/jest/global-setup.js',
  globalTeardown: './src/jest/global-teardown.js',
  testTimeout: 120000,
};
