# Deferred work: the queue, the identity Cloud Tasks presents when it calls the
# service back, and the least privilege that connects them.

locals {
  # The settings of deferred work the service reads (README: Configuration).
  tasks_settings = merge(
    {
      TASKS_QUEUE                   = google_cloud_tasks_queue.tasks.name
      TASKS_LOCATION                = var.region
      TASKS_INVOKER_SERVICE_ACCOUNT = google_service_account.invoker.email
      TASKS_AUDIENCE                = local.service_url
    },
    # On a private service Cloud Run's front end checks each caller's token
    # itself, then hands it on with its signature removed
    # (https://cloud.google.com/run/docs/troubleshooting#signature-removed):
    # only behind that check may the push endpoint accept such a token. Never
    # on a public service, where nothing checks the token before the service.
    var.public_access ? {} : { BEHIND_CLOUD_RUN_IAM = "true" },
  )
}

resource "google_cloud_tasks_queue" "tasks" {
  project  = var.project_id
  name     = local.name
  location = var.region

  retry_config {
    max_attempts       = 20
    max_retry_duration = "86400s"
    min_backoff        = "1s"
    max_backoff        = "600s"
    max_doublings      = 5
  }

  rate_limits {
    max_dispatches_per_second = 50
    max_concurrent_dispatches = 100
  }

  depends_on = [google_project_service.apis]
}

resource "google_service_account" "invoker" {
  project      = var.project_id
  account_id   = local.invoker_account_id
  display_name = "${local.name} (Cloud Tasks invoker)"

  depends_on = [google_project_service.apis]
}

# Cloud Tasks' token for the invoker may call the service...
resource "google_cloud_run_v2_service_iam_member" "tasks_invoker" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.service.name
  role     = "roles/run.invoker"
  member   = google_service_account.invoker.member
}

# ...the service may add tasks to its own queue only...
resource "google_cloud_tasks_queue_iam_member" "runtime_enqueues" {
  project  = var.project_id
  location = var.region
  name     = google_cloud_tasks_queue.tasks.name
  role     = "roles/cloudtasks.enqueuer"
  member   = google_service_account.runtime.member
}

# ...and may name the invoker in them (actAs), nothing more.
resource "google_service_account_iam_member" "runtime_acts_as_invoker" {
  service_account_id = google_service_account.invoker.name
  role               = "roles/iam.serviceAccountUser"
  member             = google_service_account.runtime.member
}
