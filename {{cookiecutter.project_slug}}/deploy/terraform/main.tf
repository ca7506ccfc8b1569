# One root, one state per environment: environments/<env>.tfvars holds the
# values, environments/<env>.backend.hcl where the state lives. See README.md.

module "service" {
  source = "./modules/service"

  project_id          = var.project_id
  region              = var.region
  environment         = var.environment
  service_name        = var.service_name
  image               = var.image
  min_instances       = var.min_instances
  max_instances       = var.max_instances
  public_access       = var.public_access
  invokers            = var.invokers
  deletion_protection = var.deletion_protection
  github_repository   = var.github_repository
{% if cookiecutter.use_secret_manager %}
  secrets             = var.secrets
{% endif %}
}
