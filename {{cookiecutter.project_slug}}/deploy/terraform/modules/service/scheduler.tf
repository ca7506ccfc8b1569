# Scheduled tasks: one Cloud Scheduler job per schedule the code declares
# (`@scheduled`, written to deploy/schedules.json by `make triggers`). Each
# job POSTs its payload to the task's push endpoint with an ID token for the
# invoker account, the identity Cloud Tasks uses, so the endpoint checks both
# alike (https://cloud.google.com/scheduler/docs/http-target-auth).

variable "schedules" {
  type = map(object({
    task      = string
    cron      = string
    time_zone = string
    body      = string
  }))
  description = "The schedules the code declares, by name: deploy/schedules.json."
}

resource "google_cloud_scheduler_job" "schedules" {
  for_each    = var.schedules
  project     = var.project_id
  region      = var.region
  name        = "${local.name}-${each.key}"
  description = "Runs task ${each.value.task} of ${local.name}."
  schedule    = each.value.cron
  time_zone   = each.value.time_zone
  # How long an attempt may take, within the 15 s to 30 min Cloud Scheduler
  # allows for HTTP targets: the service's request timeout and a few seconds
  # (https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#Job).
  attempt_deadline = "${min(max(var.request_timeout_seconds + 5, 15), 1800)}s"

  # A failed run is retried with backoff, up to the 5 retries Cloud Scheduler
  # allows; without a retry config it would wait for the next scheduled time
  # (https://cloud.google.com/scheduler/docs/reference/rest/v1/projects.locations.jobs#RetryConfig).
  retry_config {
    retry_count          = 5
    min_backoff_duration = "10s"
    max_backoff_duration = "600s"
    max_doublings        = 4
  }

  http_target {
    http_method = "POST"
    uri         = "${local.service_url}/_tasks/${each.value.task}"
    body        = base64encode(each.value.body)
    headers = {
      "Content-Type" = "application/json"
    }

    oidc_token {
      service_account_email = google_service_account.invoker.email
      audience              = local.service_url
    }
  }

  depends_on = [google_project_service.apis]
}
