module.exports = {
  displayName: 'platform-postgres',
  preset: '../../../jest.preset.js',
  rootDir: '.',
};
