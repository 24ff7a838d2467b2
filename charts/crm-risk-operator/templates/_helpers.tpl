{{/* Name of the chart, overridable. */}}
{{- define "crmrisk.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name of the release's objects: the release name when it already contains the chart name,
else "<release>-<chart>". Truncated to 63 characters (a DNS label).
*/}}
{{- define "crmrisk.fullname" -}}
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

{{- define "crmrisk.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "crmrisk.labels" -}}
helm.sh/chart: {{ include "crmrisk.chart" . }}
{{ include "crmrisk.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: crm-risk-operator
{{- end }}

{{/* Labels that select the operator's pods (never change them: Deployment selectors are immutable). */}}
{{- define "crmrisk.selectorLabels" -}}
app.kubernetes.io/name: {{ include "crmrisk.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "crmrisk.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "crmrisk.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Name of the metrics Service; Prometheus Operator uses it as the `job` label. */}}
{{- define "crmrisk.metricsServiceName" -}}
{{- printf "%s-metrics" (include "crmrisk.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "crmrisk.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
The `rules` of the first document of kind $kind in chart file $path: the RBAC files are the one
source of truth for the operator's permissions (files/README.md), so the chart copies their rules
instead of repeating them. Fails the render when the file is missing or holds no rules.
Usage: include "crmrisk.rulesFrom" (list $ "files/clusterrole.yaml" "ClusterRole")
*/}}
{{- define "crmrisk.rulesFrom" -}}
{{- $root := index . 0 }}
{{- $path := index . 1 }}
{{- $kind := index . 2 }}
{{- $text := $root.Files.Get $path }}
{{- if not $text }}
{{- fail (printf "chart file %s is missing" $path) }}
{{- end }}
{{- $rules := list }}
{{- range $doc := regexSplit "(?m)^---[ \\t]*$" $text -1 }}
{{- $obj := fromYaml $doc }}
{{- if hasKey $obj "Error" }}
{{- fail (printf "chart file %s: %s" $path $obj.Error) }}
{{- end }}
{{- if and (eq (toString $obj.kind) $kind) (not $rules) }}
{{- $rules = $obj.rules }}
{{- end }}
{{- end }}
{{- if not $rules }}
{{- fail (printf "chart file %s has no %s with rules" $path $kind) }}
{{- end }}
{{- toYaml $rules }}
{{- end }}
