import type { ChannelCredentials } from '@grpc/grpc-js';
import {
  ServerReflectionClient,
  type ServerReflectionResponse,
} from '@sotto/contracts/generated/grpc/reflection/v1/reflection';

/** Asks a server's grpc.reflection.v1 service which services it serves, as grpcurl `list` does. */
export async function listServicesByReflection(
  address: string,
  channelCredentials: ChannelCredentials,
): Promise<string[]> {
  const client = new ServerReflectionClient(address, channelCredentials);
  try {
    return await new Promise<string[]>((resolve, reject) => {
      const call = client.serverReflectionInfo();
      call.on('data', (response: ServerReflectionResponse) => {
        call.end();
        if (response.listServicesResponse)
          resolve(response.listServicesResponse.service.map((s) => s.name).sort());
        else reject(new Error(response.errorResponse?.errorMessage ?? 'unexpected reflection answer'));
      });
      call.on('error', reject);
      call.write({ host: '', listServices: '' });
    });
  } finally {
    client.close();
  }
}
