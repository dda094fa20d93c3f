{{/* Names ------------------------------------------------------------------------------------ */}}
{{- define "bunko.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels: every Bunko pod carries part-of=bunko and its component (api, worker, operator). */}}
{{- define "bunko.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ default .Chart.Name .Values.nameOverride }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: bunko
{{- end -}}

{{- define "bunko.selectorLabels" -}}
app.kubernetes.io/name: {{ default .root.Chart.Name .root.Values.nameOverride }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "bunko.componentLabels" -}}
{{ include "bunko.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- /* <registry>/bunko-<process>@<digest> where image.digests names one (what GitOps pins), else
       <registry>/bunko-<process>:<tag><suffix>. */ -}}
{{- define "bunko.image" -}}
{{- $digest := get (.root.Values.image.digests | default dict) .process -}}
{{- if $digest -}}
{{- printf "%s/bunko-%s@%s" .root.Values.image.registry .process $digest -}}
{{- else -}}
{{- printf "%s/bunko-%s:%s%s" .root.Values.image.registry .process (.root.Values.image.tag | default .root.Chart.AppVersion) (.suffix | default "") -}}
{{- end -}}
{{- end -}}

{{- define "bunko.authSecret" -}}
{{- .Values.auth.existingSecret | default (printf "%s-auth" (include "bunko.fullname" .)) -}}
{{- end -}}

{{/* Store endpoints ---------------------------------------------------------------------------- */}}
{{- define "bunko.subchartFullname" -}}
{{- $values := index .root.Values .name -}}
{{- if $values.fullnameOverride -}}{{ $values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains .name .root.Release.Name -}}{{ .root.Release.Name | trunc 63 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .root.Release.Name .name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "bunko.milvusUri" -}}
{{- if .Values.milvus.enabled -}}
{{- printf "http://%s:19530" (include "bunko.subchartFullname" (dict "root" . "name" "milvus")) -}}
{{- else -}}
{{- required "externalMilvus.uri is required when milvus.enabled is false" .Values.externalMilvus.uri -}}
{{- end -}}
{{- end -}}

{{- define "bunko.modelEndpoint" -}}
{{- if .Values.modelEndpoint -}}{{ .Values.modelEndpoint }}
{{- else if .Values.pipeline.create -}}
{{- /* KubeRay names the Serve service of a RayService <name>-serve-svc; the operator names the
       RayService after its Pipeline. */ -}}
{{- printf "http://%s-serve-svc.%s.svc:8000" .Values.pipeline.name .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Environment of the api, worker, operator, backup and migration: settings, stores, secrets.
     Milvus's address and token are only in bunko.milvusEnv: the operator never talks to Milvus. */}}
{{- define "bunko.env" -}}
- {name: BUNKO_MODE, value: production}
- {name: BUNKO_DATA_DIR, value: /tmp/bunko}
{{- range $key, $value := .Values.config }}
- {name: {{ printf "BUNKO_%s" (upper $key) }}, value: {{ $value | toString | quote }}}
{{- end }}
{{- /* The models the api and worker call are the chart's Pipeline's (one source: its spec). */ -}}
{{- if .Values.pipeline.create }}
{{- $spec := .Values.pipeline.spec | default .Values.pipeline.cpuSpec }}
{{- if $spec.embedding }}
- {name: BUNKO_EMBEDDING_MODEL, value: {{ $spec.embedding.model | quote }}}
{{- end }}
{{- if $spec.reranker }}
- {name: BUNKO_RERANKER_MODEL, value: {{ $spec.reranker.model | quote }}}
{{- end }}
{{- end }}
{{- if .Values.postgresql.enabled }}
- name: BUNKO_INTERNAL_DATABASE_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.stores.secretName }}, key: postgres-password}}
- name: BUNKO_DATABASE_URL
  value: {{ printf "postgresql+psycopg://%s:$(BUNKO_INTERNAL_DATABASE_PASSWORD)@%s:5432/%s" .Values.postgresql.auth.username (include "bunko.subchartFullname" (dict "root" . "name" "postgresql")) .Values.postgresql.auth.database | quote }}
{{- else }}
- name: BUNKO_DATABASE_URL
  valueFrom: {secretKeyRef: {name: {{ required "externalDatabase.existingSecret is required when postgresql.enabled is false" .Values.externalDatabase.existingSecret }}, key: {{ .Values.externalDatabase.urlKey }}}}
{{- end }}
{{- if .Values.minio.enabled }}
- {name: BUNKO_OBJECT_STORE_URL, value: {{ printf "s3://%s:9000" (include "bunko.subchartFullname" (dict "root" . "name" "minio")) | quote }}}
- name: BUNKO_S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.stores.secretName }}, key: s3-access-key}}
- name: BUNKO_S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ .Values.stores.secretName }}, key: s3-secret-key}}
{{- else }}
- {name: BUNKO_OBJECT_STORE_URL, value: {{ required "externalObjectStore.url is required when minio.enabled is false" .Values.externalObjectStore.url | quote }}}
{{- with .Values.externalObjectStore.existingSecret }}
- name: BUNKO_S3_ACCESS_KEY
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $.Values.externalObjectStore.accessKeyKey }}}}
- name: BUNKO_S3_SECRET_KEY
  valueFrom: {secretKeyRef: {name: {{ . }}, key: {{ $.Values.externalObjectStore.secretKeyKey }}}}
{{- end }}
{{- end }}
- {name: BUNKO_S3_BUCKET, value: {{ .Values.objectStore.bucket | quote }}}
{{- with .Values.objectStore.serverSideEncryption }}
- {name: BUNKO_S3_SSE, value: {{ . | quote }}}
{{- end }}
{{- if eq .Values.objectStore.serverSideEncryption "SSE-KMS" }}
- name: BUNKO_S3_SSE_KMS_KEY_ID
  valueFrom: {secretKeyRef: {name: {{ required "objectStore.kmsKeySecret.name is required with SSE-KMS" .Values.objectStore.kmsKeySecret.name }}, key: {{ .Values.objectStore.kmsKeySecret.key }}}}
{{- end }}
{{- with .Values.objectStore.encryptionKeySecret }}
{{- if .name }}
- name: BUNKO_ENCRYPTION_KEY
  valueFrom: {secretKeyRef: {name: {{ .name }}, key: {{ .key }}}}
{{- if .previousKeys }}
- name: BUNKO_ENCRYPTION_PREVIOUS_KEYS
  valueFrom: {secretKeyRef: {name: {{ .name }}, key: {{ .previousKeys }}}}
{{- end }}
{{- end }}
{{- end }}
- {name: BUNKO_S3_REGION, value: {{ .Values.objectStore.region | quote }}}
{{- if .Values.valkey.enabled }}
- name: BUNKO_INTERNAL_CACHE_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ .Values.stores.secretName }}, key: valkey-password}}
- name: BUNKO_CACHE_URL
  value: {{ printf "redis://:$(BUNKO_INTERNAL_CACHE_PASSWORD)@%s:6379/0" (include "bunko.subchartFullname" (dict "root" . "name" "valkey")) | quote }}
{{- else }}
- name: BUNKO_CACHE_URL
  valueFrom: {secretKeyRef: {name: {{ required "externalCache.existingSecret is required when valkey.enabled is false" .Values.externalCache.existingSecret }}, key: {{ .Values.externalCache.urlKey }}}}
{{- end }}
{{- with .Values.tracing.otlpEndpoint }}
- {name: OTEL_EXPORTER_OTLP_ENDPOINT, value: {{ . | quote }}}
- {name: OTEL_TRACES_SAMPLER, value: parentbased_traceidratio}
- {name: OTEL_TRACES_SAMPLER_ARG, value: {{ $.Values.tracing.sampleRatio | quote }}}
{{- end }}
{{- if .Values.clamav.enabled }}
- {name: BUNKO_CLAMD_URL, value: {{ printf "tcp://%s-clamav:3310" (include "bunko.fullname" .) | quote }}}
{{- else if .Values.clamav.url }}
- {name: BUNKO_CLAMD_URL, value: {{ .Values.clamav.url | quote }}}
{{- end }}
{{- if .Values.clamav.failOpen }}
- {name: BUNKO_CLAMD_FAIL_OPEN, value: "true"}
{{- end }}
{{- with (include "bunko.modelEndpoint" .) }}
- {name: BUNKO_MODEL_ENDPOINT, value: {{ . | quote }}}
{{- end }}
- name: BUNKO_JWT_SECRET
  valueFrom: {secretKeyRef: {name: {{ include "bunko.authSecret" . }}, key: jwt-secret}}
