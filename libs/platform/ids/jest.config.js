module.exports = {
  displayName: 'platform-ids',
  preset: '../../../jest.preset.js',
  rootDir: '.',
};
