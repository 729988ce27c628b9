module.exports = {
  displayName: 'tools',
  preset: '../../jest.preset.js',
  rootDir: '.',
  testTimeout: 300000,
};
