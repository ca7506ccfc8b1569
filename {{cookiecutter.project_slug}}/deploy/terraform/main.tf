# One root, one state per environment (README: Deploy). Where an environment
# runs is deploy/<environment>.env, the file the Makefile and the deploy
# workflow read too; environments/<environment>.tfvars holds the rest.

locals {
  # Its KEY=value lines, as a map: PROJECT and REGION.
  where = {
    for pair in regexall("(?m)^([A-Z_]+)=([^\r\n]*)", file("${path.module}/../${var.environment}.env")) :
    pair[0] => pair[1]
  }
  project_id = local.where["PROJECT"]
  region     = local.where["REGION"]
}

module "service" {
  source = "./modules/service"

  project_id                 = local.project_id
  region                     = local.region
  environment                = var.environment
  service_name               = var.service_name
  image                      = var.image
  min_instances              = var.min_instances
  max_instances              = var.max_instances
  public_access              = var.public_access
  invokers                   = var.invokers
  deletion_protection        = var.deletion_protection
  github_repository_id       = var.github_repository_id
  github_repository_owner_id = var.github_repository_owner_id
{% if cookiecutter.use_secret_manager %}
  secrets                    = var.secrets
{% endif %}
{% if cookiecutter.use_scheduler %}
  # The schedules the code declares, written by `make triggers`.
  schedules = jsondecode(file("${path.module}/../schedules.json"))
{% endif %}
{% if cookiecutter.use_pubsub %}
  # The subscribers the code declares, written by `make triggers`.
  subscriptions = jsondecode(file("${path.module}/../subscriptions.json"))
{% endif %}
}
