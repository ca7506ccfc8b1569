output "service_url" {
  description = "The service's URL (also its SERVICE_URL setting and its tasks' audience)."
  value       = local.service_url
}

output "service_name" {
  description = "Cloud Run service name."
  value       = google_cloud_run_v2_service.service.name
}

output "runtime_service_account" {
  description = "The identity the service runs as."
  value       = google_service_account.runtime.email
}

{% if cookiecutter.use_cloud_tasks %}
output "invoker_service_account" {
  description = "The identity Cloud Tasks calls the service with."
  value       = google_service_account.invoker.email
}
{% endif %}

output "repository" {
  description = "Where images are pushed: <repository>/<service_name>:<tag>."
  value       = "${var.region}-docker.pkg.dev/${var.project_id}/${google_artifact_registry_repository.images.repository_id}"
}

output "workload_identity_provider" {
  description = "Set as the GitHub variable WIF_PROVIDER (null without github_repository)."
  value       = local.deploys_from_github ? google_iam_workload_identity_pool_provider.github[0].name : null
}

output "deployer_service_account" {
  description = "Set as the GitHub variable DEPLOY_SERVICE_ACCOUNT (null without github_repository)."
  value       = local.deploys_from_github ? google_service_account.deployer[0].email : null
}
