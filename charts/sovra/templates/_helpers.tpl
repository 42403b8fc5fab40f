{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "sovra.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name of the release's objects: the release name when it already contains the chart name. */}}
{{- define "sovra.fullname" -}}
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

{{- define "sovra.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object the chart owns. */}}
{{- define "sovra.labels" -}}
helm.sh/chart: {{ include "sovra.chart" . }}
{{ include "sovra.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: sovra
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels selecting the operator pods (immutable once installed). */}}
{{- define "sovra.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sovra.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "sovra.serviceAccountName" -}}
{{- default (include "sovra.fullname" .) .Values.serviceAccount.name }}
{{- end }}

{{- define "sovra.leaseName" -}}
{{- default (printf "%s-leader" (include "sovra.fullname" .)) .Values.leaderElection.leaseName }}
{{- end }}

{{/* Username the API server sees for the operator: used by the admission policy. */}}
{{- define "sovra.operatorUsername" -}}
{{- printf "system:serviceaccount:%s:%s" .Release.Namespace (include "sovra.serviceAccountName" .) }}
{{- end }}

{{- define "sovra.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The audit trail file (SOVRA_AUDIT_LOG) inside the operator container. */}}
{{- define "sovra.auditLogFile" -}}
{{- printf "%s/audit.jsonl" (trimSuffix "/" .Values.auditLog.mountPath) }}
{{- end }}

{{/* "true" when checkpoints are signed: an existing Secret is named, or the chart creates one. */}}
{{- define "sovra.auditSigning" -}}
{{- if or .Values.auditLog.signingKey.existingSecret .Values.auditLog.signingKey.create }}true{{ end }}
{{- end }}

{{/* The Secret holding the checkpoint signing key. */}}
{{- define "sovra.auditSigningKeySecret" -}}
{{- .Values.auditLog.signingKey.existingSecret | default (printf "%s-audit-signing-key" (include "sovra.fullname" .)) }}
{{- end }}

{{/* Where the operator reads the signing key (SOVRA_AUDIT_SIGNING_KEY). */}}
{{- define "sovra.auditSigningKeyFile" -}}
/etc/sovra/audit-signing-key/signing-key.pem
{{- end }}

{{/*
The operator pod template, shared by the Deployment (audit trail on an emptyDir) and the
StatefulSet (audit trail on a per-replica PersistentVolumeClaim).
*/}}
{{- define "sovra.podTemplate" -}}
{{- $signing := include "sovra.auditSigning" . }}
metadata:
  labels:
    {{- include "sovra.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with .Values.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "sovra.serviceAccountName" . }}
  # The operator talks to the API server, so it needs its token.
  automountServiceAccountToken: true
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
  # Pod Security Standard "restricted".
  securityContext:
    runAsNonRoot: true
    runAsUser: 65532
    runAsGroup: 65532
    # Makes the audit volume writable by the operator user.
    fsGroup: 65532
    fsGroupChangePolicy: OnRootMismatch
    seccompProfile:
      type: RuntimeDefault
  containers:
    - name: sovra
      image: {{ include "sovra.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - run
      env:
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        - name: SOVRA_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: SOVRA_HTTP_ADDR
          value: "0.0.0.0:8080"
        - name: SOVRA_NODE_POOL_LABEL
          value: {{ .Values.operator.nodePoolLabel | quote }}
        - name: SOVRA_LEADER_ELECTION
          value: {{ .Values.leaderElection.enabled | quote }}
        - name: SOVRA_LEASE_NAME
          value: {{ include "sovra.leaseName" . | quote }}
        - name: SOVRA_AUDIT_LOG
          value: {{ include "sovra.auditLogFile" . | quote }}
        # No transparent huge pages for the operator's heap, also on nodes whose THP setting is
        # "always": a huge page is resident whole, however little of it the heap uses
        # (docs/performance.md).
        - name: MIMALLOC_ALLOW_THP
          value: "0"
        # Freed pages go back to the OS at once, and no empty page is kept for reuse: mimalloc
        # has no thread of its own, so a delayed purge waits for a later allocation, and an
        # idle operator kept the pages its last burst freed (docs/performance.md).
        - name: MIMALLOC_PURGE_DELAY
          value: "0"
        - name: MIMALLOC_PAGE_FULL_RETAIN
          value: "0"
        {{- if $signing }}
        # Signed checkpoints of the audit trail (docs/audit.md).
        - name: SOVRA_AUDIT_SIGNING_KEY
          value: {{ include "sovra.auditSigningKeyFile" . | quote }}
        - name: SOVRA_CHECKPOINT_EVERY_RECORDS
          value: {{ .Values.auditLog.checkpoints.everyRecords | quote }}
        - name: SOVRA_CHECKPOINT_INTERVAL
          value: {{ .Values.auditLog.checkpoints.interval | quote }}
        {{- with .Values.auditLog.checkpoints.witnessURL }}
        - name: SOVRA_CHECKPOINT_WITNESS_URL
          value: {{ . | quote }}
        {{- end }}
        {{- with .Values.auditLog.checkpoints.origin }}
        - name: SOVRA_AUDIT_ORIGIN
          value: {{ . | quote }}
        {{- end }}
        {{- end }}
        - name: SOVRA_CONCURRENCY
          value: {{ .Values.operator.concurrency | quote }}
        - name: SOVRA_LOG_FORMAT
          value: {{ .Values.operator.logFormat | quote }}
        - name: SOVRA_POLICY_REPORTS
          value: {{ .Values.operator.policyReports | quote }}
        {{- with .Values.operator.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        {{- toYaml .Values.livenessProbe | nindent 8 }}
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        {{- toYaml .Values.readinessProbe | nindent 8 }}
      {{- with .Values.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        allowPrivilegeEscalation: false
        readOnlyRootFilesystem: true
        runAsNonRoot: true
        runAsUser: 65532
        runAsGroup: 65532
        capabilities:
          drop:
            - ALL
        seccompProfile:
          type: RuntimeDefault
      volumeMounts:
        - name: audit
          mountPath: {{ .Values.auditLog.mountPath }}
        {{- if $signing }}
        - name: audit-signing-key
          mountPath: {{ dir (include "sovra.auditSigningKeyFile" .) }}
          readOnly: true
        {{- end }}
  {{- if or (not .Values.auditLog.persistence.enabled) $signing }}
  volumes:
    {{- if not .Values.auditLog.persistence.enabled }}
    # auditLog.ephemeralLostOnRestart: one emptyDir per pod, each replica writes its own hash
    # chain, and the chain is deleted with the pod.
    - name: audit
      emptyDir:
        sizeLimit: {{ .Values.auditLog.emptyDirSizeLimit }}
    {{- end }}
    {{- if $signing }}
    # The Ed25519 key that signs audit checkpoints, read-only (group-readable by fsGroup).
    # The pod does not start until the Secret exists.
    - name: audit-signing-key
      secret:
        secretName: {{ include "sovra.auditSigningKeySecret" . }}
        defaultMode: 288 # 0440
        items:
          - key: {{ .Values.auditLog.signingKey.secretKey }}
            path: {{ base (include "sovra.auditSigningKeyFile" .) }}
    {{- end }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  affinity:
    {{- if .Values.affinity }}
    {{- toYaml .Values.affinity | nindent 4 }}
    {{- else }}
    # Keep the two replicas on different nodes when possible, so one node failure does not
    # take out both the leader and its stand-in.
    podAntiAffinity:
      preferredDuringSchedulingIgnoredDuringExecution:
        - weight: 100
          podAffinityTerm:
            topologyKey: kubernetes.io/hostname
            labelSelector:
              matchLabels:
                {{- include "sovra.selectorLabels" . | nindent 16 }}
    {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- $constraints := list }}
    {{- range . }}
    {{- $c := deepCopy . }}
    {{- if not $c.labelSelector }}
    {{- $_ := set $c "labelSelector" (dict "matchLabels" (include "sovra.selectorLabels" $ | fromYaml)) }}
    {{- end }}
    {{- $constraints = append $constraints $c }}
    {{- end }}
    {{- toYaml $constraints | nindent 4 }}
  {{- end }}
{{- end }}

{{/* Refuse combinations that cannot work (values.schema.json refuses most of them first). */}}
{{- define "sovra.validate" -}}
{{- if and (not .Values.auditLog.persistence.enabled) (not .Values.auditLog.ephemeralLostOnRestart) }}
{{- fail "auditLog.persistence.enabled=false would keep the audit trail on an emptyDir that is lost whenever a pod is deleted or replaced: keep persistence on, or set auditLog.ephemeralLostOnRestart=true to accept losing it" }}
{{- end }}
{{- if and .Values.auditLog.persistence.enabled .Values.auditLog.ephemeralLostOnRestart }}
{{- fail "auditLog.ephemeralLostOnRestart=true contradicts auditLog.persistence.enabled=true: set auditLog.persistence.enabled=false too, or drop the opt-out" }}
{{- end }}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 requires leaderElection.enabled: without it every replica would reconcile" }}
{{- end }}
{{- if and .Values.podDisruptionBudget.enabled (ge (int .Values.podDisruptionBudget.minAvailable) (int .Values.replicaCount)) (gt (int .Values.replicaCount) 0) }}
{{- fail "podDisruptionBudget.minAvailable must be lower than replicaCount, or nodes can never be drained" }}
{{- end }}
{{- end }}
