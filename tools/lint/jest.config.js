module.exports = { displayName: 'lint', preset: '../../jest.preset.js', rootDir: '.', testTimeout: 300000 };
