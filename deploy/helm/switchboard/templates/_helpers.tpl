{{/* The processes, in start-up order; each key of .Values.services. */}}
{{- define "switchboard.services" -}}thread_store session_api agent_runner edge{{- end -}}

{{- define "switchboard.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* A process's resource name: <release>-switchboard-thread-store. Call with (list $ "thread_store"). */}}
{{- define "switchboard.name" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "switchboard.fullname" $root) (index . 1 | replace "_" "-") | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "switchboard.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Call with (list $ "thread_store"). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ index . 1 | replace "_" "-" }}
app.kubernetes.io/instance: {{ (index . 0).Release.Name }}
{{- end -}}

{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "switchboard.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-keys" (include "switchboard.fullname" .)) -}}
{{- end -}}

{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "switchboard.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* A gRPC service's address for clients: every pod of its headless Service, balanced round-robin. */}}
{{- define "switchboard.grpcTarget" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- printf "dns:///%s.%s.svc.cluster.local:%v" (include "switchboard.name" (list $root $name)) $root.Release.Namespace (index $root.Values.services $name).port -}}
{{- end -}}

{{/* The storage URLs, from the chart's Secret or the operator's own (never inlined). */}}
{{- define "switchboard.storageEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.postgres.existingSecret | default (include "switchboard.secretName" .) }}
      key: {{ if .Values.postgres.existingSecret }}{{ .Values.postgres.existingSecretKey }}{{ else }}DATABASE_URL{{ end }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.existingSecret | default (include "switchboard.secretName" .) }}
      key: {{ if .Values.redis.existingSecret }}{{ .Values.redis.existingSecretKey }}{{ else }}REDIS_URL{{ end }}
{{- end -}}

{{/* Everything a process reads: storage, keys (secretKeyRef), where the others are, its own settings. */}}
{{- define "switchboard.env" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $service := index $root.Values.services $name -}}
{{ include "switchboard.storageEnv" $root }}
- name: SWITCHBOARD_INTERNAL_SECRET
  valueFrom:
    secretKeyRef: {name: {{ include "switchboard.secretName" $root }}, key: SWITCHBOARD_INTERNAL_SECRET}
{{- range $variable := list "SWITCHBOARD_JWT_SECRET" "SWITCHBOARD_SESSION_SECRET" "SWITCHBOARD_WEBHOOK_SECRET" "OPENAI_API_KEY" }}
- name: {{ $variable }}
  valueFrom:
    secretKeyRef: {name: {{ include "switchboard.secretName" $root }}, key: {{ $variable }}, optional: true}
{{- end }}
{{- range $other := list "thread_store" "session_api" "agent_runner" }}
- name: SWITCHBOARD_{{ upper $other }}
  value: {{ include "switchboard.grpcTarget" (list $root $other) | quote }}
{{- end }}
{{- if ne $name "edge" }}
- name: SWITCHBOARD_{{ upper $name }}_METRICS_PORT
  value: {{ $root.Values.metrics.port | quote }}
- name: SWITCHBOARD_GRPC_MAX_CONNECTION_AGE_SECONDS
  value: {{ $root.Values.grpcMaxConnectionAgeSeconds | quote }}
{{- end }}
{{- with $root.Values.grpcTls.existingSecret }}
{{- range $part, $file := dict "CERT" "tls.crt" "KEY" "tls.key" "CA" "ca.crt" }}
- name: SWITCHBOARD_GRPC_TLS_{{ $part }}
  value: /etc/switchboard/tls/{{ $file }}
{{- end }}
- name: SWITCHBOARD_GRPC_MTLS
  value: {{ $root.Values.grpcTls.mutual | quote }}
- name: SWITCHBOARD_GRPC_TLS_SERVER_NAME
  value: {{ required "grpcTls.serverName: the name the certificate in grpcTls.existingSecret carries" $root.Values.grpcTls.serverName | quote }}
{{- end }}
{{- with $root.Values.auth.jwksUrl }}
- name: SWITCHBOARD_JWKS_URL
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.auth.audience }}
- name: SWITCHBOARD_JWT_AUDIENCE
  value: {{ . | quote }}
{{- end }}
{{- with $root.Values.auth.issuer }}
- name: SWITCHBOARD_JWT_ISSUER
  value: {{ . | quote }}
{{- end }}
{{- range $key, $value := merge (deepCopy ($service.env | default dict)) $root.Values.env }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end -}}

{{/* A gRPC service's probe: Kubernetes's own gRPC probe, or (under TLS, which it cannot speak)
     `switchboard health` in the pod. Call with (list $ port service). */}}
{{- define "switchboard.grpcProbe" -}}
{{- $root := index . 0 -}}
{{- if $root.Values.grpcTls.existingSecret -}}
exec:
  command: ["switchboard", "health", "--target", {{ printf "grpc://127.0.0.1:%v" (index . 1) | quote }}]
{{- else -}}
grpc:
  port: {{ index . 1 }}
  service: {{ index . 2 | quote }}
{{- end -}}
{{- end -}}
