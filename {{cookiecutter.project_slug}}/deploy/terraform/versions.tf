terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    # Written against 8.7's schema; a minor release adds arguments, never removes one.
    google = {
      source  = "hashicorp/google"
      version = ">= 8.7, < 9.0"
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
