{{/* Chart name, cut to 63 characters: the limit of a label value. */}}
{{- define "oxcd-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of the release's objects. A release already named after the chart (helm install
oxcd-operator ...) keeps that name rather than doubling it.
*/}}
{{- define "oxcd-operator.fullname" -}}
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

{{- define "oxcd-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "oxcd-operator.labels" -}}
helm.sh/chart: {{ include "oxcd-operator.chart" . }}
{{ include "oxcd-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: operator
app.kubernetes.io/part-of: oxcd
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Never change these: a Deployment's selector is immutable. */}}
{{- define "oxcd-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "oxcd-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "oxcd-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "oxcd-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "oxcd-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{/*
The leader-election Lease: named after the release, so that two releases in one namespace
do not take turns holding one lease. The Role grants access to this name only.
*/}}
{{- define "oxcd-operator.leaseName" -}}
{{- include "oxcd-operator.fullname" . }}
{{- end }}
