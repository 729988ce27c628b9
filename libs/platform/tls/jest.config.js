module.exports = {
  displayName: 'platform-tls',
  preset: '../../../jest.preset.js',
  rootDir: '.',
};
