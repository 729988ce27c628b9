export { parseServerAddress, serverStatus, ServerStatus, DEFAULT_SERVER } from './server';
