# The service's secrets: containers only. Values are added out of band
# (README: Secrets), and only the runtime account may read them.

variable "secrets" {
  type        = list(string)
  description = "Names of the secrets the service declares (settings.py); each becomes the secret <environment>-<name>."
}

locals {
  secret_ids = { for name in var.secrets : name => "${var.environment}-${name}" }
}

resource "google_secret_manager_secret" "secrets" {
  for_each  = local.secret_ids
  project   = var.project_id
  secret_id = each.value

  replication {
    user_managed {
      replicas {
        location = var.region
      }
    }
  }

  depends_on = [google_project_service.apis]
}

resource "google_secret_manager_secret_iam_member" "runtime_reads" {
  for_each  = google_secret_manager_secret.secrets
  project   = var.project_id
  secret_id = each.value.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = google_service_account.runtime.member
}
