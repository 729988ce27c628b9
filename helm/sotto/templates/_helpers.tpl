{{/*
Names and labels, as the well-kept public charts write them.
*/}}

{{- define "sotto.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Release-wide prefix of every object name. A release already named after the chart is not
repeated ("sotto" -> "sotto", "prod" -> "prod-sotto").
*/}}
{{- define "sotto.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sotto.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sotto.labels" -}}
helm.sh/chart: {{ include "sotto.chart" . }}
{{ include "sotto.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sotto
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "sotto.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sotto.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component variants. Call with (dict "root" $ "component" "prekey-directory").
*/}}
{{- define "sotto.componentFullname" -}}
{{- printf "%s-%s" (include "sotto.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sotto.componentLabels" -}}
{{ include "sotto.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sotto.componentSelectorLabels" -}}
{{ include "sotto.selectorLabels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "sotto.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sotto.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sotto.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The six services: values key, name, ports (the ones the README documents) and what storage each
needs. Who calls whom is not written here but read from topology.json (sotto.topology).
*/}}
{{- define "sotto.components" -}}
gateway:
  name: gateway
  grpcPort: 7400
  metricsPort: 9400
  needs: [redis]
prekeyDirectory:
  name: prekey-directory
  grpcPort: 7401
  metricsPort: 9401
  needs: [postgres, redis]
messageRelay:
  name: message-relay
  grpcPort: 7402
  metricsPort: 9402
  needs: [kafka, redis]
presence:
  name: presence
  grpcPort: 7403
  metricsPort: 9403
  needs: [redis]
backupStore:
  name: backup-store
  grpcPort: 7404
  metricsPort: 9404
  needs: [postgres, blobs]
keyVault:
  name: key-vault
  grpcPort: 7405
  metricsPort: 9405
  needs: [postgres, redis, hsm]
{{- end }}

{{/*
Who may call whom, as topology.json says: written from the table the services enforce on every
call (libs/contracts/src/topology.ts; `npx nx run helm-chart:topology`). For each service,
`callers` (the services its NetworkPolicy admits to its gRPC port) and `calls` (the services whose
addresses it is given). Call with the root context; returns JSON for fromJson.
*/}}
{{- define "sotto.topology" -}}
{{- .Files.Get "topology.json" }}
{{- end }}

{{/* The Secret holding a component's certificate, key and CA (tls.crt, tls.key, ca.crt). */}}
{{- define "sotto.tlsSecretName" -}}
{{- printf "%s-tls" (include "sotto.componentFullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
A hash of these Secrets' (or ConfigMaps') contents as the cluster holds them now (lookup), so that
helm upgrade rolls the pods when one was replaced. `helm template` cannot look, and hashes nothing.
Call with (dict "root" $ "kind" "Secret" "names" (list name…)).
*/}}
{{- define "sotto.contentChecksum" -}}
{{- $data := list }}
{{- range $name := .names }}
{{- $object := lookup "v1" $.kind $.root.Release.Namespace $name }}
{{- $data = append $data (toJson (dig "data" dict $object)) }}
{{- end }}
{{- join "," $data | sha256sum }}
{{- end }}

{{/* The Secrets holding the PostgreSQL URL, the Redis URL and the HSM PIN. Call with the root context. */}}
{{- define "sotto.postgresSecretName" -}}
{{- default (printf "%s-postgres" (include "sotto.fullname" .)) .Values.postgres.existingSecret }}
{{- end }}
{{- define "sotto.redisSecretName" -}}
{{- default (printf "%s-redis" (include "sotto.fullname" .)) .Values.redis.existingSecret }}
{{- end }}
{{- define "sotto.hsmSecretName" -}}
{{- default (printf "%s-hsm" (include "sotto.fullname" .)) .Values.keyVault.hsm.existingSecret }}
{{- end }}
{{- define "sotto.senderCertificateSecretName" -}}
{{- default (printf "%s-sender-certificate" (include "sotto.fullname" .)) .Values.gateway.senderCertificate.existingSecret }}
{{- end }}

{{/*
Every Secret one component's pod reads, as a YAML list for fromYamlArray: the certificates it
mounts (its own, the gateway's public one, CAs and client certificates for Kafka, Redis and
PostgreSQL), the ones its environment comes from (URLs, the HSM PIN, the S3 key pair, the
gateway's sender-certificate key) and those its extraEnv and extraEnvFrom name. Call with (dict "root" $ "key" "messageRelay" "c" <component>).
*/}}
{{- define "sotto.podSecrets" -}}
{{- $root := .root }}
{{- $c := .c }}
{{- $values := index $root.Values .key }}
{{- $names := list (include "sotto.tlsSecretName" (dict "root" $root "component" $c.name)) }}
{{- if eq $c.name "gateway" }}
{{- $names = append $names $root.Values.tls.gatewayPublic.existingSecret }}
{{- $names = append $names (include "sotto.senderCertificateSecretName" $root) }}
{{- end }}
{{- range include "sotto.storageTls" (dict "root" $root "c" $c) | fromYamlArray }}
{{- $names = concat $names (list .ca .client) }}
{{- end }}
{{- if has "postgres" $c.needs }}
{{- $names = append $names (include "sotto.postgresSecretName" $root) }}
{{- end }}
{{- if and (has "redis" $c.needs) (not $root.Values.redis.clusterNodes) }}
{{- $names = append $names (include "sotto.redisSecretName" $root) }}
{{- end }}
{{- if has "hsm" $c.needs }}
{{- $names = append $names (include "sotto.hsmSecretName" $root) }}
{{- end }}
{{- if and (has "blobs" $c.needs) (eq $root.Values.backupStore.blobStorage.type "s3") }}
{{- $names = append $names $root.Values.backupStore.blobStorage.s3.existingSecret }}
{{- end }}
{{- range $values.extraEnv }}
{{- $names = append $names (dig "valueFrom" "secretKeyRef" "name" "" .) }}
{{- end }}
{{- range $values.extraEnvFrom }}
{{- $names = append $names (dig "secretRef" "name" "" .) }}
{{- end }}
{{- toYaml ($names | compact | uniq) }}
{{- end }}

{{/*
The ConfigMaps besides its own that one component's pod reads (through extraEnv and extraEnvFrom),
as a YAML list for fromYamlArray. Its own is hashed into checksum/config. Same arguments as
sotto.podSecrets.
*/}}
{{- define "sotto.podConfigMaps" -}}
{{- $values := index .root.Values .key }}
{{- $names := list }}
{{- range $values.extraEnv }}
{{- $names = append $names (dig "valueFrom" "configMapKeyRef" "name" "" .) }}
{{- end }}
{{- range $values.extraEnvFrom }}
{{- $names = append $names (dig "configMapRef" "name" "" .) }}
{{- end }}
{{- toYaml ($names | compact | uniq) }}
{{- end }}

{{/* The Kafka topic the relay logs envelopes to (libs/contracts/src/topics/envelopes-v1). */}}
{{- define "sotto.envelopeTopic" -}}
sotto.envelopes.v1
{{- end }}

{{/*
Fails rendering on KEDA settings that would scale the relay wrongly, naming the values to change.
*/}}
{{- define "sotto.validateKeda" -}}
{{- $relay := .Values.messageRelay }}
{{- $keda := $relay.autoscaling.keda }}
{{- if $keda.enabled }}
{{- if $relay.autoscaling.enabled }}
{{- fail "messageRelay.autoscaling.keda.enabled and messageRelay.autoscaling.enabled are mutually exclusive: KEDA makes and owns the relay's HPA, and two HPAs on one Deployment fight over its replicas; set messageRelay.autoscaling.enabled=false (keda.cpuUtilizationPercentage scales on CPU as well)" }}
{{- end }}
{{- $partitions := int64 $relay.envelopeTopic.partitions }}
{{- if gt (int64 $keda.maxReplicaCount) $partitions }}
{{- fail (printf "messageRelay.autoscaling.keda.maxReplicaCount=%d exceeds messageRelay.envelopeTopic.partitions=%d: each partition is consumed by one relay pod, so pods beyond %d would route nothing; lower maxReplicaCount to at most %d, or raise the partitions (Kafka can add partitions, never remove them)" (int64 $keda.maxReplicaCount) $partitions $partitions $partitions) }}
{{- end }}
{{- if gt (int64 $keda.minReplicaCount) (int64 $keda.maxReplicaCount) }}
{{- fail (printf "messageRelay.autoscaling.keda.minReplicaCount=%d is above maxReplicaCount=%d" (int64 $keda.minReplicaCount) (int64 $keda.maxReplicaCount)) }}
{{- end }}
{{- if not .Values.kafka.brokers }}
{{- fail "messageRelay.autoscaling.keda.enabled needs kafka.brokers: KEDA asks the brokers for the consumer group's lag" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Where a pod finds its certificate: its own Secret, mounted read-only. */}}
{{- define "sotto.tlsDir" -}}
/etc/sotto/tls
{{- end }}

{{/* Where the gateway finds the certificate it serves the public, when it has one of its own. */}}
{{- define "sotto.publicTlsDir" -}}
/etc/sotto/public-tls
{{- end }}

{{/*
How one component reaches Kafka, Redis and PostgreSQL over TLS: for each of them it uses whose
TLS block names a CA or a client certificate, the Secrets they come from and where the pod mounts
them (/etc/sotto/<server>-tls: ca.crt, tls.crt, tls.key). Call with (dict "root" $ "c" <component>);
returns a YAML list for fromYamlArray.
*/}}
{{- define "sotto.storageTls" -}}
{{- $root := .root }}
{{- $entries := list }}
{{- range $server, $prefix := dict "postgres" "DATABASE" "redis" "REDIS" "kafka" "KAFKA" }}
{{- if has $server $.c.needs }}
{{- $tls := (index $root.Values $server).tls }}
{{- $client := $tls.clientCertificate }}
{{- $managed := $client.certManager.enabled }}
{{- $clientSecret := $client.existingSecret }}
{{- if and $managed (not $clientSecret) }}
{{- $clientSecret = include "sotto.storageClientCertificateName" (dict "root" $root "server" $server) }}
{{- end }}
{{- if or $tls.ca.existingSecret $clientSecret }}
{{- $entries = append $entries (dict
  "server" $server
  "prefix" $prefix
  "dir" (printf "/etc/sotto/%s-tls" $server)
  "ca" $tls.ca.existingSecret
  "caKey" $tls.ca.key
  "client" $clientSecret
  "certKey" (ternary "tls.crt" $client.certKey $managed)
  "keyKey" (ternary "tls.key" $client.keyKey $managed)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $entries }}
{{- end }}

{{/* The Secret cert-manager issues a client certificate for `server` into when none is named. */}}
{{- define "sotto.storageClientCertificateName" -}}
{{- printf "%s-%s-client-tls" (include "sotto.fullname" .root) .server | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fails rendering on TLS settings for Kafka, Redis or PostgreSQL that the services would stop on or
that would be ignored, naming the values to change.
*/}}
{{- define "sotto.validateStorageTls" -}}
{{- $kafka := .Values.kafka.tls }}
{{- if and (not $kafka.enabled) (or $kafka.ca.existingSecret $kafka.clientCertificate.existingSecret $kafka.clientCertificate.certManager.enabled) }}
{{- fail "kafka.tls.ca and kafka.tls.clientCertificate are read only over TLS: set kafka.tls.enabled=true" }}
{{- end }}
{{- range $server := list "postgres" "redis" "kafka" }}
{{- $certManager := (index $.Values $server).tls.clientCertificate.certManager }}
{{- if and $certManager.enabled (not (or $certManager.issuerRef.name $.Values.tls.certManager.issuerRef.name)) }}
{{- fail (printf "%s.tls.clientCertificate.certManager.enabled needs an issuer: set %s.tls.clientCertificate.certManager.issuerRef.name, or tls.certManager.issuerRef.name" $server $server) }}
{{- end }}
{{- end }}
{{- end }}

{{/* The gRPC port of the service called `name` (e.g. "presence"). */}}
{{- define "sotto.grpcPortOf" -}}
{{- range $key, $c := include "sotto.components" . | fromYaml }}
{{- if eq $c.name $.name }}{{ $c.grpcPort }}{{ end }}
{{- end }}
{{- end }}

{{/* Where a blob-storing backup-store keeps its files (BACKUP_BLOB_DIR). */}}
{{- define "sotto.blobDir" -}}
/var/lib/sotto/blobs
{{- end }}

{{/*
Non-secret environment of one component, as ConfigMap data. Call with
(dict "root" $ "key" "messageRelay" "c" <component>). Everything here is hashed into the pod's
checksum/config annotation, so a change rolls the pods.
*/}}
{{- define "sotto.configData" -}}
{{- $root := .root }}
{{- $c := .c }}
{{- $values := index $root.Values .key }}
GRPC_ADDR: {{ printf "%s:%v" $root.Values.listenHost $c.grpcPort | quote }}
METRICS_ADDR: {{ printf "%s:%v" $root.Values.listenHost $c.metricsPort | quote }}
LOG_LEVEL: {{ default $root.Values.logLevel $values.logLevel | quote }}
SHUTDOWN_GRACE_MS: {{ $root.Values.shutdownGraceMs | int64 | quote }}
GRPC_TLS_CERT: {{ printf "%s/tls.crt" (include "sotto.tlsDir" .) | quote }}
GRPC_TLS_KEY: {{ printf "%s/tls.key" (include "sotto.tlsDir" .) | quote }}
GRPC_TLS_CA: {{ printf "%s/ca.crt" (include "sotto.tlsDir" .) | quote }}
{{- if and (eq $c.name "gateway") $root.Values.tls.gatewayPublic.existingSecret }}
GRPC_PUBLIC_TLS_CERT: {{ printf "%s/tls.crt" (include "sotto.publicTlsDir" .) | quote }}
GRPC_PUBLIC_TLS_KEY: {{ printf "%s/tls.key" (include "sotto.publicTlsDir" .) | quote }}
{{- end }}
{{- $topology := include "sotto.topology" $root | fromJson }}
{{- range $callee := (index $topology.services $c.name).calls }}
{{ printf "%s_ADDR" ($callee | upper | replace "-" "_") }}: {{ printf "%s:%s" (include "sotto.componentFullname" (dict "root" $root "component" $callee)) (include "sotto.grpcPortOf" (dict "Values" $root.Values "name" $callee)) | quote }}
{{- end }}
{{- if and (has "redis" $c.needs) $root.Values.redis.clusterNodes }}
REDIS_CLUSTER_NODES: {{ join "," $root.Values.redis.clusterNodes | quote }}
{{- if $root.Values.redis.clusterTls }}
REDIS_CLUSTER_TLS: "on"
{{- end }}
{{- end }}
{{- if has "kafka" $c.needs }}
{{- with $root.Values.kafka.brokers }}
KAFKA_BROKERS: {{ join "," . | quote }}
{{- end }}
{{- if $root.Values.kafka.tls.enabled }}
KAFKA_SECURITY_PROTOCOL: "SSL"
{{- end }}
ENVELOPE_TOPIC_PARTITIONS: {{ $values.envelopeTopic.partitions | int64 | quote }}
ENVELOPE_TOPIC_REPLICATION: {{ $values.envelopeTopic.replication | int64 | quote }}
ENVELOPE_TOPIC_MIN_INSYNC_REPLICAS: {{ $values.envelopeTopic.minInsyncReplicas | int64 | quote }}
MAILBOX_MAX_ENVELOPES: {{ $values.mailbox.maxEnvelopes | int64 | quote }}
MAILBOX_MAX_BYTES: {{ $values.mailbox.maxBytes | int64 | quote }}
MAILBOX_ENVELOPE_TTL_SECONDS: {{ $values.mailbox.envelopeTtlSeconds | int64 | quote }}
MAILBOX_DURABILITY: {{ $values.mailbox.durability.level | quote }}
MAILBOX_DURABILITY_REPLICAS: {{ $values.mailbox.durability.replicas | int64 | quote }}
MAILBOX_DURABILITY_TIMEOUT_MS: {{ $values.mailbox.durability.timeoutMs | int64 | quote }}
KAFKA_CONSUMER_GROUP: {{ $values.consumerGroup | quote }}
{{- end }}
{{- if has "blobs" $c.needs }}
BACKUP_QUOTA_BYTES: {{ $values.quotaBytes | int64 | quote }}
BACKUP_VERSIONS_KEPT: {{ $values.versionsKept | int64 | quote }}
BACKUP_UPLOAD_EXPIRY_SECONDS: {{ $values.uploadExpirySeconds | int64 | quote }}
BACKUP_SWEEP_INTERVAL_SECONDS: {{ $values.sweepIntervalSeconds | int64 | quote }}
{{- if eq $values.blobStorage.type "s3" }}
{{- $s3 := $values.blobStorage.s3 }}
BACKUP_S3_BUCKET: {{ $s3.bucket | quote }}
{{- with $s3.endpoint }}
BACKUP_S3_ENDPOINT: {{ . | quote }}
{{- end }}
BACKUP_S3_REGION: {{ $s3.region | quote }}
BACKUP_S3_FORCE_PATH_STYLE: {{ $s3.forcePathStyle | toString | quote }}
BACKUP_S3_PART_BYTES: {{ $s3.partBytes | int64 | quote }}
BACKUP_S3_BUFFER_BYTES: {{ $s3.bufferBytes | int64 | quote }}
BACKUP_S3_BUFFER_WAIT_SECONDS: {{ $s3.bufferWaitSeconds | int64 | quote }}
{{- else }}
BACKUP_BLOB_DIR: {{ include "sotto.blobDir" . | quote }}
{{- end }}
{{- end }}
{{- if has "hsm" $c.needs }}
PKCS11_MODULE: {{ $values.hsm.modulePath | quote }}
PKCS11_TOKEN_LABEL: {{ $values.hsm.tokenLabel | quote }}
PKCS11_KEY_LABEL: {{ $values.hsm.keyLabel | quote }}
VAULT_LOGIN_TTL_SECONDS: {{ $values.login.ttlSeconds | int64 | quote }}
VAULT_LOGIN_LIMIT_PER_ACCOUNT: {{ $values.login.limitPerAccount | int64 | quote }}
VAULT_LOGIN_LIMIT_PER_SOURCE: {{ $values.login.limitPerSource | int64 | quote }}
VAULT_LOGIN_LIMIT_WINDOW_SECONDS: {{ $values.login.windowSeconds | int64 | quote }}
{{- /* As whole numbers: YAML numbers are floats, and a float of a million or more prints as 1e+06. */}}
{{- $delays := list }}
{{- range $values.login.tryDelaysSeconds }}
{{- $delays = append $delays (int64 .) }}
{{- end }}
KEY_VAULT_TRY_DELAYS: {{ join "," $delays | quote }}
VAULT_RESET_LIMIT_PER_DAY: {{ $values.login.resetLimitPerDay | int64 | quote }}
{{- end }}
{{- range $storage := include "sotto.storageTls" (dict "root" $root "c" $c) | fromYamlArray }}
{{- if $storage.ca }}
{{ $storage.prefix }}_TLS_CA: {{ printf "%s/ca.crt" $storage.dir | quote }}
{{- end }}
{{- if $storage.client }}
{{ $storage.prefix }}_TLS_CERT: {{ printf "%s/tls.crt" $storage.dir | quote }}
{{ $storage.prefix }}_TLS_KEY: {{ printf "%s/tls.key" $storage.dir | quote }}
{{- end }}
{{- end }}
{{- if eq $c.name "gateway" }}
AUTH_CACHE_TTL_MS: {{ $values.auth.cacheTtlMs | int64 | quote }}
AUTH_CACHE_MAX_ENTRIES: {{ $values.auth.cacheMaxEntries | int64 | quote }}
AUTH_FAILURES_PER_SOURCE: {{ $values.auth.failures.perSource | int64 | quote }}
AUTH_FAILURES_PER_DEVICE: {{ $values.auth.failures.perDevice | int64 | quote }}
AUTH_FAILURE_WINDOW_SECONDS: {{ $values.auth.failures.windowSeconds | int64 | quote }}
SENDER_CERTIFICATE_TTL_MS: {{ $values.senderCertificate.ttlMs | int64 | quote }}
UNIDENTIFIED_ACCESS_CACHE_TTL_MS: {{ $values.unidentifiedAccess.cacheTtlMs | int64 | quote }}
UNIDENTIFIED_ACCESS_CACHE_MAX_ACCOUNTS: {{ $values.unidentifiedAccess.cacheMaxAccounts | int64 | quote }}
MULTI_RECIPIENT_MAX_RECIPIENTS: {{ $values.multiRecipient.maxRecipients | int64 | quote }}
MULTI_RECIPIENT_MAX_BYTES: {{ $values.multiRecipient.maxBytes | int64 | quote }}
{{- end }}
{{- if eq $c.name "prekey-directory" }}
MAX_DEVICES_PER_ACCOUNT: {{ $values.maxDevicesPerAccount | int64 | quote }}
LINK_TOKEN_TTL_SECONDS: {{ $values.linkTokenTtlSeconds | int64 | quote }}
{{- end }}
{{- $limits := $root.Values.rateLimits }}
{{- if has $c.name (list "gateway" "prekey-directory" "key-vault") }}
SOTTO_RATE_LIMITS: {{ ternary "on" "off" $limits.enabled | quote }}
{{- end }}
{{- if eq $c.name "gateway" }}
RATE_LIMIT_REGISTER_PER_SOURCE: {{ $limits.registerPerSource | quote }}
RATE_LIMIT_RECOVER_ACCOUNT_PER_SOURCE: {{ $limits.recoverAccountPerSource | quote }}
RATE_LIMIT_SEND_PER_DEVICE: {{ $limits.sendPerDevice | quote }}
RATE_LIMIT_SEND_PER_DESTINATION: {{ $limits.sendPerDestination | quote }}
RATE_LIMIT_SEALED_SEND_PER_SOURCE: {{ $limits.sealedSendPerSource | quote }}
RATE_LIMIT_SEALED_SEND_PER_DESTINATION: {{ $limits.sealedSendPerDestination | quote }}
RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_SOURCE: {{ $limits.multiRecipientSendPerSource | quote }}
RATE_LIMIT_MULTI_RECIPIENT_SEND_PER_DESTINATION: {{ $limits.multiRecipientSendPerDestination | quote }}
RATE_LIMIT_LOOKUP_USERNAME_PER_ACCOUNT: {{ $limits.lookupUsernamePerAccount | quote }}
RATE_LIMIT_LOOKUP_ACCOUNT_PER_ACCOUNT: {{ $limits.lookupAccountPerAccount | quote }}
RATE_LIMIT_PREKEY_BUNDLES_PER_ACCOUNT: {{ $limits.prekeyBundlesPerAccount | quote }}
RATE_LIMIT_CONNECT_PER_DEVICE: {{ $limits.connectPerDevice | quote }}
RATE_LIMIT_OTHER_CALLS_PER_DEVICE: {{ $limits.otherCallsPerDevice | quote }}
RATE_LIMIT_CREATE_LINK_PER_SOURCE: {{ $limits.createLinkPerSource | quote }}
RATE_LIMIT_WAIT_FOR_LINK_PER_SOURCE: {{ $limits.waitForLinkPerSource | quote }}
RATE_LIMIT_COMPLETE_LINK_PER_SOURCE: {{ $limits.completeLinkPerSource | quote }}
RATE_LIMIT_APPROVE_LINK_PER_ACCOUNT: {{ $limits.approveLinkPerAccount | quote }}
RATE_LIMIT_DEVICE_LISTS_PER_ACCOUNT: {{ $limits.deviceListsPerAccount | quote }}
{{- end }}
{{- if eq $c.name "prekey-directory" }}
PREKEY_FETCH_LIMIT: {{ $limits.prekeyFetchesPerRequesterAndTarget | int64 | quote }}
PREKEY_FETCH_WINDOW_SECONDS: {{ $limits.prekeyFetchWindowSeconds | int64 | quote }}
RATE_LIMIT_ONE_TIME_PREKEYS_PER_DEVICE: {{ $limits.oneTimePrekeysPerDevice | quote }}
{{- end }}
{{- end }}

{{/*
Connection URLs with credentials, the HSM PIN and the S3 key pair: only ever from Secrets the
operator created.
*/}}
{{- define "sotto.secretEnv" -}}
{{- $root := .root }}
{{- $c := .c }}
{{- if has "postgres" $c.needs }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "sotto.postgresSecretName" $root }}
      key: {{ $root.Values.postgres.urlKey }}
{{- end }}
{{- if and (has "redis" $c.needs) (not $root.Values.redis.clusterNodes) }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "sotto.redisSecretName" $root }}
      key: {{ $root.Values.redis.urlKey }}
{{- end }}
{{- if eq $c.name "gateway" }}
{{- $sender := $root.Values.gateway.senderCertificate }}
- name: SENDER_CERTIFICATE_SERVER_CERTIFICATE
  valueFrom:
    secretKeyRef:
      name: {{ include "sotto.senderCertificateSecretName" $root }}
      key: {{ $sender.certificateKey }}
