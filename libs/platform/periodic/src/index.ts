export { PeriodicTask } from './periodic-task';
