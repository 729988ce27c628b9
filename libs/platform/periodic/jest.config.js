module.exports = {
  displayName: 'platform-periodic',
  preset: '../../../jest.preset.js',
  rootDir: '.',
};
