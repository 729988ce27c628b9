module.exports = {
  displayName: 'client-sdk',
  preset: '../../jest.preset.js',
  rootDir: '.',
  testTimeout: 180000,
};
