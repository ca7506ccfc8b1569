variable "environment" {
  type        = string
  description = "dev, staging or prod."
}

variable "service_name" {
  type        = string
  description = "Base name of the service; resources are named <service_name>-<environment>."
}

variable "image" {
  type        = string
  description = "Image for the first deployment (later ones come from make deploy or CI)."
  default     = "us-docker.pkg.dev/cloudrun/container/hello"
}

variable "min_instances" {
  type        = number
  description = "Instances kept warm."
}

variable "max_instances" {
  type        = number
  description = "Upper bound on instances."
}

variable "public_access" {
  type        = bool
  description = "Whether anyone on the internet may call the service (no default: decide per environment)."
}

variable "invokers" {
  type        = list(string)
  description = "Members allowed to call the service when it is not public."
  default     = []
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the Cloud Run service (README: Deploy)."
  default     = true
}

variable "github_repository_id" {
  type        = string
  description = "Numeric ID of the GitHub repository that deploys this environment (empty: none)."
  default     = ""
}

variable "github_repository_owner_id" {
  type        = string
  description = "Numeric ID of that repository's owner."
  default     = ""
}
{% if cookiecutter.use_secret_manager %}

variable "secrets" {
  type        = list(string)
  description = "Secret names the service declares in settings.py (without the environment prefix): secrets.auto.tfvars."
  default     = []
}

{% endif %}