- {name: BUNKO_BOOTSTRAP_ADMIN_USERNAME, value: {{ .Values.auth.bootstrapAdminUsername | quote }}}
- name: BUNKO_BOOTSTRAP_ADMIN_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ include "bunko.authSecret" . }}, key: admin-password}}
{{- if include "bunko.modelsInProcess" . }}
- {name: HF_HOME, value: {{ printf "%s/huggingface" .Values.modelCache.mountPath | quote }}}
- {name: HF_HUB_OFFLINE, value: "1"}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Security ----------------------------------------------------------------------------------- */}}
{{- define "bunko.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "bunko.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities: {drop: [ALL]}
{{- end -}}

{{- define "bunko.modelCacheClaim" -}}
{{- .Values.modelCache.existingClaim | default (printf "%s-models" (include "bunko.fullname" .)) -}}
{{- end -}}

{{/* The api and worker run models themselves only when no model endpoint (Ray Serve) is set. */}}
{{- define "bunko.modelsInProcess" -}}
{{- if and .Values.modelCache.enabled (not (include "bunko.modelEndpoint" .)) }}true{{ end -}}
{{- end -}}

{{/* Volumes shared by the api and worker: /tmp and, with in-process models, the model cache. */}}
{{- define "bunko.volumeMounts" -}}
- {name: tmp, mountPath: /tmp}
{{- if include "bunko.modelsInProcess" . }}
- {name: models, mountPath: {{ .Values.modelCache.mountPath }}, readOnly: true}
{{- end }}
{{- end -}}

{{- define "bunko.volumes" -}}
- name: tmp
  emptyDir: {sizeLimit: {{ .tmpSize }}}
{{- if include "bunko.modelsInProcess" .root }}
- name: models
  persistentVolumeClaim: {claimName: {{ include "bunko.modelCacheClaim" .root }}, readOnly: true}
{{- end }}
{{- end -}}

{{- define "bunko.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations: {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity: {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* A NetworkPolicy ingress rule: Prometheus's namespace, one port. */}}
{{- define "bunko.fromMonitoring" -}}
{{- if .Values.networkPolicy.monitoringNamespace }}
- from:
    - namespaceSelector:
        matchLabels: {kubernetes.io/metadata.name: {{ .Values.networkPolicy.monitoringNamespace }}}
  ports: [{port: {{ .port }}, protocol: TCP}]
{{- end }}
{{- end -}}

{{/* Milvus's address and token, for the processes that search, index or back up vectors. */}}
{{- define "bunko.milvusEnv" -}}
- {name: BUNKO_MILVUS_URI, value: {{ include "bunko.milvusUri" . | quote }}}
{{- if and (not .Values.milvus.enabled) .Values.externalMilvus.existingSecret }}
- name: BUNKO_MILVUS_TOKEN
  valueFrom: {secretKeyRef: {name: {{ .Values.externalMilvus.existingSecret }}, key: {{ .Values.externalMilvus.tokenKey }}}}
{{- end }}
{{- end -}}
