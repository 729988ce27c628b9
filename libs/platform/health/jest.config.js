module.exports = {
  displayName: 'platform-health',
  preset: '../../../jest.preset.js',
  rootDir: '.',
};
