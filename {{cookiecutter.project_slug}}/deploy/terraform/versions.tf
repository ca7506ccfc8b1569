terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0, < 8.0"
    }
  }

  # State lives in a bucket in each environment's own project, one state per
  # environment: `make tf-init ENV=...` names the bucket (README: Deploy).
  backend "gcs" {}
}

provider "google" {
  project = local.project_id
  region  = local.region
}
