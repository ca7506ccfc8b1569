output "service_url" {
  description = "The service's URL."
  value       = module.service.service_url
}

output "runtime_service_account" {
  description = "The identity the service runs as."
  value       = module.service.runtime_service_account
}

{% if cookiecutter.use_cloud_tasks %}
output "invoker_service_account" {
  description = "The identity Cloud Tasks calls the service with."
  value       = module.service.invoker_service_account
}
{% endif %}

output "repository" {
  description = "Artifact Registry repository for the service's images."
  value       = module.service.repository
}

output "workload_identity_provider" {
  description = "GitHub variable WIF_PROVIDER for this environment."
  value       = module.service.workload_identity_provider
}

output "deployer_service_account" {
  description = "GitHub variable DEPLOY_SERVICE_ACCOUNT for this environment."
  value       = module.service.deployer_service_account
}
