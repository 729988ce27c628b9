module.exports = {
  displayName: 'helm-chart',
  preset: '../jest.preset.js',
  rootDir: '.',
  testTimeout: 300000,
};
