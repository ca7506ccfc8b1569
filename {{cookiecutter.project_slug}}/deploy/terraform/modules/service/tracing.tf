# Traces: the runtime account writes spans to Cloud Trace through the
# Telemetry API (OTLP). Cloud Trace Agent is the role Google names for service
# accounts that write traces; it holds telemetry.traces.write, and a project is
# the narrowest resource it can be granted on
# (https://cloud.google.com/trace/docs/iam).
resource "google_project_iam_member" "runtime_writes_traces" {
  project = var.project_id
  role    = "roles/cloudtrace.agent"
  member  = google_service_account.runtime.member

  depends_on = [google_project_service.apis]
}