- name: SENDER_CERTIFICATE_SERVER_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "sotto.senderCertificateSecretName" $root }}
      key: {{ $sender.serverKeyKey }}
{{- end }}
{{- if has "hsm" $c.needs }}
- name: PKCS11_PIN
  valueFrom:
    secretKeyRef:
      name: {{ include "sotto.hsmSecretName" $root }}
      key: {{ $root.Values.keyVault.hsm.pinKey }}
{{- end }}
{{- $s3 := $root.Values.backupStore.blobStorage.s3 }}
{{- if and (has "blobs" $c.needs) (eq $root.Values.backupStore.blobStorage.type "s3") $s3.existingSecret }}
- name: BACKUP_S3_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.accessKeyIdKey }}
- name: BACKUP_S3_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $s3.existingSecret }}
      key: {{ $s3.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{/*
Fails rendering when the backup-store's blob settings cannot work. The messages name the values
to change; the service would otherwise stop at start-up, or lose or scatter blobs.
*/}}
{{- define "sotto.validateBlobStorage" -}}
{{- $bs := .Values.backupStore }}
{{- if eq $bs.blobStorage.type "s3" }}
{{- $s3 := $bs.blobStorage.s3 }}
{{- if not $s3.bucket }}
{{- fail "backupStore.blobStorage.type=s3 needs backupStore.blobStorage.s3.bucket: the name of an existing bucket (the chart does not create it)" }}
{{- end }}
{{- $maxParts := 10000 }}
{{- if gt (int64 $bs.quotaBytes) (mul (int64 $s3.partBytes) $maxParts) }}
{{- fail (printf "backupStore.blobStorage.s3.partBytes=%d is too small: a blob of backupStore.quotaBytes=%d must fit in S3's %d parts, so set partBytes to at least %d" (int64 $s3.partBytes) (int64 $bs.quotaBytes) $maxParts (div (add (int64 $bs.quotaBytes) (sub $maxParts 1)) $maxParts)) }}
{{- end }}
{{- $partBuffer := add (int64 $s3.partBytes) 1048575 }}
{{- if lt (int64 $s3.bufferBytes) $partBuffer }}
{{- fail (printf "backupStore.blobStorage.s3.bufferBytes=%d cannot hold one part's buffer: set it to at least %d (partBytes + 1 MiB - 1)" (int64 $s3.bufferBytes) $partBuffer) }}
{{- end }}
{{- else }}
{{- $local := $bs.blobStorage.local }}
{{- $several := or (gt (int $bs.replicaCount) 1) $bs.autoscaling.enabled }}
{{- if and $several (not $local.persistence.enabled) }}
{{- fail "backupStore: more than one replica (or autoscaling) with an emptyDir blob directory would scatter uploads across pods; set backupStore.replicaCount=1 and autoscaling.enabled=false, or use a ReadWriteMany volume (blobStorage.local.persistence) or an S3 bucket (blobStorage.type=s3)" }}
{{- end }}
{{- if and $several $local.persistence.enabled (not $local.persistence.existingClaim) (not (has "ReadWriteMany" $local.persistence.accessModes)) }}
{{- fail "backupStore: several replicas share the blob volume, so blobStorage.local.persistence.accessModes must include ReadWriteMany" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Fails rendering when the rate limits would be off (SOTTO_RATE_LIMITS=off, through rateLimits.enabled
or any component's extraEnv) and the operator has not said rateLimits.allowOff=true: without them
anyone can register in bulk, spam, enumerate usernames and drain prekeys.
*/}}
{{- define "sotto.validateRateLimits" -}}
{{- $limits := .Values.rateLimits }}
{{- if not $limits.allowOff }}
{{- if not $limits.enabled }}
{{- fail "rateLimits.enabled=false turns every rate limit off (SOTTO_RATE_LIMITS=off), which is for load tests only; if this deployment is one, set rateLimits.allowOff=true as well" }}
{{- end }}
{{- range $key, $c := include "sotto.components" . | fromYaml }}
{{- range (index $.Values $key).extraEnv }}
{{- if eq .name "SOTTO_RATE_LIMITS" }}
{{- fail (printf "%s.extraEnv sets SOTTO_RATE_LIMITS; the rate limits are switched by rateLimits.enabled, and off only with rateLimits.allowOff=true" $key) }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
{{- end }}
