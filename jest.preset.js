// Shared Jest settings for every project: TypeScript through SWC (with the
// decorator metadata NestJS needs) and the workspace's path aliases.
const path = require('node:path');
const { compilerOptions } = require('./tsconfig.base.json');

const moduleNameMapper = {};
for (const [alias, [target]] of Object.entries(compilerOptions.paths)) {
  const pattern = alias.endsWith('/*') ? `^${alias.slice(0, -2)}/(.*)$` : `^${alias}$`;
  const replacement = path.join(__dirname, target.endsWith('/*') ? `${target.slice(0, -2)}/$1` : target);
  moduleNameMapper[pattern] = replacement;
}

module.exports = {
  testEnvironment: 'node',
  testMatch: ['<rootDir>/**/*.spec.ts'],
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper,
  // ESM-only packages Jest must turn into CommonJS; everything else in node_modules is left alone.
  transformIgnorePatterns: ['/node_modules/(?!@signalapp/libsignal-client/)'],
  transform: {
    '/node_modules/@signalapp/libsignal-client/.+\\.js$': path.join(__dirname, 'tools/jest/esm-to-cjs.js'),
    '^.+\\.ts$': [
      '@swc/jest',
      {
        jsc: {
          target: 'es2022',
          parser: { syntax: 'typescript', decorators: true },
          transform: { legacyDecorator: true, decoratorMetadata: true },
        },
        module: { type: 'commonjs' },
        sourceMaps: 'inline',
      },
    ],
  },
};
