module.exports = {
  displayName: 'platform-batching',
  preset: '../../../jest.preset.js',
  rootDir: '.',
};
