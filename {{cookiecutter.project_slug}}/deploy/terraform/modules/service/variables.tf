variable "project_id" {
  type        = string
  description = "Google Cloud project the environment runs in (one project per environment is recommended)."
}

variable "region" {
  type        = string
  description = "Region of the Cloud Run service, its queue and its image repository."
}

variable "environment" {
  type        = string
  description = "Environment name: the service reads it as ENVIRONMENT and prefixes its secrets with it."

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be dev, staging or prod."
  }
}

variable "service_name" {
  type        = string
  description = "Base name; resources are named <service_name>-<environment>."
}

variable "image" {
  type        = string
  description = "Container image for the first deployment; later deployments change it with `make deploy` or CI, and Terraform leaves it alone."
}

variable "min_instances" {
  type        = number
  description = "Instances kept warm (0 scales to zero; 1 or more avoids cold starts at a cost)."
}

variable "max_instances" {
  type        = number
  description = "Upper bound on instances, and so on cost and on load on what the service calls."
}

variable "concurrency" {
  type        = number
  description = "Requests one instance serves at once."
  default     = 80
}

variable "cpu" {
  type        = string
  description = "CPU limit per instance."
  default     = "1"
}

variable "memory" {
  type        = string
  description = "Memory limit per instance."
  default     = "512Mi"
}

variable "request_timeout_seconds" {
  type        = number
  description = "How long a request (including a task push) may run."
  default     = 300
}

variable "log_level" {
  type        = string
  description = "LOG_LEVEL of the service."
  default     = "INFO"
}

variable "public_access" {
  type        = bool
  description = "true grants run.invoker to allUsers (a public API); false requires callers to present an identity token."
}

variable "invokers" {
  type        = list(string)
  description = "Members (e.g. serviceAccount:caller@p.iam.gserviceaccount.com) allowed to call the service when it is not public."
  default     = []
}

variable "deletion_protection" {
  type        = bool
  description = "Refuse to destroy the Cloud Run service."
  default     = true
}

variable "github_repository_id" {
  type        = string
  description = "Numeric ID of the GitHub repository whose deploy workflow deploys this environment (empty: none)."
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.github_repository_id))
    error_message = "github_repository_id is GitHub's numeric ID of the repository, not its name."
  }
}

variable "github_repository_owner_id" {
  type        = string
  description = "Numeric ID of that repository's owner, the organisation or user."
  default     = ""

  validation {
    condition     = can(regex("^[0-9]*$", var.github_repository_owner_id)) && (var.github_repository_owner_id == "") == (var.github_repository_id == "")
    error_message = "github_repository_owner_id is GitHub's numeric ID of the owner, and is set together with github_repository_id."
  }
}
