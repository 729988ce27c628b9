// Jest transformer for ESM-only packages (@signalapp/libsignal-client).
// Jest's module system can only require() CommonJS on Node 20, while Node
// itself loads these packages fine. They find their native addon through
// import.meta, which has no CommonJS form, so it is rewritten first.
const { pathToFileURL } = require('node:url');
const { transformSync } = require('@swc/core');

module.exports = {
  process(source, filename) {
    const code = source
      .replace(/import\.meta\.dirname/g, '__dirname')
      .replace(/import\.meta\.filename/g, '__filename')
      .replace(/import\.meta\.url/g, JSON.stringify(pathToFileURL(filename).href));
    const output = transformSync(code, {
      filename,
      module: { type: 'commonjs' },
      jsc: { target: 'es2022', parser: { syntax: 'ecmascript' } },
      sourceMaps: 'inline',
    });
    return { code: output.code };
  },
};
