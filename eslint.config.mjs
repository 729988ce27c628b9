// Type-checked lint for every TypeScript file, and Nx module boundaries built
// from the `scope:*` / `type:*` tags in each project.json. Formatting is
// Prettier's job, so no stylistic rules are configured here.
import { dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import js from '@eslint/js';
import nx from '@nx/eslint-plugin';
import jest from 'eslint-plugin-jest';
import { defineConfig } from 'eslint/config';
import tseslint from 'typescript-eslint';

const repoRoot = dirname(fileURLToPath(import.meta.url));

// Specs, and the helpers that only specs import (an app's src/testing/ and src/test-support/).
const SPEC_FILES = ['**/*.spec.ts', 'apps/*/src/testing/**/*.ts', 'apps/*/src/test-support/**/*.ts'];

/**
 * Who may import whom. Every matching constraint must hold, so a project
 * tagged `scope:server` and `type:app` satisfies both lists at once.
 * Nx itself forbids importing any `projectType: application`.
 *
 * `@nx/enforce-module-boundaries` knows projects, not files, so the one
 * file-level rules (apps, platform libs and SDKs use the test harness, and
 * server code uses the client SDK, in their specs only) are made by giving spec files their own copy of the constraints.
 */
function depConstraints({ specFiles }) {
  const harness = specFiles ? ['type:testing'] : [];
  // Server tests drive a service the way a real client does, through the client SDK.
  const clients = specFiles ? ['scope:client'] : [];
  return [
    // Scope: who runs where.
    { sourceTag: 'scope:shared', onlyDependOnLibsWithTags: ['scope:shared'] },
    { sourceTag: 'scope:server', onlyDependOnLibsWithTags: ['scope:server', 'scope:shared', ...clients] },
    {
      sourceTag: 'scope:client',
      onlyDependOnLibsWithTags: ['scope:client', 'scope:shared'],
      // Transitively: nothing a client imports may pull in server code.
      notDependOnLibsWithTags: ['scope:server'],
    },
    // Tools drive the platform the way clients and operators do: the load generator uses the client SDK.
    {
      sourceTag: 'scope:tools',
      onlyDependOnLibsWithTags: ['scope:tools', 'scope:shared', 'scope:server', 'scope:client'],
    },

    // Type: what a project is for.
    {
      sourceTag: 'type:app',
      onlyDependOnLibsWithTags: ['type:platform', 'type:contracts', 'type:sdk', ...harness],
    },
    // Contracts are the bottom of the graph: no project of ours, tagged or not.
    { sourceTag: 'type:contracts', onlyDependOnLibsWithTags: [], notDependOnLibsWithTags: ['*'] },
    { sourceTag: 'type:platform', onlyDependOnLibsWithTags: ['type:platform', 'type:contracts', ...harness] },
    {
      sourceTag: 'type:sdk',
      onlyDependOnLibsWithTags: ['type:contracts', 'type:platform', ...harness],
      notDependOnLibsWithTags: ['scope:server'],
    },
    { sourceTag: 'type:infra', onlyDependOnLibsWithTags: ['type:infra', 'type:platform', 'type:contracts'] },
    {
      sourceTag: 'type:testing',
      onlyDependOnLibsWithTags: ['type:testing', 'type:infra', 'type:platform', 'type:contracts', 'type:sdk'],
    },
    // End-to-end suites: the client SDK against a platform the harness starts. All of it is test code.
    { sourceTag: 'type:e2e', onlyDependOnLibsWithTags: ['type:sdk', 'type:contracts', 'type:testing'] },
    {
      sourceTag: 'type:tools',
      onlyDependOnLibsWithTags: ['type:infra', 'type:testing', 'type:platform', 'type:contracts', 'type:sdk'],
    },
  ];
}

function moduleBoundaries(options) {
  return [
    'error',
    {
      // No `allow` list: every import of another project goes through its `@sotto/*` alias.
      allow: [],
      depConstraints: depConstraints(options),
      // A library that is import()-ed somewhere must not also be imported
      // statically, or the lazy load buys nothing; no exceptions so far.
      checkDynamicDependenciesExceptions: [],
      // Every npm import must be declared in the root package.json (or the
      // project's own): nothing that merely happens to be hoisted.
      banTransitiveDependencies: true,
      enforceBuildableLibDependency: false,
    },
  ];
}

export default defineConfig(
  {
    ignores: [
      '**/node_modules',
      'dist',
      'coverage',
      '.nx',
      '.sotto',
      'libs/contracts/src/generated/**',
      '**/jest.config.js',
      'jest.preset.js',
      'jest.config.js',
    ],
  },

  ...nx.configs['flat/base'],

  {
    files: ['**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.strictTypeChecked],
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: repoRoot,
      },
    },
    rules: {
      '@nx/enforce-module-boundaries': moduleBoundaries({ specFiles: false }),
      '@typescript-eslint/no-floating-promises': ['error', { ignoreVoid: true }],
      // Numbers (ids, counts, sizes) read fine in messages; objects, nullish values and booleans do not.
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      // `() => stream.close()` is a callback, not a value anyone reads.
      '@typescript-eslint/no-confusing-void-expression': ['error', { ignoreArrowShorthand: true }],
      // NestJS modules are classes that exist for their decorators.
      '@typescript-eslint/no-extraneous-class': ['error', { allowWithDecorator: true }],
      // Without noUncheckedIndexedAccess the types say an indexed element is always there, and a
      // field filled in beforeAll is never undefined in afterAll; the guards this rule would strip
      // are what keeps those cases from throwing.
      '@typescript-eslint/no-unnecessary-condition': 'off',
      '@typescript-eslint/no-unused-vars': [
        'error',
        {
          argsIgnorePattern: '^_',
          varsIgnorePattern: '^_',
          caughtErrorsIgnorePattern: '^_',
          destructuredArrayIgnorePattern: '^_',
        },
      ],
    },
  },

  {
    files: ['**/*.spec.ts'],
    extends: [jest.configs['flat/recommended'], jest.configs['flat/style']],
    rules: {
      // Its fix turns `buffer.includes(bytes)` (a search for a run of bytes) into
      // `toContain(bytes)` (a search for one element), which never matches: a test that a
      // secret is absent from storage would then pass whatever storage holds.
      'jest/prefer-to-contain': 'off',
      // Helpers named expect* carry their own assertions.
      'jest/expect-expect': ['error', { assertFunctionNames: ['expect', 'expect*'] }],
      // A Jest mock method passed around unbound is fine; the type-aware rule knows no better.
      '@typescript-eslint/unbound-method': 'off',
      'jest/unbound-method': 'error',
    },
  },

  {
    files: SPEC_FILES,
    rules: {
      '@nx/enforce-module-boundaries': moduleBoundaries({ specFiles: true }),
      // Jest's asymmetric matchers (expect.objectContaining, expect.any) are typed `any`.
      '@typescript-eslint/no-unsafe-assignment': 'off',
      // In a test, `found!` that is wrong fails the test, which is what an assertion would do.
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },

  // The few plain-JavaScript files (Jest global setup shims, tool scripts) run on Node as they are.
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    extends: [js.configs.recommended],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', URL: 'readonly' },
    },
  },
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { __dirname: 'readonly', __filename: 'readonly' },
    },
  },
);
