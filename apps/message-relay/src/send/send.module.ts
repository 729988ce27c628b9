import { Module } from '@nestjs/common';
import { EnvelopeLog } from './envelope-log';

@Module({ providers: [EnvelopeLog], exports: [EnvelopeLog] })
export class SendModule {}
