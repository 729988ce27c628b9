import { dirname, join } from 'node:path';
import { credentials, loadPackageDefinition, type ClientDuplexStream } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';

interface ReflectionResponse {
  listServicesResponse?: { service: { name: string }[] };
  errorResponse?: { errorMessage: string };
}

interface ReflectionClient {
  ServerReflectionInfo(): ClientDuplexStream<{ listServices: string }, ReflectionResponse>;
  close(): void;
}

/** Asks a server's grpc.reflection.v1 service which services it serves, as grpcurl `list` does. */
export async function listServicesByReflection(address: string): Promise<string[]> {
  const protoPath = join(
    dirname(require.resolve('@grpc/reflection/package.json')),
    'build/proto/grpc/reflection/v1/reflection.proto',
  );
  const definition = loadPackageDefinition(loadSync(protoPath, { keepCase: false })) as unknown as {
    grpc: {
      reflection: { v1: { ServerReflection: new (address: string, creds: unknown) => ReflectionClient } };
    };
  };
  const client = new definition.grpc.reflection.v1.ServerReflection(address, credentials.createInsecure());
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const call = client.ServerReflectionInfo();
      call.on('data', (response: ReflectionResponse) => {
        call.end();
        if (response.listServicesResponse)
          resolve(response.listServicesResponse.service.map((s) => s.name).sort());
        else reject(new Error(response.errorResponse?.errorMessage ?? 'unexpected reflection answer'));
      });
      call.on('error', reject);
      call.write({ listServices: '' });
    });
  } finally {
    client.close();
  }
}
