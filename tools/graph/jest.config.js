module.exports = {
  displayName: 'project-graph',
  preset: '../../jest.preset.js',
  rootDir: '.',
  testTimeout: 300000,
};
