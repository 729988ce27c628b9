module.exports = {
  displayName: 'loadgen',
  preset: '../../jest.preset.js',
  rootDir: '.',
};
