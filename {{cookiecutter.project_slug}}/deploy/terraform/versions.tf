terraform {
  required_version = ">= 1.9, < 2.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = ">= 7.0, < 8.0"
    }
  }

  # State lives in a bucket per environment's project; `make tf-init ENV=...`
  # passes environments/<env>.backend.hcl.
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region
}
