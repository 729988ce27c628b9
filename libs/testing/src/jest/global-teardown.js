require('./register-aliases');
module.exports = require('./lifecycle.ts').globalTeardown;
