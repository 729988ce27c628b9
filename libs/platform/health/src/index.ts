export { Readiness, ReadinessCheck, ReadinessReport, ReadinessModule } from './readiness';
