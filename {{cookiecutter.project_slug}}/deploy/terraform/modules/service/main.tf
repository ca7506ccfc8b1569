# One environment of the service: its image repository, runtime identity and
# Cloud Run service (secrets.tf, tasks.tf and ci.tf add the rest).
# Names follow one rule, shared with the Makefile and the service's settings:
# <service_name>-<environment>, secrets <environment>-<name>.

locals {
  name = "${var.service_name}-${var.environment}"
  # Service account IDs are 6 to 30 characters.
  runtime_account_id = "${trimsuffix(substr(local.name, 0, 26), "-")}-run"
  invoker_account_id = "${trimsuffix(substr(local.name, 0, 24), "-")}-tasks"
  # Cloud Run's deterministic URL (https://cloud.google.com/run/docs/triggering/https-request#deterministic):
  # known before the service exists, so the service can be told its own URL.
  service_url = "https://${local.name}-${data.google_project.this.number}.${var.region}.run.app"

  # The settings every service reads (README: Configuration).
  settings = {
    ENVIRONMENT = var.environment
    GCP_PROJECT = var.project_id
    REGION      = var.region
    SERVICE_URL = local.service_url
    LOG_LEVEL   = var.log_level
    # The service's own copy of its request timeout, past which Cloud Run
    # answers 504 (https://cloud.google.com/run/docs/configuring/request-timeout).
    REQUEST_TIMEOUT_SECONDS = tostring(var.request_timeout_seconds)
  }
}

# The APIs the environment uses, enabled before anything that needs them:
# everything below depends on this resource, directly or through what it
# references, so a first apply on a new project does not race them. Besides
# each product's own API: iam for the service accounts and the Workload
# Identity pool; iamcredentials and sts, with which a GitHub workflow exchanges
# its token for the deployer's credentials; cloudresourcemanager for
# data.google_project. Google lists these four for deployment pipelines:
# https://cloud.google.com/iam/docs/workload-identity-federation-with-deployment-pipelines
resource "google_project_service" "apis" {
  for_each = toset([
    "run.googleapis.com",
    "artifactregistry.googleapis.com",
    "iam.googleapis.com",
    "iamcredentials.googleapis.com",
    "sts.googleapis.com",
    "cloudresourcemanager.googleapis.com",
{% if cookiecutter.use_secret_manager %}
    "secretmanager.googleapis.com",
{% endif %}
{% if cookiecutter.use_cloud_tasks %}
    "cloudtasks.googleapis.com",
{% endif %}
{% if cookiecutter.use_tracing %}
    "cloudtrace.googleapis.com",
    "telemetry.googleapis.com",
{% endif %}
  ])
  project            = var.project_id
  service            = each.value
  disable_on_destroy = false
}

data "google_project" "this" {
  project_id = var.project_id

  depends_on = [google_project_service.apis]
}

resource "google_artifact_registry_repository" "images" {
  # checkov:skip=CKV_GCP_84: Google-managed encryption; customer-managed keys are an organisation's choice
  project       = var.project_id
  location      = var.region
  repository_id = local.name
  format        = "DOCKER"
  description   = "Images of ${local.name}"

  # Every deployment pushes an image. Delete untagged ones after a week and
  # any after 30 days, but keep the 20 newest whatever their age, so a
  # rollback always has an image: a version that matches both a delete and a
  # keep policy is kept
  # (https://cloud.google.com/artifact-registry/docs/repositories/cleanup-policy-overview).
  cleanup_policy_dry_run = false
  cleanup_policies {
    id     = "delete-untagged"
    action = "DELETE"
    condition {
      tag_state  = "UNTAGGED"
      older_than = "604800s"
    }
  }
  cleanup_policies {
    id     = "delete-old"
    action = "DELETE"
    condition {
      tag_state  = "ANY"
      older_than = "2592000s"
    }
  }
  cleanup_policies {
    id     = "keep-recent"
    action = "KEEP"
    most_recent_versions {
      keep_count = 20
    }
  }

  depends_on = [google_project_service.apis]
}

# The identity the service runs as: it gets exactly the roles below, nothing project-wide.
resource "google_service_account" "runtime" {
  project      = var.project_id
  account_id   = local.runtime_account_id
  display_name = "${local.name} (Cloud Run runtime)"

  depends_on = [google_project_service.apis]
}

resource "google_cloud_run_v2_service" "service" {
  project             = var.project_id
  name                = local.name
  location            = var.region
  ingress             = "INGRESS_TRAFFIC_ALL"
  deletion_protection = var.deletion_protection

  template {
    service_account                  = google_service_account.runtime.email
    timeout                          = "${var.request_timeout_seconds}s"
    max_instance_request_concurrency = var.concurrency

    scaling {
      min_instance_count = var.min_instances
      max_instance_count = var.max_instances
    }

    containers {
      image = var.image

      ports {
        container_port = 8080
      }

      resources {
        limits = {
          cpu    = var.cpu
          memory = var.memory
        }
        cpu_idle          = true
        startup_cpu_boost = true
      }

      dynamic "env" {
{% if cookiecutter.use_cloud_tasks %}
        for_each = merge(local.settings, local.tasks_settings)
{% else %}
        for_each = local.settings
{% endif %}
        content {
          name  = env.key
          value = env.value
        }
      }

      startup_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds    = 1
        failure_threshold = 30
      }

      liveness_probe {
        http_get {
          path = "/healthz"
        }
        period_seconds = 30
      }
    }
  }

  lifecycle {
    # Deployments (make deploy, CI) change the image; Terraform owns the rest.
    ignore_changes = [template[0].containers[0].image, client, client_version]
  }

{% if cookiecutter.use_secret_manager %}
  # The first revision starts only once it may read its secrets.
  depends_on = [google_project_service.apis, google_secret_manager_secret_iam_member.runtime_reads]
{% else %}
  depends_on = [google_project_service.apis]
{% endif %}
}

resource "google_cloud_run_v2_service_iam_member" "public" {
  count    = var.public_access ? 1 : 0
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.service.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

resource "google_cloud_run_v2_service_iam_member" "invokers" {
  for_each = toset(var.invokers)
  project  = var.project_id
  location = var.region
  name     = google_cloud_run_v2_service.service.name
  role     = "roles/run.invoker"
  member   = each.value
}
