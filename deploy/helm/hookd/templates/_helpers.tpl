{{/* Names and labels shared by every template. */}}
{{- define "hookd.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "hookd.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "hookd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "hookd.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* selectorLabels: call with (dict "ctx" $ "component" "api"). */}}
{{- define "hookd.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hookd.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hookd.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "hookd.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "hookd.fullname" .)) -}}
{{- end -}}

{{/* Whether /metrics needs the bearer token from the Secret. */}}
{{- define "hookd.metricsToken" -}}
{{- if or .Values.metrics.tokenInSecret (and (not .Values.secrets.existingSecret) .Values.secrets.metricsToken) -}}true{{- end -}}
{{- end -}}

{{/* The environment of every hookd container: the ConfigMap, then the Secret. */}}
{{- define "hookd.envFrom" -}}
- configMapRef:
    name: {{ include "hookd.fullname" . }}
- secretRef:
    name: {{ include "hookd.secretName" . }}
{{- end -}}
